#!/bin/sh
# Detection-quality benchmark: labeled generator scenarios through the Kafka
# protocol and `burstguard replay --labels`, scored against the ground truth.
#
#   bench/quality.sh [BURSTGUARD_BIN] [WORKDIR]
#
# For each scenario: a fresh `burstguard mock-broker`, `burstguard gen` (the
# full scenario set) producing Avro to it, `burstguard replay` over the whole
# range with the generator's policy, then one table row per class from
# report.json, plus the revocation figures and every miss. Deterministic for
# the seeds below; prints a checksum of the verdict files so a change in what
# the engine decided is visible even when the table is the same.
set -eu
BIN=${1:-build/burstguard}
WORK=${2:-$(mktemp -d /tmp/bg-quality-XXXXXX)}
PY=/usr/bin/python3
mkdir -p "$WORK"
# seed identities hours
SCENARIOS="42:300:3 7:600:6 1234:900:4"
for sc in $SCENARIOS; do
  seed=${sc%%:*}; rest=${sc#*:}; ids=${rest%%:*}; hours=${rest#*:}
  d="$WORK/s$seed"
  rm -rf "$d"; mkdir -p "$d"
  "$BIN" mock-broker --partitions 16 > "$d/broker.addr" 2> "$d/broker.log" &
  mpid=$!
  i=0
  while [ ! -s "$d/broker.addr" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  bs=$(head -1 "$d/broker.addr")
  "$BIN" gen --seed "$seed" --identities "$ids" --hours "$hours" --brokers "$bs" \
    --labels "$d/labels.csv" --policy-out "$d/policy.yaml" > "$d/gen.out" 2> "$d/gen.log"
  printf 'kafka:\n  bootstrap.servers: %s\npolicy: policy.yaml\nhttp:\n  listen: ""\n' "$bs" > "$d/config.yaml"
  to=$($PY -c "import datetime as d; print((d.datetime(2026,11,30,tzinfo=d.timezone.utc)+d.timedelta(hours=$hours)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
  "$BIN" replay --config "$d/config.yaml" --from 2026-11-30T00:00:00Z --to "$to" \
    --out "$d/out" --labels "$d/labels.csv" > "$d/replay.out" 2> "$d/replay.log"
  kill "$mpid"; wait "$mpid" 2>/dev/null || true
done
$PY - "$WORK" $SCENARIOS <<'EOF'
import hashlib, json, sys
work, scen = sys.argv[1], sys.argv[2:]
def pct(v): return "-" if v is None else "%.1f %%" % (100 * v)
def sec(v): return "-" if v is None else "%.0f s" % (v / 1000)
print("| scenario (seed, identities, hours, events) | class | labels | detected | TP | FP | precision | recall | delay median | delay p95 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
notes = []
h = hashlib.sha256()
for sc in scen:
    seed, ids, hours = sc.split(":")
    d = "%s/s%s" % (work, seed)
    r = json.load(open(d + "/out/report.json"))
    ev = r["events"]
    n = ev["usage"] + ev["secrets"] + ev["toolcalls"]
    for c in ("PLANNED", "UNEXPECTED", "ANOMALOUS"):
        s = r["score"][c]
        print("| %s, %s, %s h, %d | %s | %d | %d | %d | %d | %s | %s | %s | %s |" % (
            seed, ids, hours, n, c, s["labels"], s["detected"], s["true_positives"],
            s["false_positives"], pct(s["precision"]), pct(s["recall"]),
            sec(s["delay_median_ms"]), sec(s["delay_p95_ms"])))
    s = r["score"]
    notes.append("seed %s: revocations %d, false (benign secrets) %d, collateral %d, missed %d; "
                 "ANOMALOUS on benign labels %d" % (seed, r["revocations"], len(s["false_revocations"]),
                 len(s["collateral_revocations"]), len(s["missed_revocations"]),
                 s["benign_flagged_anomalous"]))
    for x in s["false_revocations"]:
        notes.append("  false revocation: %s of %s" % (x["secret_id"] or "(identity)", x["identity"]))
    for x in s["collateral_revocations"]:
        notes.append("  collateral revocation: %s of %s" % (x["secret_id"] or "(identity)", x["identity"]))
    for x in s["missed_revocations"]:
        notes.append("  missed revocation: %s" % x)
    txt = open(d + "/out/report.txt").read()
    tail = txt.split("labels not found with their class:")[1].splitlines()[1:]
    for line in tail:
        if line.strip():
            notes.append("  missed label:" + line)
    h.update(open(d + "/out/verdicts.jsonl", "rb").read())
    h.update(open(d + "/out/revocations.jsonl", "rb").read())
print()
for n in notes:
    print(n)
print("checksum (sha256 of every verdicts.jsonl + revocations.jsonl): " + h.hexdigest()[:16])
EOF
