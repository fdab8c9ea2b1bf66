// The loader: every rejection fixture with its exact file:line:col message, env
// substitution, unconfigured checks, and the shipped checklist.
import { readdirSync } from 'node:fs';
import t from 'tap';
import { loadChecklist, loadChecklistFile } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { DEFAULT_CONFIG } from '../src/cli.js';
import { probeKinds } from '../src/probes/index.js';
import { CheckSchema, propertyNames } from '../src/config/schema.js';

const F = 'test/fixtures';

const expected: Record<string, string[]> = {
  'invalid-condition.yaml': [
    `${F}/invalid-condition.yaml:11:15: bad condition "opn == false": unknown field "opn" (this probe reports: open, connect_ms, result, address, addresses)`,
    `${F}/invalid-condition.yaml:11:42: bad condition "connect_ms => 5": expected an operator (== != <= >= =~ !~ < >) after "connect_ms"`,
  ],
  'invalid-cron.yaml': [`${F}/invalid-cron.yaml:11:15: bad cron expression "61 * * * *": CronPattern: Invalid value for minute: 61`],
  'invalid-depends-on.yaml': [
    `${F}/invalid-depends-on.yaml:11:16: dependency cycle: a -> b -> a`,
    `${F}/invalid-depends-on.yaml:19:20: dependsOn names unknown check "nope"`,
  ],
  'invalid-duplicate-id.yaml': [`${F}/invalid-duplicate-id.yaml:11:9: duplicate check id "db-port-closed" (first defined at line 4, column 9)`],
  // A schema error in a check (severity, an unknown key) hides none of its other problems, nor
  // the duplicate of its id further down, nor the problems of a check missing its title.
  'invalid-all-at-once.yaml': [
    `${F}/invalid-all-at-once.yaml:3:23: bad duration "1 minute": use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`,
    `${F}/invalid-all-at-once.yaml:3:33: unknown key "timout" (did you mean "timeout"?); allowed: interval, timeout, failAfter, passAfter, onNoData, monitorWindow, runbookBase`,
    `${F}/invalid-all-at-once.yaml:8:15: "severity" must be one of critical, high, medium, low, got "urgent"`,
    `${F}/invalid-all-at-once.yaml:10:12: unknown probe kind "htp" (did you mean "http"?); known kinds: ${[...probeKinds.keys()].join(', ')}`,
    `${F}/invalid-all-at-once.yaml:12:5: unknown key "intervl" (did you mean "interval"?); allowed: ${propertyNames(CheckSchema).join(', ')}`,
    `${F}/invalid-all-at-once.yaml:13:14: bad duration "soon": use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`,
    `${F}/invalid-all-at-once.yaml:21:23: bad condition "open == flase": cannot read value flase (quote strings: "flase")`,
    `${F}/invalid-all-at-once.yaml:22:15: bad duration "5 minutes": use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`,
    `${F}/invalid-all-at-once.yaml:23:5: missing required key "title"`,
    `${F}/invalid-all-at-once.yaml:23:9: duplicate check id "api-health" (first defined at line 5, column 9)`,
    `${F}/invalid-all-at-once.yaml:28:58: "method" must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got "FETCH"`,
    `${F}/invalid-all-at-once.yaml:29:26: dependsOn names unknown check "nope"`,
  ],
  'invalid-duplicate-key.yaml': [`${F}/invalid-duplicate-key.yaml:6:5: YAML: Map keys must be unique`],
  'invalid-duration.yaml': [`${F}/invalid-duration.yaml:11:15: bad duration "5 minutes": use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`],
  'invalid-id.yaml': [`${F}/invalid-id.yaml:4:9: "id" is "DB_Port": expected lower-case letters, digits and dashes, at most 63 characters, e.g. tls-api-expiry`],
  'invalid-many.yaml': [
    `${F}/invalid-many.yaml:1:13: "apiVersion" must be one of readiness/v1, got "readiness/v2"`,
    `${F}/invalid-many.yaml:4:5: missing required key "title"`,
    `${F}/invalid-many.yaml:17:14: bad duration "soon": use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`,
    `${F}/invalid-many.yaml:18:23: bad condition "open == \\"yes\\"": "open" is true or false, cannot compare it with "yes"`,
  ],
  'invalid-notify.yaml': [
    `${F}/invalid-notify.yaml:11:13: notify: page is not allowed for an attestation: a missing signature never pages (use ticket or none)`,
    `${F}/invalid-notify.yaml:19:13: notify: rollback is for checks of phase deploy, verify, monitor (what fails after a deployment); this one is pre-deploy: use page, ticket or none`,
    `${F}/invalid-notify.yaml:28:13: notify: rollback needs gate: true (a check that does not gate cannot recommend a rollback)`,
    `${F}/invalid-notify.yaml:36:13: "notify" must be one of rollback, page, ticket, none, got "pager"`,
  ],
  'invalid-params.yaml': [
    `${F}/invalid-params.yaml:10:11: missing required key "host"`,
    `${F}/invalid-params.yaml:10:13: unknown key "hostname"; allowed: host, port, connectTimeoutMs`,
    `${F}/invalid-params.yaml:10:40: "port" must be integer, got "abc"`,
  ],
  'invalid-promql.yaml': [`${F}/invalid-promql.yaml:13:14: query: PromQL syntax error at column 8: unexpected "(" ("rat" is not a PromQL function)`],
  'invalid-severity.yaml': [
    `${F}/invalid-severity.yaml:7:15: "severity" must be one of critical, high, medium, low, got "urgent"`,
    `${F}/invalid-severity.yaml:8:12: "phase" must be one of pre-deploy, deploy, verify, monitor, post-deploy, got "predeploy"`,
  ],
  'invalid-target.yaml': [`${F}/invalid-target.yaml:12:13: unknown target "database"; defined targets: db`],
  'invalid-timeout.yaml': [`${F}/invalid-timeout.yaml:12:14: timeout 1m (60000 ms) is longer than the interval (30000 ms): runs would pile up`],
  'invalid-unknown-key.yaml': [
    `${F}/invalid-unknown-key.yaml:10:5: unknown key "intervl" (did you mean "interval"?); allowed: id, title, description, section, severity, phase, probe, target, with, expect, warn, interval, schedule, timeout, runbook, failAfter, passAfter, onNoData, dependsOn, gate, notify, value, intrusive, marksDeployment`,
  ],
  'invalid-unknown-probe.yaml': [`${F}/invalid-unknown-probe.yaml:9:12: unknown probe kind "tpc" (did you mean "tcp"?); known kinds: ${''}`],
  'invalid-yaml.yaml': [`${F}/invalid-yaml.yaml:7:1: YAML: Missing closing "quote`],
};

