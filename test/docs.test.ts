// Documentation cannot drift from the code: every metric family, reason, API error code,
// checklist key and probe kind is documented (kube-state-metrics' TestDocumentation idea).
import { existsSync, readFileSync } from 'node:fs';
import pino from 'pino';
import t from 'tap';
import { CheckSchema, DefaultsSchema, propertyNames } from '../src/config/schema.js';
import { API_ERRORS } from '../src/errors.js';
import { buildServer } from '../src/http/server.js';
import { createMetrics } from '../src/metrics.js';
import { probeKinds } from '../src/probes/index.js';
import { REASONS } from '../src/reasons.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const metricsDoc = readFileSync('docs/metrics.md', 'utf8');
const apiDoc = readFileSync('docs/api.md', 'utf8');
const configDoc = readFileSync('docs/config.md', 'utf8');

t.test('every readiness_* metric family is documented', async (t) => {
  const service = new Service({ file: 'x', checklist: checklistOf(makeDef(() => ({ fields: {} }))), store: new MemoryStore(), log: pino({ level: 'silent' }) });
  const text = await createMetrics(service).scrape();
  const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!).filter((n) => n.startsWith('readiness_'));
  t.ok(names.length >= 20, `${names.length} families`);
  for (const n of names) t.match(metricsDoc, `\`${n}\``, n);
});

t.test('every reason is documented', async (t) => {
  for (const r of Object.keys(REASONS)) t.match(metricsDoc, `| \`${r}\` |`, r);
});

t.test('every API error code is documented', async (t) => {
  for (const code of Object.keys(API_ERRORS)) t.match(apiDoc, `| \`${code}\` |`, code);
});

t.test('every checklist key is documented', async (t) => {
  for (const k of propertyNames(CheckSchema)) t.match(configDoc, `| \`${k}\` |`, k);
  for (const k of propertyNames(DefaultsSchema)) t.match(configDoc, new RegExp(`^\\s+${k}:`, 'm'), `defaults.${k}`);
});

t.test('every probe kind has its page', async (t) => {
  for (const kind of probeKinds.keys()) t.ok(existsSync(`docs/probes/${kind}.md`), `docs/probes/${kind}.md`);
});

t.test('every route of the OpenAPI document is in docs/api.md', async (t) => {
  const service = new Service({ file: 'x', checklist: checklistOf(makeDef(() => ({ fields: {} }))), store: new MemoryStore(), log: pino({ level: 'silent' }) });
  const app = await buildServer({ service, log: pino({ level: 'silent' }) });
  t.teardown(() => app.close());
  const doc = (await app.inject('/docs')).json() as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
  t.ok(routes.length >= 15, `${routes.length} routes`);
  for (const r of routes) t.match(apiDoc, `\`${r}\``, r);
});
