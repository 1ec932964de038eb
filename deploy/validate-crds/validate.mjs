// Validates every custom resource in rendered manifests against its schema
// (KEDA's CRD schemas, shipped in @kubernetes-models/keda). Core kinds are
// left to kubernetes-validate; a custom kind without a schema here fails, so
// nothing reaches a cluster unchecked.
//
//   node validate.mjs rendered.yaml...
import fs from "node:fs";
import { loadAll } from "js-yaml";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ScaledJob } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const schemas = {
  "keda.sh/v1alpha1": { ScaledObject, ScaledJob, TriggerAuthentication },
};

let failed = false;
for (const file of process.argv.slice(2)) {
  let checked = 0;
  for (const doc of loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc || typeof doc.apiVersion !== "string") continue;
    const group = doc.apiVersion.includes("/") ? doc.apiVersion.split("/")[0] : "";
    // Core groups have no dot (apps, batch, "") or end in .k8s.io.
    if (!group.includes(".") || group.endsWith(".k8s.io")) continue;
    const Kind = schemas[doc.apiVersion]?.[doc.kind];
    const name = `${file}: ${doc.kind} ${doc.metadata?.name ?? "?"}`;
    if (!Kind) {
      console.error(`${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed = true;
      continue;
    }
    try {
      new Kind(doc).validate();
      checked++;
    } catch (e) {
      const details = (e.errors ?? []).map((x) => `${x.instancePath} ${x.message}`).join("; ");
      console.error(`${name}: ${details || e.message}`);
      failed = true;
    }
  }
  console.log(`${file}: ${checked} custom resource(s) valid`);
}
process.exit(failed ? 1 : 0);
