#!/usr/bin/env bash
# Every performance benchmark in one run (a few minutes on 2 cores):
#   bench_codec    our decoder vs Avro-C's generic decoder, same bytes
#   bench_engine   the engine at 10 k, 1 M and 10 M identities; bytes per
#                  quiet and busy identity (jemalloc)
#   bench_e2e      bare consumer vs the whole pipeline on the same pre-filled
#                  topics (alternating runs, medians, ratio, CPU per M events),
#                  then verdict latency at half the pipeline's median rate,
#                  and at a light load
#   bench_scale.sh 1, 2 and 4 `burstguard run` processes of one group
#
# Usage: bench/run.sh [--quick] [BUILD_DIR]
#   --quick   skip the 10 M identities case and the scale-out
# BUILD_DIR defaults to build-bench (configured Release here if missing).
set -euo pipefail
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
build=${1:-build-bench}
cd "$(dirname "$0")/.."
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j"$(nproc)" >/dev/null

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ); $(git rev-parse --short HEAD)"
echo
echo "== bench_codec"
"$build/bench_codec"
echo
echo "== bench_engine"
if [ "$quick" = 1 ]; then "$build/bench_engine" 10000 1000000 && "$build/bench_engine" --memory
else "$build/bench_engine"; fi
echo
echo "== bench_e2e"
"$build/bench_e2e"
echo
echo "== bench_e2e latency at a light load (5 000 events/s, 4 partitions): the pipeline's own delay"
"$build/bench_e2e" latency --rate 5000 --seconds 6 --partitions 4
if [ "$quick" = 0 ]; then
    echo
    echo "== bench_scale.sh"
    bench/bench_scale.sh "$build"
fi