t.test('every invalid fixture is rejected with its exact messages', async (t) => {
  const fixtures = readdirSync(F).filter((f) => f.startsWith('invalid-'));
  t.same(fixtures.sort(), Object.keys(expected).sort(), 'each fixture has its expected messages here');
  for (const f of fixtures) {
    const res = await loadChecklistFile(`${F}/${f}`, {});
    t.equal(res.ok, false, `${f} is rejected`);
    if (res.ok) continue;
    const got = res.diagnostics.map(formatDiagnostic);
    if (f === 'invalid-unknown-probe.yaml') {
      t.equal(got.length, 1);
      t.match(got[0], expected[f]![0]!, f);
      t.match(got[0], /known kinds: .*\bhttp\b.*\btcp\b/, 'lists the registered kinds');
    } else {
      t.same(got, expected[f], f);
    }
  }
});

t.test('the minimal valid checklist loads with defaults', async (t) => {
  const res = await loadChecklistFile(`${F}/valid-minimal.yaml`, {});
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  const c = res.checklist.checks[0]!;
  t.equal(c.intervalMs, 60_000);
  t.equal(c.timeoutMs, 10_000);
  t.equal(c.onNoData, 'error');
  t.equal(c.failAfter, 1);
  t.equal(c.gate, true);
  t.same(c.params, { host: '127.0.0.1', port: 5432, connectTimeoutMs: 3000 }, 'params typed and defaulted by the kind');
  t.ok(Object.isFrozen(res.checklist), 'frozen');
});

const base = (check: string, extra = '') => `apiVersion: readiness/v1
checklist: env
${extra}checks:
${check}`;

t.test('${VAR} and ${VAR:-default} substitution; unset means unconfigured', async (t) => {
  const text = base(
    `  - id: a
    title: A
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    target: db
    with: { port: "\${DB_PORT:-6543}" }
  - id: b
    title: B
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: "\${MISSING_HOST}", port: "\${MISSING_PORT}" }
  - id: c
    title: C
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: "literal-$\${x}", port: 1 }
`,
    'targets:\n  db: { host: "${DB_HOST}" }\n',
  );
  const res = loadChecklist(text, 'env.yaml', { DB_HOST: 'db.internal' });
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  const [a, b, c] = res.checklist.checks;
  t.same(a!.params.host, 'db.internal', 'target field substituted');
  t.equal(a!.params.port, 6543, 'default used, then coerced to the kind\'s integer');
  t.equal(a!.unconfigured, undefined);
  t.equal(b!.unconfigured, 'environment variables MISSING_HOST, MISSING_PORT are not set', 'unset variables make the check unconfigured, not invalid');
  t.equal(c!.params.host, 'literal-${x}', '$${ escapes');
});

