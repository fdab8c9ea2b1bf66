// Issue 12 item 2, the other half of test/faults/secrets-log.test.ts: that file pins the log
// hook itself; this one pins that what runs registers its checklist's secrets with it. A
// Service (serve) registers the loaded checklist's secrets when it builds its scheduler and,
// on a reload, the new file's (the rotated value is hidden from the next log line on); `check`
// registers them before it probes. Without those calls the hook has nothing to hide.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { check } from '../src/cli/check.js';
import { loadChecklistFile } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { scrubLogLine, setLogSecrets } from '../src/secrets.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';

const log = pino({ level: 'silent' });
const FIRST = 'cnry-registered-first/k+9z';
const ROTATED = 'cnry-registered-rotated/q+2w';

// The token only travels in an Authorization header to a closed port: nothing is sent.
const yaml = `apiVersion: readiness/v1
checklist: registered
checks:
  - id: api
    title: api answers
    section: s
    severity: low
    phase: pre-deploy
    probe: http
    with: { url: "http://127.0.0.1:1/", bearerTokenEnv: CANARY_TOKEN }
    expect: ["status == 200"]
    interval: 1h
`;

function file(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-registered-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'checklist.yaml');
  writeFileSync(f, yaml);
  return f;
}

const line = (s: string) => `{"msg":"target echoed Bearer ${s}"}`;

t.test('serve: the Service registers the checklist\'s secrets, and a reload registers the rotated one', async (t) => {
  const f = file(t);
  const env = { CANARY_TOKEN: FIRST };
  t.equal(scrubLogLine(line(FIRST)), line(FIRST), 'precondition: nothing is registered before the service is built');
  const loaded = await loadChecklistFile(f, env);
  if (!loaded.ok) return t.fail(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  t.ok(loaded.checklist.checks[0]!.secrets.includes(FIRST), 'precondition: the loader lists the token as a secret');
  t.equal(scrubLogLine(line(FIRST)), line(FIRST), 'loading alone registers nothing');

  const service = new Service({ file: f, checklist: loaded.checklist, store: new MemoryStore(), log, env });
  t.teardown(() => service.stop(0));
  t.equal(scrubLogLine(line(FIRST)), line('***'), 'the running checklist\'s token is hidden from log lines');

  env.CANARY_TOKEN = ROTATED;
  const r = await service.reload();
  t.same(r, { ok: true, checks: 1 }, 'precondition: the reload succeeds');
  t.equal(scrubLogLine(line(ROTATED)), line('***'), 'after a reload the rotated token is hidden');
  await service.stop(0);
});

t.test('check: registers the checklist\'s secrets before it probes', async (t) => {
  setLogSecrets({}, undefined);
  const f = file(t);
  const out: string[] = [];
  const probeToken = 'cnry-registered-check/m+5v';
  t.equal(scrubLogLine(line(probeToken)), line(probeToken), 'precondition: this token is not registered yet');
  const code = await check({ config: f, format: 'json', concurrency: 1 }, { out: (s) => out.push(s), err: (s) => out.push(s), env: { CANARY_TOKEN: probeToken, READINESS_LOG_LEVEL: 'silent' } });
  t.equal(code, 1, 'precondition: the check ran and failed (port 1 is closed)');
  t.notOk(out.join('\n').includes(probeToken), 'the token is in no output');
  t.equal(scrubLogLine(line(probeToken)), line('***'), 'check registered the token with the log hook');
});
