#!/usr/bin/env bash
# Set up and run burstguard on Debian 12, from nothing:
#   tests/bootstrap.sh demo   install what is missing, build, run `burstguard demo`
#   tests/bootstrap.sh test   install what is missing, build with -Werror, run the whole
#                             test suite, then build with ASan+UBSan and run it again
# Build trees: build/ (release with debug info) and build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config librdkafka-dev libavro-dev libjansson-dev
          libjemalloc-dev liblz4-dev libcurl4-openssl-dev libyaml-dev libxxhash-dev
          libcmocka-dev libmicrohttpd-dev libsodium-dev kcat clang libclang-rt-14-dev
          python3-yaml nodejs)

install_missing() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() { # build DIR [cmake options...]
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

case "${1:-}" in
demo)
    install_missing
    build build
    exec ./build/burstguard demo
    ;;
test)
    install_missing
    build build -DBG_WERROR=ON
    (cd build && ctest --output-on-failure -j2 --timeout 600)
    build build-asan -DBG_WERROR=ON -DBG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    (cd build-asan && ctest --output-on-failure -j2 --timeout 900)
    ;;
*)
    echo "usage: tests/bootstrap.sh demo|test" >&2
    exit 2
    ;;
esac