t.test('env in conditions; a missing one makes the check unconfigured', async (t) => {
  const check = `  - id: v
    title: V
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: h, port: 1 }
    expect: ['result == "\${WANT}"']
`;
  const ok = loadChecklist(base(check), 'c.yaml', { WANT: 'open' });
  if (!ok.ok) return t.fail(ok.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(ok.checklist.checks[0]!.expect[0]!.literal, 'open');
  const missing = loadChecklist(base(check), 'c.yaml', {});
  if (!missing.ok) return t.fail(missing.diagnostics.map(formatDiagnostic).join('\n'));
  t.match(missing.checklist.checks[0]!.unconfigured, /WANT/);
});

t.test('cron schedules give the interval between firings', async (t) => {
  const res = loadChecklist(
    base(`  - id: a
    title: A
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: h, port: 1 }
    schedule: "*/15 * * * *"
`),
    'c.yaml',
    {},
  );
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(res.checklist.checks[0]!.intervalMs, 15 * 60_000);
  t.equal(res.checklist.checks[0]!.schedule, '*/15 * * * *');
});

t.test('the shipped checklist validates', async (t) => {
  const res = await loadChecklistFile(DEFAULT_CONFIG, {});
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  t.ok(res.checklist.checks.length >= 15);
  t.equal(res.checklist.name, 'offgridflow-production');
  const ids = res.checklist.checks.map((c) => c.id);
  t.ok(ids.includes('tls-api-expiry') && ids.includes('health-ready') && ids.includes('postgres-not-public'));
});

t.test('an unreadable file is one diagnostic, not a crash', async (t) => {
  const res = await loadChecklistFile('test/fixtures/does-not-exist.yaml', {});
  t.equal(res.ok, false);
  if (!res.ok) t.match(formatDiagnostic(res.diagnostics[0]!), /^test\/fixtures\/does-not-exist.yaml:1:1: cannot read checklist: ENOENT/);
});

t.test('secret params: URLs are secret only in their password', async (t) => {
  const { secretValues, displaySecret } = await import('../src/config/load.js');
  t.same(secretValues('postgres://app:p%40ss@db:5432/app'), ['p%40ss', 'p@ss']);
  t.same(secretValues('https://api.example.com/health'), [], 'a URL without credentials is not secret');
  t.same(secretValues('sk_live_abc'), ['sk_live_abc']);
  t.same(secretValues({ Authorization: 'Bearer xyz', n: 1 }), ['Bearer xyz']);
  t.equal(displaySecret('postgres://app:secret@db:5432/app'), 'postgres://db:5432/app');
  t.equal(displaySecret({ a: 'b' }), '***');
  const res = loadChecklist(
    base(`  - id: h
    title: H
    section: s
    severity: low
    phase: pre-deploy
    probe: http
    with: { url: "\${API}", headers: { authorization: "Bearer \${TOKEN}" } }
`),
    'c.yaml',
    { API: 'https://user:hunter22@api.example.com', TOKEN: 'tok-987654' },
  );
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  // The values themselves, and the encodings a probe sends them in (src/secrets.ts): URL-encoded,
  // base64, and the Basic pair of the URL's user:password.
  const secrets = res.checklist.checks[0]!.secrets;
  for (const s of ['Bearer tok-987654', 'hunter22', 'Bearer%20tok-987654', Buffer.from('hunter22').toString('base64'), Buffer.from('user:hunter22').toString('base64')]) {
    t.ok(secrets.includes(s), `secret form ${s}`);
  }
  t.notOk(secrets.some((s) => s.includes('api.example.com') || s === 'user'), 'the host and the user name are not secrets');
});

t.test('defaults.runbookBase gives every check the runbook URL the alerts use', async (t) => {
  const res = loadChecklist(
    `apiVersion: readiness/v1
checklist: rb
defaults: { runbookBase: "https://runbooks.example.com/readiness/" }
checks:
  - id: a
    title: A
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: h, port: 1 }
  - id: b
    title: B
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: h, port: 1 }
    runbook: https://wiki.example.com/b
`,
    'rb.yaml',
    {},
  );
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(res.checklist.byId.get('a')!.runbook, 'https://runbooks.example.com/readiness/checks/a');
  t.equal(res.checklist.byId.get('b')!.runbook, 'https://wiki.example.com/b', 'an explicit runbook wins');
});

t.test('a variable named by a param (bearerTokenEnv) is required like a ${VAR}', async (t) => {
  const text = base(`  - id: h
    title: H
    section: s
    severity: low
    phase: pre-deploy
    probe: http
    with: { url: "https://api.example.com", bearerTokenEnv: API_TOKEN }
`);
  // Both loads must succeed: an assertion guarded by `if (x.ok)` alone passes when the load fails.
  const unset = loadChecklist(text, 'c.yaml', {});
  if (!unset.ok) return t.fail(unset.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(unset.checklist.checks[0]!.unconfigured, 'environment variable API_TOKEN is not set');
  const set = loadChecklist(text, 'c.yaml', { API_TOKEN: 'x' });
  if (!set.ok) return t.fail(set.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(set.checklist.checks[0]!.unconfigured, undefined);
});

t.test('notify: defaults by phase, severity and kind; an explicit value wins', async (t) => {
  const check = (id: string, phase: string, severity: string, probe: string, extra = '') => `  - id: ${id}
    title: ${id}
    section: s
    severity: ${severity}
    phase: ${phase}
    probe: ${probe}
    with: ${probe === 'attestation' ? '{ roles: [qa-lead] }' : '{ host: h, port: 1 }'}
${extra}`;
  const res = loadChecklist(
    base(
      [
        check('pre-critical', 'pre-deploy', 'critical', 'tcp'),
        check('pre-high', 'pre-deploy', 'high', 'tcp'),
        check('pre-medium', 'pre-deploy', 'medium', 'tcp'),
        check('pre-watched', 'pre-deploy', 'critical', 'tcp', '    notify: page\n'),
        check('deploy-critical', 'deploy', 'critical', 'tcp'),
        check('verify-critical', 'verify', 'critical', 'tcp'),
        check('verify-high', 'verify', 'high', 'tcp'),
        check('verify-medium', 'verify', 'medium', 'tcp'),
        check('verify-paged', 'verify', 'critical', 'tcp', '    notify: page\n'),
        check('monitor-low', 'monitor', 'low', 'tcp'),
        check('monitor-advisory', 'monitor', 'critical', 'tcp', '    gate: false\n'),
        check('monitor-signed', 'monitor', 'high', 'attestation'),
        check('post-critical', 'post-deploy', 'critical', 'tcp'),
        check('signoff', 'pre-deploy', 'critical', 'attestation'),
        check('signoff-ticket', 'pre-deploy', 'critical', 'attestation', '    notify: ticket\n'),
      ].join(''),
    ),
    'n.yaml',
    {},
  );
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  t.same(Object.fromEntries(res.checklist.checks.map((c) => [c.id, c.notify])), {
    'pre-critical': 'ticket',
    'pre-high': 'ticket',
    'pre-medium': 'none',
    'pre-watched': 'page',
    'deploy-critical': 'ticket',
    'verify-critical': 'rollback',
    'verify-high': 'rollback',
    'verify-medium': 'none',
    'verify-paged': 'page',
    'monitor-low': 'rollback',
    'monitor-advisory': 'none',
    'monitor-signed': 'none',
    'post-critical': 'ticket',
    signoff: 'none',
    'signoff-ticket': 'ticket',
  });
});

t.test('the shipped checklist pages only for what is watched continuously', async (t) => {
  const res = await loadChecklistFile(DEFAULT_CONFIG, {});
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  const by = (n: string) => res.checklist.checks.filter((c) => c.notify === n);
  // Certificate expiry, backups and the alerting pipeline: a failure there hurts at any hour.
  t.same(by('page').map((c) => c.id).sort(), [
    'alerting-pipeline-watchdog',
    'alertmanager-receiver-pagerduty',
    'backup-job-succeeded',
    'backup-latest-age',
    'rpo-wal-archive-age',
    'tls-api-expiry',
    'tls-app-expiry',
  ]);
  t.ok(by('page').every((c) => c.phase === 'pre-deploy' && c.kind !== 'attestation'), 'pages are pre-deploy checks watched continuously');
  t.ok(by('rollback').every((c) => c.phase === 'verify' || c.phase === 'monitor'), 'the rollback incident gathers verify and monitor checks');
  t.ok(res.checklist.checks.filter((c) => c.phase === 'monitor' && c.kind !== 'attestation').every((c) => c.notify === 'rollback'), 'every monitor measurement is a rollback cause');
  t.ok(res.checklist.checks.filter((c) => c.kind === 'attestation').every((c) => c.notify === 'none'), 'attestations never alert');
});
