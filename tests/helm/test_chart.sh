#!/usr/bin/env bash
# The Helm chart's test (ctest label `helm`): lint, render with default and non-default values,
# check the manifests (check_manifests.py, python3-yaml), validate them offline against the
# Kubernetes API schemas (validate.mjs, kubernetes-models 4.5), check that values.schema.json
# and the chart's own checks reject bad values, and run the worker on the rendered config
# against a mock cluster when BURSTGUARD_BIN is set.
# Tools are installed once into $BG_TOOLS_DIR (default <repo>/build/tools) by install_helm.sh.
# Exit 0 pass, 1 fail, 77 skipped (helm, node or python3-yaml cannot be had: no network).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=$repo/helm/burstguard
tools=${BG_TOOLS_DIR:-$repo/build/tools}

helm=$("$here/install_helm.sh" "$tools") || { rc=$?; [ $rc -eq 77 ] && echo "SKIP: helm/kubernetes-models not installable" >&2; exit $rc; }
command -v node >/dev/null || { echo "SKIP: node not found" >&2; exit 77; }
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml missing (apt-get install python3-yaml)" >&2; exit 77; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

full=(-n nhi -f "$here/values-full.yaml" --set-file "policy=$repo/examples/policy.yaml")

# 1. lint -------------------------------------------------------------------------------
"$helm" lint --strict "$chart" >"$work/lint.txt" 2>&1 && ok "helm lint (defaults)" || { cat "$work/lint.txt"; fail "helm lint"; }
"$helm" lint --strict "$chart" "${full[@]}" >"$work/lint.txt" 2>&1 && ok "helm lint (values-full)" || { cat "$work/lint.txt"; fail "helm lint values-full"; }

# 2. render and check -------------------------------------------------------------------
render() { # NAME helm-template-args...
    local name=$1
    shift
    if "$helm" template bg "$chart" "$@" >"$work/$name.yaml" 2>"$work/$name.err"; then
        /usr/bin/python3 "$here/check_manifests.py" "$name" "$work/$name.yaml" "$work/$name.json" || fail "checks ($name)"
    else
        cat "$work/$name.err" >&2
        fail "helm template ($name)"
    fi
}
render default
render full "${full[@]}"
render full-nokeda "${full[@]}" --set keda.enabled=false

