#!/usr/bin/python3
"""Checks the manifests `helm template` rendered for tests/helm/test_chart.sh.

usage: check_manifests.py VARIANT RENDERED.yaml OUT.json
VARIANT: default (chart defaults), full (tests/helm/values-full.yaml: SASL, TLS, signing,
ServiceMonitor, KEDA), full-nokeda (the same with keda.enabled=false).
Parses the YAML (python3-yaml), checks what the chart promises, writes the objects as a JSON
list for validate.mjs. Exit 0 when every check holds, 1 with one line per failure otherwise.
"""
import json
import re
import sys

import yaml

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def by_kind(objs, kind):
    return [o for o in objs if o.get("kind") == kind]


def one(objs, kind):
    found = by_kind(objs, kind)
    check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0] if found else {}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    variant, rendered, out = sys.argv[1:4]
    with open(rendered) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    full = variant.startswith("full")
    keda = variant == "full"

    kinds = sorted(o["kind"] for o in objs)
    expected = ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "ServiceAccount",
                "StatefulSet"]
    if full:
        expected += ["ServiceMonitor"]
    if keda:
        expected += ["ScaledObject", "TriggerAuthentication"]
    check(kinds == sorted(expected), f"kinds {kinds} != {sorted(expected)}")

    sts = one(objs, "StatefulSet")
    cm = one(objs, "ConfigMap")
    spec = sts.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
    containers = pod.get("containers", [])
    check(len(containers) == 1, "one container")
    c = containers[0] if containers else {}

    # replicas: a value, or left to KEDA
    if keda:
        check("replicas" not in spec, "replicas must be omitted when KEDA owns the count")
    else:
        check(spec.get("replicas") == (4 if full else 2), f"replicas {spec.get('replicas')}")
    check(selects(spec.get("selector", {}).get("matchLabels"), pod_labels),
          "StatefulSet selector matches its pod labels")
    headless = [s for s in by_kind(objs, "Service") if s["spec"].get("clusterIP") == "None"]
    check(len(headless) == 1 and headless[0]["metadata"]["name"] == spec.get("serviceName"),
          "serviceName is the headless Service")

    # static membership
    env = {e["name"]: e for e in c.get("env", [])}
    check(env.get("BURSTGUARD_INSTANCE_ID", {}).get("valueFrom", {}).get("fieldRef", {})
          .get("fieldPath") == "metadata.name", "BURSTGUARD_INSTANCE_ID from metadata.name")

    # config and policy
    data = cm.get("data", {})
    check(set(data) == {"config.yaml", "policy.yaml"}, f"ConfigMap keys {sorted(data)}")
    cfg = yaml.safe_load(data.get("config.yaml", "")) or {}
    pol = yaml.safe_load(data.get("policy.yaml", "")) or {}
    check(cfg.get("policy") == "policy.yaml", "config.yaml points at policy.yaml")
    check(isinstance(pol.get("classes"), list) and pol["classes"], "policy.yaml has classes")
    if full:
        check(any(e.get("id") == "chg-1042" for e in pol.get("envelopes", [])),
              "policy from --set-file examples/policy.yaml")
    check(re.fullmatch(r"[0-9a-f]{64}", str(annotations.get("checksum/config", ""))) is not None,
          "checksum/config annotation")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    check(vols.get("config", {}).get("configMap", {}).get("name") == cm["metadata"]["name"],
          "config volume is the ConfigMap")
    m = mounts.get("config", {})
    check(m.get("mountPath") == "/etc/burstguard" and m.get("readOnly") is True
          and "subPath" not in m, "ConfigMap mounted read-only at /etc/burstguard without subPath")
    check(not any(m["mountPath"].startswith("/etc/burstguard/") for m in c.get("volumeMounts", [])),
          "nothing mounted inside the ConfigMap's directory")
    args = c.get("args", [])
    check(args[:3] == ["run", "--config", "/etc/burstguard/config.yaml"], f"args {args[:3]}")

    # probes against http.listen's port
    port = int(str(cfg.get("http", {}).get("listen", "")).rsplit(":", 1)[-1])
    check(port == (9200 if full else 9100), f"http.listen port {port}")
    ports = {p["name"]: p for p in c.get("ports", [])}
    check(ports.get("http", {}).get("containerPort") == port, "containerPort = http.listen port")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        check(g.get("path") == path and g.get("port") in ("http", port), f"{probe} GET {path}")

    # hardening
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp")
    check(csc.get("runAsNonRoot") is True, "container runAsNonRoot")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "drop ALL capabilities")
    check(not csc.get("capabilities", {}).get("add"), "no added capabilities")
    check(csc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccomp")
    check(pod.get("automountServiceAccountToken") is False, "no service account token")

    # shutdown bound
    shutdown = str(cfg.get("worker", {}).get("shutdown_timeout_ms"))
    secs = {"10s": 10, "30s": 30}[shutdown]
    grace = pod.get("terminationGracePeriodSeconds", 0)
    check(grace > secs + 5, f"terminationGracePeriodSeconds {grace} > {secs} + 5")

    # resources
    want = ({"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "3Gi"}}
            if full else {"requests": {"cpu": "500m", "memory": "512Mi"},
                          "limits": {"memory": "1Gi"}})
    check(c.get("resources") == want, f"resources {c.get('resources')}")

    # nothing secret in the ConfigMap, every $(VAR) in args defined in env
    secretish = {"sasl.password", "sasl.username", "ssl.key.password", "ssl.key.pem",
                 "sasl.oauthbearer.client.secret"}
    check(not secretish & set(cfg.get("kafka", {})), "no secret-bearing kafka.* in ConfigMap")
    for a in args:
        for var in re.findall(r"\$\(([A-Z0-9_]+)\)", a):
            check(var in env, f"args use $({var}) but env does not define it")

    def secret_ref(name):
        return env.get(name, {}).get("valueFrom", {}).get("secretKeyRef", {})

    if full:
        k = cfg.get("kafka", {})
        check(k.get("security.protocol") == "SASL_SSL", "security.protocol SASL_SSL")
        check(k.get("sasl.mechanisms") == "SCRAM-SHA-256", "sasl.mechanisms")
        check(secret_ref("BURSTGUARD_KAFKA_SASL_USERNAME") == {"name": "kafka-sasl", "key": "user"},
              "SASL username from Secret kafka-sasl/user")
        check(secret_ref("BURSTGUARD_KAFKA_SASL_PASSWORD") == {"name": "kafka-sasl", "key": "pass"},
              "SASL password from Secret kafka-sasl/pass")
        check(secret_ref("BURSTGUARD_KAFKA_SSL_KEY_PASSWORD")
              == {"name": "kafka-tls", "key": "key-password"}, "ssl key password from Secret")
        check(secret_ref("BURSTGUARD_SCHEMA_REGISTRY_USERNAME").get("name") == "schema-registry",
              "schema registry username from Secret")
        check("BURSTGUARD_SCHEMA_REGISTRY_PASSWORD" not in str(c.get("env")),
              "schema registry password not in the environment")
        sr = vols.get("schema-registry", {}).get("secret", {})
        check(sr.get("secretName") == "schema-registry", "schema registry Secret volume")
        check(mounts.get("schema-registry", {}).get("mountPath")
              == "/run/secrets/burstguard/schema-registry", "schema registry mount")
        check(any(a.startswith("schema_registry.password_file=/run/secrets/burstguard/schema-registry/")
                  for a in args), "args --set schema_registry.password_file")
        for flag in ("kafka.sasl.username=$(BURSTGUARD_KAFKA_SASL_USERNAME)",
                     "kafka.sasl.password=$(BURSTGUARD_KAFKA_SASL_PASSWORD)",
                     "kafka.ssl.key.password=$(BURSTGUARD_KAFKA_SSL_KEY_PASSWORD)"):
            check(flag in args and args[args.index(flag) - 1] == "--set", f"args --set {flag}")
        tls = vols.get("kafka-tls", {}).get("secret", {})
        check(tls.get("secretName") == "kafka-tls", "TLS Secret volume")
        check(sorted(i["key"] for i in tls.get("items", [])) == ["ca.crt", "tls.crt", "tls.key"],
              "TLS Secret items")
        tm = mounts.get("kafka-tls", {}).get("mountPath")
        check(tm == "/run/secrets/burstguard/kafka-tls", "TLS mount")
        for prop, key in (("ssl.ca.location", "ca.crt"), ("ssl.certificate.location", "tls.crt"),
                          ("ssl.key.location", "tls.key")):
            check(k.get(prop) == f"{tm}/{key}", f"{prop} -> mounted {key}")
        # signing key: Secret -> init container -> 0400 copy in a memory emptyDir -> key_file
        sg = vols.get("signing-secret", {}).get("secret", {})
        check(sg.get("secretName") == "burstguard-signing" and
              [i["key"] for i in sg.get("items", [])] == ["ed25519.key"], "signing Secret volume")
        check(vols.get("signing", {}).get("emptyDir", {}).get("medium") == "Memory",
              "signing key copy in a memory emptyDir")
        check("signing-secret" not in mounts, "the worker does not mount the signing Secret itself")
        sm = mounts.get("signing", {}).get("mountPath")
        check(mounts.get("signing", {}).get("readOnly") is True, "signing copy mounted read-only")
        check(cfg.get("signing") == {"key_file": f"{sm}/ed25519.key", "key_id": "burstguard-2026"},
              f"signing config {cfg.get('signing')}")
        inits = pod.get("initContainers", [])
        check(len(inits) == 1, "one init container (signing key)")
        ic = inits[0] if inits else {}
        im = {m["name"]: m["mountPath"] for m in ic.get("volumeMounts", [])}
        check(ic.get("command") == ["install", "-m", "0400", f"{im.get('signing-secret')}/ed25519.key",
                                    f"{im.get('signing')}/ed25519.key"] and im.get("signing") == sm,
              f"init container copies the key with mode 0400: {ic.get('command')}")
        check(ic.get("securityContext") == csc, "init container has the same securityContext")
        check(ic.get("image") == c.get("image"), "init container uses the worker image")
        check(pod.get("imagePullSecrets") == [{"name": "regcred"}], "imagePullSecrets")
        check(c.get("image") == "registry.example.com/platform/burstguard:0.1.0-test", "image")
    else:
        check("signing" not in cfg, "no signing config by default")
        check(not any(n.startswith("BURSTGUARD_KAFKA_") for n in env), "no Kafka secret env")
        check(set(vols) == {"config", "tmp"}, f"default volumes {sorted(vols)}")
        check(not pod.get("initContainers"), "no init container by default")

    # Services, ServiceMonitor, PDB, KEDA
    metrics = [s for s in by_kind(objs, "Service") if s["spec"].get("clusterIP") != "None"]
    check(len(metrics) == 1, "one metrics Service")
    ms = metrics[0] if metrics else {"spec": {}, "metadata": {}}
    check(selects(ms["spec"].get("selector"), pod_labels), "metrics Service selects the pods")
    check([p.get("targetPort") for p in ms["spec"].get("ports", [])] == ["http"],
          "metrics Service targets the http port")
    if full:
        smon = one(objs, "ServiceMonitor")
        check(selects(smon["spec"]["selector"]["matchLabels"], ms["metadata"].get("labels", {})),
              "ServiceMonitor selects the metrics Service")
        check(not any(selects(smon["spec"]["selector"]["matchLabels"], h["metadata"]["labels"])
                      for h in headless), "ServiceMonitor does not select the headless Service")
        ep = smon["spec"]["endpoints"][0]
        check(ep.get("port") in [p["name"] for p in ms["spec"]["ports"]] and ep.get("path") == "/metrics",
              "ServiceMonitor endpoint is the metrics port /metrics")
        check(smon["metadata"]["labels"].get("release") == "kube-prometheus-stack",
              "ServiceMonitor extra labels")
    pdb = one(objs, "PodDisruptionBudget")
    check(selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), pod_labels),
          "PDB selects the pods")
    check(pdb.get("spec", {}).get("minAvailable" if full else "maxUnavailable") == (2 if full else 1),
          f"PDB {pdb.get('spec')}")
    if keda:
        so = one(objs, "ScaledObject")
        ta = one(objs, "TriggerAuthentication")
        ref = so["spec"]["scaleTargetRef"]
        check(ref == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                      "name": sts["metadata"]["name"]}, f"scaleTargetRef {ref}")
        check((so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 12),
              "KEDA replica bounds")
        t = so["spec"]["triggers"][0]
        md = t["metadata"]
        check(t["type"] == "kafka", "kafka trigger")
        check(md.get("lagThreshold") == "5000", f"lagThreshold {md.get('lagThreshold')!r}")
        check(md.get("consumerGroup") == "burstguard-prod", "consumerGroup = group.id")
        check(md.get("bootstrapServers") == cfg["kafka"]["bootstrap.servers"], "bootstrapServers")
        check(md.get("topic") == "prod.nhi.usage.v1", "topic = topics.usage")
        check(md.get("sasl") == "scram_sha256" and md.get("tls") == "enable", "KEDA sasl/tls")
        check(t.get("authenticationRef", {}).get("name") == ta["metadata"]["name"],
              "authenticationRef -> TriggerAuthentication")
        refs = {r["parameter"]: (r["name"], r["key"]) for r in ta["spec"]["secretTargetRef"]}
        check(refs.get("username") == ("kafka-sasl", "user") and
              refs.get("password") == ("kafka-sasl", "pass") and
              refs.get("ca") == ("kafka-tls", "ca.crt"), f"TriggerAuthentication refs {refs}")

    with open(out, "w") as f:
        json.dump(objs, f)
    for what in failures:
        print(f"check_manifests [{variant}]: FAIL {what}")
    if not failures:
        print(f"check_manifests [{variant}]: {len(objs)} objects ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
