# syntax=docker/dockerfile:1
# burstguard container image: build on Debian 12, run on debian:12-slim as a non-root user.
#   docker build -t burstguard:0.1.0 .
#   docker run --rm burstguard:0.1.0 demo
# The Helm chart (helm/burstguard) runs it as `burstguard run --config /etc/burstguard/config.yaml`
# with a read-only root filesystem, user 10001 and no capabilities.

# --- build -----------------------------------------------------------------------------
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
# The -dev packages of tests/bootstrap.sh (CMake checks for all of them, cmocka included).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libjansson-dev libjemalloc-dev liblz4-dev \
      libcurl4-openssl-dev libyaml-dev libxxhash-dev libcmocka-dev \
      libmicrohttpd-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY schemas/ schemas/
COPY detectors/ detectors/
COPY worker/ worker/
COPY bench/ bench/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target burstguard -j"$(nproc)" \
 && strip build/burstguard \
 && ./build/burstguard config defaults >/dev/null

# --- runtime ---------------------------------------------------------------------------
FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (librdkafka1 brings libssl3, libsasl2-2, libzstd1, ...);
# ca-certificates for TLS to brokers signed by a public CA.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libjansson4 libjemalloc2 liblz4-1 libcurl4 libyaml-0-2 \
      libxxhash0 libsodium23 libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 burstguard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin burstguard
COPY --from=build /src/build/burstguard /usr/local/bin/burstguard
USER 10001:10001
EXPOSE 9100
ENTRYPOINT ["burstguard"]
CMD ["run", "--config", "/etc/burstguard/config.yaml"]
