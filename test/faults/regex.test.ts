// A checklist's regular expression against text the target controls must finish, whatever the
// pair: conditions (`=~`, `!~`), flow step conditions, a report's `pattern`, S3 key patterns,
// label matchers against alert labels, Alertmanager's own route regexes. Each case here is a
// pair that takes a backtracking engine longer than the age of the universe; the engine is
// RE2 (src/regex.ts), so each finishes, with the right answer. How long /readiness takes
// while such a check runs is measured by bench/regex-bench.ts, not asserted here.
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { loadChecklist } from '../../src/config/load.js';
import { formatDiagnostic } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import { labelMatcher, matchesOne } from '../../src/probes/prometheus.js';
import { closeRegexWorker, INLINE_MAX_CHARS, SafeRegex } from '../../src/regex.js';
import type { ReadinessBody } from '../../src/state.js';
import { startServe } from '../helpers/cli.js';
import { waitFor } from '../helpers/service.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-regex-'));
const log = pino({ level: 'silent' });
const suite = faultSuite(t, 'regex');
t.teardown(() => closeRegexWorker());

/** 2^64 ways to split the a's: a backtracking engine never finishes `(a+)+$` on it. */
const EVIL_SHORT = `${'a'.repeat(64)}!`;
/** Long enough to be matched in the worker, short enough to stay under the probes' 1 MiB body cap. */
const EVIL_LONG = `${'a'.repeat((1 << 20) - 64)}!`;

async function bodyServer(t: Tap, body: string): Promise<string> {
  const srv = createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
}
type Tap = Parameters<Parameters<typeof suite.fault>[2]>[0];

