#!/usr/bin/env bash
# Scale-out: the end-to-end workload of bench_e2e (bench/gen.c, 2 000
# identities, 3 h of event time, ~950 k events) consumed by 1, 2 and 4
# `burstguard run` processes of one consumer group against one
# `burstguard mock-broker` process (64 partitions per input topic).
#
# The topics are filled once (bench_e2e fill); each configuration uses a fresh
# group and reads them from the beginning. The aggregate rate is measured
# from the workers' own /metrics (burstguard_events_total, updated after every
# batch, scraped every 100 ms): from the first scrape that shows an applied
# event to the first that shows all of them. CPU is the workers' utime + stime
# from /proc, per million events. A bare consumer run (bench_e2e bare) against
# the same broker is printed first for reference.
#
# Usage: bench/bench_scale.sh [BUILD_DIR] [WORKER_COUNTS...]   (default: build 1 2 4)
set -euo pipefail
build=${1:-build}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4)
bin=$build/burstguard
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" mock-broker --partitions 64 >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock=$!
pids+=("$mock")
for _ in $(seq 100); do [ -s "$tmp/mock.out" ] && break; sleep 0.1; done
brokers=$(head -n1 "$tmp/mock.out")
read -r produced kept dropped < <("$build/bench_e2e" fill --brokers "$brokers")
echo "workload: $produced events produced, $kept retained, $dropped dropped by the mock; brokers $brokers"
"$build/bench_e2e" bare --brokers "$brokers" --group "scale-bare-$$" | sed 's/^/reference: /'

cpu_of() { # utime + stime of a pid, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
scrape() { # sum of burstguard_events_total over the given ports
    local sum=0 v
    for port in "$@"; do
        v=$(curl -s --max-time 1 "http://127.0.0.1:$port/metrics" |
            awk '/^burstguard_events_total/ {s += $2} END {printf "%d", s}')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

hz=$(getconf CLK_TCK)
printf '\n%-8s %10s %12s %10s %14s\n' workers events "events/s" "seconds" "cpu s/M ev"
for n in "${counts[@]}"; do
    ports=()
    wpids=()
    for i in $(seq "$n"); do
        port=$((19100 + i))
        cat >"$tmp/w$i.yaml" <<EOF
kafka:
  bootstrap.servers: $brokers
  session.timeout.ms: 6000
  log_level: 3
http:
  listen: 127.0.0.1:$port
EOF
        BURSTGUARD_LOG_LEVEL=warn "$bin" run --config "$tmp/w$i.yaml" --group "scale-$n-$$" \
            >"$tmp/w$i.log" 2>&1 &
        wpids+=($!)
        pids+=($!)
        ports+=("$port")
    done
    first=""
    last=""
    deadline=$(($(date +%s) + 180))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        got=$(scrape "${ports[@]}")
        t=$(date +%s.%N)
        if [ "$got" -gt 0 ] && [ -z "$first" ]; then first=$t; first_got=$got; fi
        if [ "$got" -ge "$kept" ]; then last=$t; break; fi
        sleep 0.1
    done
    ticks=0
    for p in "${wpids[@]}"; do ticks=$((ticks + $(cpu_of "$p"))); done
    for p in "${wpids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${wpids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -z "$last" ]; then
        echo "$n worker(s): did not finish within 180 s (got $got of $kept)"
        continue
    fi
    awk -v n="$n" -v ev="$kept" -v f="$first" -v fg="$first_got" -v l="$last" -v tk="$ticks" -v hz="$hz" \
        'BEGIN { d = l - f; printf "%-8d %10d %12.0f %10.2f %14.2f\n", n, ev, (ev - fg) / d, d, tk / hz / (ev / 1e6) }'
done