# 3. offline schema validation ------------------------------------------------------------
jsons=()
for v in default full full-nokeda; do [ -f "$work/$v.json" ] && jsons+=("$work/$v.json"); done
if [ ${#jsons[@]} -gt 0 ] && node "$here/validate.mjs" "$tools/npm-models" "${jsons[@]}"; then
    ok "kubernetes-models validation"
else
    fail "kubernetes-models validation"
fi

# 4. bad values are refused at template time ----------------------------------------------
reject() { # EXPECTED-MESSAGE-FRAGMENT helm-template-args...
    local want=$1
    shift
    if "$helm" template bg "$chart" "$@" >/dev/null 2>"$work/reject.err"; then
        fail "helm template accepted $*"
    elif ! grep -qF -- "$want" "$work/reject.err"; then
        cat "$work/reject.err" >&2
        fail "helm template $* failed without naming '$want'"
    else
        ok "rejected $* ($want)"
    fi
}
reject "replicaCount" --set replicaCount=-1
reject "Additional property unknownKey" --set unknownKey=1
reject "Additional property unknown" --set config.worker.unknown=1
reject "config.kafka" --set 'config.kafka.sasl\.password=hunter2'
reject "readOnlyRootFilesystem" --set securityContext.readOnlyRootFilesystem=false
reject "allowPrivilegeEscalation" --set securityContext.allowPrivilegeEscalation=true
reject "runAsNonRoot" --set podSecurityContext.runAsNonRoot=false
reject "config.http.listen" --set config.http.listen=0.0.0.0:0
reject "shutdown_timeout_ms" --set config.worker.shutdown_timeout_ms=ten
reject "batch_max_messages" --set config.worker.batch_max_messages=0
reject "kafka.sasl.existingSecret" --set kafka.sasl.enabled=true
reject "kafka.tls.existingSecret" --set kafka.tls.enabled=true
reject "mechanism" --set kafka.sasl.mechanism=GSSAPI
reject "keda.lagThreshold" --set keda.lagThreshold=0
reject "signing.keyId" --set signing.existingSecret=burstguard-signing
reject "terminationGracePeriodSeconds" --set terminationGracePeriodSeconds=15
reject "terminationGracePeriodSeconds" --set terminationGracePeriodSeconds=40 --set config.worker.shutdown_timeout_ms=1m

# 5. a policy change does not roll the pods, a config change does --------------------------
checksum() {
    "$helm" template bg "$chart" --show-only templates/statefulset.yaml "$@" |
        /usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["spec"]["template"]["metadata"]["annotations"]["checksum/config"])'
}
c0=$(checksum)
c_policy=$(checksum --set-file "policy=$repo/examples/policy.yaml")
c_config=$(checksum --set config.worker.batch_max_messages=500)
[ "$c0" = "$c_policy" ] && ok "policy change keeps checksum/config" || fail "policy change changed checksum/config"
[ "$c0" != "$c_config" ] && ok "config change changes checksum/config" || fail "config change kept checksum/config"

# 6. NOTES.txt renders (helm template skips it: render a copy of the chart where it is a define)
notes() { # NAME helm-template-args...
    local name=$1
    shift
    rm -rf "$work/notes-chart" && cp -r "$chart" "$work/notes-chart"
    { printf '{{- define "bg.test.notes" -}}\n'; cat "$chart/templates/NOTES.txt"; printf '\n{{- end -}}\n'; } \
        >"$work/notes-chart/templates/_notes.tpl"
    rm "$work/notes-chart/templates/NOTES.txt"
    printf 'notes: {{ include "bg.test.notes" . | toJson }}\n' >"$work/notes-chart/templates/notes.yaml"
    if "$helm" template bg "$work/notes-chart" --show-only templates/notes.yaml "$@" >"$work/notes.yaml" 2>&1 &&
        /usr/bin/python3 -c 'import sys, yaml; n = yaml.safe_load(open(sys.argv[1]))["notes"]; assert "statefulset/bg-burstguard" in n, n; print(n)' \
            "$work/notes.yaml" >"$work/notes-$name.txt"; then
        ok "NOTES.txt renders ($name)"
    else
        cat "$work/notes.yaml" >&2
        fail "NOTES.txt ($name)"
    fi
}
notes default
notes full "${full[@]}"

# 7. the worker accepts what the chart renders ---------------------------------------------
extract() { # RENDERED.yaml DIR: the ConfigMap's files into DIR
    mkdir -p "$2"
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, yaml
cm = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o and o["kind"] == "ConfigMap"][0]
for name, text in cm["data"].items():
    open(f"{sys.argv[2]}/{name}", "w").write(text)
PY
}
bin=${BURSTGUARD_BIN:-}
if [ -n "$bin" ] && [ -x "$bin" ] && [ -f "$work/default.yaml" ] && [ -f "$work/full.yaml" ]; then
    extract "$work/default.yaml" "$work/etc-default"
    extract "$work/full.yaml" "$work/etc-full"
    for d in default full; do
        "$bin" policy check "$work/etc-$d/policy.yaml" >/dev/null && ok "policy check ($d)" || fail "burstguard policy check rejects the $d policy"
    done
    "$bin" mock-broker --partitions 2 >"$work/mock.out" 2>"$work/mock.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$work/mock.out" ] && break; sleep 0.1; done
    brokers=$(head -n1 "$work/mock.out")
    [ -n "$brokers" ] || { cat "$work/mock.err" >&2; fail "mock-broker did not print its address"; }

    smoke() { # WHAT CONFIG [--set ...]: run until it consumes, SIGTERM, expect exit 0
        local what=$1 cfg=$2
        shift 2
        [ -n "$brokers" ] || return 0
        : >"$work/run.err"
        BURSTGUARD_INSTANCE_ID="helm-$what-0" "$bin" run --config "$cfg" --brokers "$brokers" --group "helm-$what" \
            --set http.listen=127.0.0.1:0 "$@" >"$work/run.out" 2>"$work/run.err" &
        local wpid=$! rc=0
        pids+=($wpid)
        # Up once it has checked the topics and logged what it consumes.
        for _ in $(seq 150); do
            grep -q '"consuming ' "$work/run.err" 2>/dev/null && break
            kill -0 "$wpid" 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q '"consuming ' "$work/run.err"; then
            kill -TERM "$wpid" 2>/dev/null || true
            wait "$wpid" || rc=$?
            tail -5 "$work/run.err" >&2
            fail "worker on the rendered config ($what) did not start consuming (exit $rc)"
            return 0
        fi
        # The probes' paths on the worker's HTTP endpoint (port 0 = a free one, logged).
        local port
        port=$(sed -n 's/.*serving [^"]* on port \([0-9][0-9]*\).*/\1/p' "$work/run.err" | head -n1)
        if [ -n "$port" ]; then
            if /usr/bin/python3 - "$port" <<'PY'; then
import sys, time, urllib.request
port, deadline, status = sys.argv[1], time.time() + 10, {}
while time.time() < deadline:
    for path in ("/healthz", "/readyz"):
        try:
            status[path] = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).status
        except Exception as e:
            status[path] = getattr(e, "code", str(e))
    if all(v == 200 for v in status.values()):
        sys.exit(0)
    time.sleep(0.2)
print(f"probe paths: {status}", file=sys.stderr)
sys.exit(1)
PY
                ok "GET /healthz and /readyz answer 200 ($what)"
            else
                fail "the probes' paths do not answer 200 ($what)"
            fi
        else
            echo "note: the worker logged no HTTP port; /healthz and /readyz not exercised"
        fi
        kill -TERM "$wpid"
        wait "$wpid" || rc=$?
        [ $rc -eq 0 ] && ok "worker ran on the rendered config ($what) and stopped cleanly" ||
            { tail -5 "$work/run.err" >&2; fail "worker ($what) exited $rc after SIGTERM"; }
    }
    # The rendered default config, unchanged but for the brokers and a free HTTP port.
    smoke default "$work/etc-default/config.yaml"
    # With the signing Secret: the rendered signing.key_id / key_file, the key as the init
    # container leaves it (mode 0400), at a local path instead of /run/burstguard/signing.
    if "$helm" template bg "$chart" --set signing.existingSecret=s --set signing.keyId=bg-test \
        >"$work/signing.yaml" && mkdir -p "$work/key" && "$bin" keygen --out "$work/key/k" >/dev/null; then
        extract "$work/signing.yaml" "$work/etc-signing"
        install -m 0400 "$work/key/k.key" "$work/key/signing.key"
        keyfile=$(/usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["signing"]["key_file"])' "$work/etc-signing/config.yaml")
        [ "$keyfile" = /run/burstguard/signing/signing.key ] || fail "signing.key_file is $keyfile"
        smoke signing "$work/etc-signing/config.yaml" --set "signing.key_file=$work/key/signing.key"
    else
        fail "render with signing / burstguard keygen"
    fi
else
    echo "note: BURSTGUARD_BIN not set; the worker smoke run on the rendered config is skipped"
fi

if [ $fails -ne 0 ]; then
    echo "test_chart: $fails failure(s)" >&2
    exit 1
fi
echo "test_chart: all checks passed"