function checklist(yaml: string) {
  const res = loadChecklist(`apiVersion: readiness/v1\nchecklist: regex\nchecks:\n${yaml}`, 'regex.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  return res.checklist;
}

const httpCheck = (id: string, url: string, expect: string[]) => `  - id: ${id}
    title: ${id}
    section: verify
    severity: high
    phase: verify
    probe: http
    with: { url: "${url}" }
    expect: ${JSON.stringify(expect)}
`;

suite.fault('conditions: (a+)+$ against a hostile body, short and 1 MiB, finishes with the right answer', 120_000, async (t) => {
  t.ok(EVIL_LONG.length > INLINE_MAX_CHARS, 'the long body is matched off the event loop');
  for (const [name, body] of [['64 a and !', EVIL_SHORT], ['1 MiB of a and !', EVIL_LONG]] as const) {
    const url = await bodyServer(t, body);
    const cl = checklist(
      httpCheck('evil', url, ['body =~ "(a+)+$"']) + httpCheck('evil-negated', url, ['body !~ "(a+)+$"']) + httpCheck('anchored', url, ['body =~ "^a+!$"', 'body !~ "(x+x+)+y"']),
    );
    const [evil, negated, anchored] = await Promise.all(cl.checks.map((def) => runCheck(def, { log, env: {} })));
    t.match(evil, { state: 'fail', reason: 'condition', message: /body =~ "\(a\+\)\+\$" is false/ }, `${name}: =~ is false`);
    t.match(negated, { state: 'pass' }, `${name}: !~ is true`);
    t.match(anchored, { state: 'pass' }, `${name}: a pattern that matches does`);
  }
});

suite.fault('every other place a checklist regex meets target text: flow, report, S3 keys, label matchers', 120_000, async (t) => {
  // flow: a step condition on the answer's body.
  const url = await bodyServer(t, EVIL_LONG);
  const flow = checklist(`  - id: flow
    title: flow
    section: verify
    severity: high
    phase: verify
    probe: flow
    with:
      url: "${url}"
      steps:
        - name: home
          expect: ['body !~ "(a+)+$"']
        - name: again
          expect: ['body =~ "(a+)+$"']
`);
  const f = await runCheck(flow.checks[0]!, { log, env: {} });
  t.match(f, { state: 'fail', message: /again.*body =~ "\(a\+\)\+\$" is false/ }, 'flow: step 1 passes, step 2 fails on its condition');

  // report: a text report whose pattern meets the file's text.
  const file = join(dir, 'report.txt');
  writeFileSync(file, `${EVIL_LONG}\ncoverage: 81.5\n`);
  const report = checklist(`  - id: report
    title: report
    section: verify
    severity: high
    phase: verify
    probe: report
    with: { source: "${file}", format: text, pattern: "^(?:a+)+$|coverage: ([0-9.]+)" }
    expect: ["match_number == 81.5"]
`);
  t.match(await runCheck(report.checks[0]!, { log, env: {} }), { state: 'pass', value: 81.5 }, 'report: the pattern finds its number');

  // S3 keys: a page of hostile keys, filtered in one batch.
  const keys = Array.from({ length: 1000 }, (_, i) => (i === 999 ? 'backup-2026.sql.gz' : `${'a'.repeat(1000)}!`));
  const kept = await SafeRegex.compile('^(a+)+$|\\.sql\\.gz$').testMany(keys);
  t.equal(kept.filter(Boolean).length, 1, 'S3: one key of 1000 kept');
  t.equal(kept[999], true);

  // Label matchers: the checklist's against an alert's labels, and Alertmanager's route regex
  // (the target's) against the checklist's labels.
  t.equal(matchesOne(labelMatcher('job', '=~', '(a+)+'), { job: EVIL_SHORT }), false, 'a label matcher on a hostile label value');
  t.equal(matchesOne(labelMatcher('service', '=~', '(a|aa)+$'), { service: `${'a'.repeat(5000)}b` }), false, 'a hostile route regex on a long label');
  t.equal(matchesOne(labelMatcher('service', '=~', '(?i)API|web'), { service: 'api' }), true, 'Go syntax: (?i) as Prometheus means it');
});

suite.fault('a served check with a hostile regex: the service keeps answering, the check reports the right state', 240_000, async (t) => {
  const url = await bodyServer(t, EVIL_LONG);
  const file = join(dir, 'served.yaml');
  writeFileSync(file, `apiVersion: readiness/v1\nchecklist: regex-served\ndefaults: { interval: 1s, timeout: 900ms }\nchecks:\n${httpCheck('evil', url, ['body =~ "(a+)+$"'])}`);
  const svc = await startServe(t, ['-c', file], { READINESS_DATA_DIR: join(dir, 'data') });
  const failing = await waitFor(
    'the check to report its result',
    async () => {
      const body = (await (await fetch(`${svc.url}/readiness`)).json()) as ReadinessBody;
      return body.failing.find((c) => c.id === 'evil' && c.state === 'fail');
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
  t.match(failing, { reason: 'condition', message: /body =~ "\(a\+\)\+\$" is false/ });
  // Several runs later the service still answers every endpoint.
  const runs = async () => Number(/readiness_check_runs_total\{check="evil",result="fail"\} (\d+)/.exec(await (await fetch(`${svc.url}/metrics`)).text())?.[1] ?? 0);
  await waitFor('three runs', async () => ((await runs()) >= 3 ? true : undefined), { timeoutMs: 60_000, everyMs: 200 });
  t.equal((await fetch(`${svc.url}/healthz`)).status, 200);
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0);
});

suite.fault('a regex RE2 does not accept is a load error with its position, not a surprise at run time', 60_000, async (t) => {
  const res = loadChecklist(
    `apiVersion: readiness/v1\nchecklist: x\nchecks:\n${httpCheck('look', 'http://127.0.0.1:1', ['body =~ "(?=a)b"', 'body =~ "(a)\\1"'])}`,
    'x.yaml',
    {},
  );
  t.notOk(res.ok);
  if (!res.ok) {
    t.match(res.diagnostics.map(formatDiagnostic).join('\n'), /x\.yaml:\d+:\d+: bad condition "body =~ \\"\(\?=a\)b\\"": invalid regular expression: .*RE2 syntax: no lookaround or backreferences/);
    t.equal(res.diagnostics.length, 2, 'both listed');
  }
});
