// Offline validation of rendered manifests against the Kubernetes API schemas.
// usage: node validate.mjs MODELS_DIR FILE.json...
//   MODELS_DIR: an npm prefix holding kubernetes-models@4.5 (+ @kubernetes-models/
//   prometheus-operator and @kubernetes-models/keda for the ServiceMonitor and ScaledObject).
//   FILE.json: a JSON list of objects (check_manifests.py writes it from `helm template`).
// Loads each object into its kubernetes-models class and calls .validate(). Before that, a
// negative control: objects that are known to be invalid must be rejected, so that a
// validator that accepts everything fails the test instead of passing it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modelsDir, ...files] = process.argv.slice(2);
if (!modelsDir || files.length === 0) {
  console.error("usage: node validate.mjs MODELS_DIR FILE.json...");
  process.exit(2);
}
const nm = join(modelsDir, "node_modules");

// apiVersion -> module of kubernetes-models (or a CRD package) exporting one class per kind
function modulePath(apiVersion) {
  const crds = {
    "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.mjs",
    "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1/index.mjs",
  };
  if (crds[apiVersion]) return join(nm, crds[apiVersion]);
  return join(nm, "kubernetes-models", apiVersion, "index.mjs"); // v1, apps/v1, policy/v1, ...
}

const cache = new Map();
async function classFor(obj) {
  const path = modulePath(obj.apiVersion);
  if (!cache.has(path)) cache.set(path, await import(pathToFileURL(path).href));
  const cls = cache.get(path)[obj.kind];
  if (!cls) throw new Error(`no kubernetes-models class for ${obj.apiVersion} ${obj.kind}`);
  return cls;
}

async function validate(obj) {
  const Cls = await classFor(obj);
  new Cls(obj).validate(); // throws on a schema violation
}

// Negative control.
const bad = [
  { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: "x" },
    spec: { replicas: "three", serviceName: "x", selector: {}, template: {} } },
  { apiVersion: "v1", kind: "Service", metadata: { name: "x" },
    spec: { ports: [{ name: "m" }] } }, // port is required
  { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "x" },
    spec: { triggers: [] } },           // scaleTargetRef is required
];
for (const obj of bad) {
  let rejected = false;
  try { await validate(obj); } catch { rejected = true; }
  if (!rejected) {
    console.error(`validate.mjs: the validator accepted an invalid ${obj.kind}; not trusting it`);
    process.exit(1);
  }
}

let failed = 0, count = 0;
for (const file of files) {
  const objs = JSON.parse(readFileSync(file, "utf8"));
  for (const obj of objs) {
    count++;
    const what = `${file}: ${obj.apiVersion} ${obj.kind} ${obj.metadata?.name}`;
    try {
      await validate(obj);
    } catch (e) {
      failed++;
      console.error(`validate.mjs: FAIL ${what}: ${e.message}`);
    }
  }
}
console.log(`validate.mjs: ${count - failed}/${count} objects valid`);
process.exit(failed ? 1 : 0);
