// Writes the openAPIV3Schema of CustomResourceDefinitions to test/fixtures/crd-schemas/, for
// test/deploy.test.ts to validate deploy/'s custom resources offline, as an API server would.
// Descriptions are dropped (they are most of the bytes); nothing else is changed.
//
//   npx tsx scripts/vendor-crd-schemas.ts SOURCE=FILE...
// e.g. (from checkouts of each project at the tag named in test/fixtures/crd-schemas/README.md)
//   npx tsx scripts/vendor-crd-schemas.ts \
//     prometheus-operator@v0.93.0=../prometheus-operator/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
//     prometheus-operator@v0.93.0=../prometheus-operator/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml \
//     argo-rollouts@v1.9.1=../argo-rollouts/manifests/crds/analysis-template-crd.yaml \
//     flagger@v1.44.0=../flagger/artifacts/flagger/crd.yaml
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';

const OUT = 'test/fixtures/crd-schemas';
const strip = (s: unknown): unknown => {
  if (Array.isArray(s)) return s.map(strip);
  if (s && typeof s === 'object') return Object.fromEntries(Object.entries(s).filter(([k]) => k !== 'description').map(([k, v]) => [k, strip(v)]));
  return s;
};

interface Crd {
  kind: string;
  spec: { group: string; names: { kind: string }; versions: { name: string; served: boolean; schema: { openAPIV3Schema: unknown } }[] };
}

for (const arg of process.argv.slice(2)) {
  const [source, file] = arg.split('=') as [string, string];
  for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8'))) {
    const crd = doc.toJS() as Crd | null;
    if (crd?.kind !== 'CustomResourceDefinition') continue;
    for (const v of crd.spec.versions.filter((x) => x.served)) {
      const name = `${crd.spec.names.kind.toLowerCase()}.${crd.spec.group}.${v.name}.json`;
      const out = { source, apiVersion: `${crd.spec.group}/${v.name}`, kind: crd.spec.names.kind, schema: strip(v.schema.openAPIV3Schema) };
      writeFileSync(`${OUT}/${name}`, `${JSON.stringify(out)}\n`);
      console.log(`${OUT}/${name}`);
    }
  }
}
