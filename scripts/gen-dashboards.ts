// Regenerates the generated artifacts of alerts/ and dashboards/ (`npm run dashboards`):
//   dashboards/*.json                       from dashboards/src/*.ts (grafana-foundation-sdk)
//   alerts/readiness.prometheusrule.yaml    from alerts/readiness.rules.yml (same groups)
// `--check` writes nothing and exits 1 when a committed file differs from its generated text;
// `--root=DIR` works on another checkout instead of this one.
// test/dashboards.test.ts and test/alerts.test.ts fail on the same drift.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { renderDashboards } from '../dashboards/src/index.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RULES_FILE = 'alerts/readiness.rules.yml';
export const PROMETHEUS_RULE_FILE = 'alerts/readiness.prometheusrule.yaml';

const PROMETHEUS_RULE_HEADER = `# Generated from ${RULES_FILE} by \`npm run dashboards\` (scripts/gen-dashboards.ts): edit that
# file, not this one. A PrometheusRule for the Prometheus Operator; its ruleSelector must match
# these labels (kube-prometheus-stack selects \`release: <helm release>\` by default: add it).
`;

/** The PrometheusRule manifest carrying exactly the groups of the plain rules file. */
export function renderPrometheusRule(rulesYaml: string): string {
  const rules = YAML.parseDocument(rulesYaml);
  if (rules.errors.length > 0) throw new Error(`${RULES_FILE}: ${rules.errors[0]?.message}`);
  const manifest = new YAML.Document({
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'readiness-exporter',
      labels: {
        'app.kubernetes.io/name': 'readiness-exporter',
        'app.kubernetes.io/component': 'alerting-rules',
        'app.kubernetes.io/part-of': 'readiness-exporter',
      },
    },
    spec: { groups: [] },
  });
  // Reuse the parsed nodes so block scalars (the multi-line expressions) keep their style.
  manifest.setIn(['spec', 'groups'], rules.get('groups', true));
  return PROMETHEUS_RULE_HEADER + manifest.toString({ lineWidth: 0 });
}

/** Every generated file: repository-relative path -> the text it must contain. */
export function generatedFiles(root = ROOT): Map<string, string> {
  const files = renderDashboards();
  files.set(PROMETHEUS_RULE_FILE, renderPrometheusRule(readFileSync(join(root, RULES_FILE), 'utf8')));
  return files;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  // --root=DIR: another checkout (the tests point it at a scratch copy).
  const root = resolve(argv.find((a) => a.startsWith('--root='))?.slice('--root='.length) ?? ROOT);
  let stale = 0;
  for (const [file, text] of generatedFiles(root)) {
    const path = join(root, file);
    if (readOrEmpty(path) === text) continue;
    if (check) {
      console.error(`${file} is out of date: run npm run dashboards`);
      stale += 1;
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${file}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
