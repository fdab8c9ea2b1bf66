// exec probe against real scripts written to a temp directory and run by /bin/sh.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import execProbe from '../../src/probes/exec.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { runShipped } from '../helpers/fake-apis.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(execProbe.params);
type Params = Static<typeof execProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const SECRET = 'smoke-t0ken-do-not-print';
const dir = mkdtempSync(join(tmpdir(), 'exec-probe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Writes an executable /bin/sh script and returns its path. */
function script(name: string, body: string, mode = 0o755): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, mode);
  return file;
}

const env = { PATH: process.env.PATH, HOME: '/home/someone', SMOKE_TOKEN: SECRET, API_URL: 'http://127.0.0.1:1', OTHER_SECRET: 'never-passed-value' };
const ctx = (timeoutMs = 5000) => makeCtx({ env, timeoutMs });
const run = (p: Record<string, unknown>, c = ctx()) => execProbe.run(params(p), c);

/** Whether a process still runs: a zombie (killed, not yet reaped by init) does not. */
async function alive(pid: number): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    let state: string;
    try {
      state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!;
    } catch {
      return false;
    }
    if (state === 'Z') return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

t.test('exit 0 passes; the last lines of output are in the message', async (t) => {
  const cmd = script('ok.sh', 'echo "login ok"; echo "create activity ok" >&2; sleep 0.1; echo; echo "report ok"');
  const obs = await run({ command: cmd });
  t.equal(obs.failure, undefined);
  t.equal(obs.error, undefined);
  t.equal(obs.value, 0);
  t.equal(obs.fields.exit_code, 0);
  // stdout and stderr come through two pipes: each keeps its own order, and under load the
  // event loop may read one before the other (docs/probes/exec.md), so the stderr line is
  // asserted present, not placed.
  const output = String(obs.fields.output);
  t.equal(output.replace('create activity ok\n', ''), 'login ok\n\nreport ok\n', 'stdout in the order written');
  t.equal(output.split('create activity ok\n').length, 2, 'stderr kept, once');
  t.type(obs.fields.duration_ms, 'number');
  t.match(obs.message, /^\S+ok\.sh exited 0 in [\d.]+ s; last output: /);
  const last = (obs.message ?? '').replace(/^.*; last output: /, '').split(' | ');
  t.same([...last].sort(), ['create activity ok', 'login ok', 'report ok'], 'the last lines, blank ones left out');
  t.same(last.filter((l) => l !== 'create activity ok'), ['login ok', 'report ok']);
});

t.test('a non-zero exit fails with the exit code and the tail of the output', async (t) => {
  const cmd = script('fail.sh', 'for i in 1 2 3 4 5 6 7; do echo "step $i"; done; echo "FAIL: dashboard answered 500" >&2; exit 3');
  const obs = await run({ command: cmd, args: ['--suite', 'smoke'], tailLines: 3 });
  t.equal(obs.failure?.reason, 'condition');
  t.match(obs.failure?.message, /fail\.sh --suite smoke exited 3 in [\d.]+ s \(expected exit code 0\); last output: step 6 \| step 7 \| FAIL: dashboard answered 500$/);
  t.equal(obs.fields.exit_code, 3);
  t.equal(obs.value, 3);
  const allowed = await run({ command: cmd, expectExitCodes: [0, 3] });
  t.equal(allowed.failure, undefined, 'exit 3 passes when expected');
  const other = await run({ command: script('four.sh', 'exit 4'), expectExitCodes: [0, 3] });
  t.match(other.failure?.message, /exited 4 in [\d.]+ s \(expected exit code 0 or 3\); no output$/);
});

t.test('arguments are passed as they are, without a shell', async (t) => {
  const cmd = script('args.sh', 'for a in "$@"; do echo "[$a]"; done');
  const obs = await run({ command: cmd, args: ['$HOME', 'a b', '; rm -rf /', '*'] });
  t.equal(obs.fields.output, '[$HOME]\n[a b]\n[; rm -rf /]\n[*]\n');
});

t.test('environment: only the allow-list, PATH and setEnv; secret values scrubbed', async (t) => {
  const cmd = script('env.sh', 'env | sort; echo "token is $SMOKE_TOKEN"');
  const obs = await run({ command: cmd, env: ['SMOKE_TOKEN', 'NOT_SET'], setEnv: { BASE_URL: 'http://api.local' } });
  const out = String(obs.fields.output);
  t.match(out, /^BASE_URL=http:\/\/api\.local$/m);
  t.match(out, /^PATH=/m);
  t.match(out, /^SMOKE_TOKEN=\*\*\*$/m);
  t.match(out, /token is \*\*\*/);
  t.notMatch(out, /HOME=|OTHER_SECRET|API_URL|NOT_SET/, 'nothing else of the environment');
  t.notOk(JSON.stringify(obs).includes(SECRET), 'the secret appears nowhere');
});

t.test('output is capped, keeping the end', async (t) => {
  const cmd = script('loud.sh', 'i=0; while [ $i -lt 3000 ]; do echo "line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done; echo "the end"');
  const obs = await run({ command: cmd, maxOutputBytes: 4096, tailLines: 1 });
  const out = String(obs.fields.output);
  t.ok(Buffer.byteLength(out) <= 4096, `kept ${Buffer.byteLength(out)} bytes`);
  t.ok(out.endsWith('the end\n'));
  t.ok((obs.fields.output_bytes as number) > 250_000, 'counts every byte written');
  t.match(obs.message, /last output: the end$/);
});

t.test('a program killed by a signal fails without an exit code', async (t) => {
  const obs = await run({ command: script('killed.sh', 'echo before; kill -9 $$') });
  t.equal(obs.failure?.reason, 'condition');
  t.match(obs.failure?.message, /was killed by SIGKILL in [\d.]+ s \(expected exit code 0\); last output: before$/);
  t.equal(obs.fields.signal, 'SIGKILL');
  t.equal(obs.fields.exit_code, undefined);
  t.equal(obs.value, undefined);
});

t.test('a background process holding the output open does not hold the check', async (t) => {
  const pidFile = join(dir, 'bg.pid');
  const cmd = script('bg.sh', `sleep 30 & echo $! > ${pidFile}; echo started`);
  const started = Date.now();
  const obs = await run({ command: cmd });
  t.equal(obs.fields.exit_code, 0);
  t.ok(Date.now() - started < 3000, 'returns promptly');
  t.notOk(await alive(Number(readFileSync(pidFile, 'utf8'))), 'the leftover process was killed');
});

t.test('timeout: the check signal kills the whole process group', async (t) => {
  const pidFile = join(dir, 'child.pid');
  const cmd = script('hang.sh', `sleep 30 & echo $! > ${pidFile}; echo "waiting for the API"; wait`);
  const started = Date.now();
  const err = await run({ command: cmd }, ctx(400)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError, 'a ProbeError');
  t.equal((err as ProbeError).reason, 'timeout');
  t.match((err as ProbeError).message, /hang\.sh: still running at the check timeout \(400 ms\), killed; last output: waiting for the API$/);
  t.ok(Date.now() - started < 3000, 'settles promptly');
  t.notOk(await alive(Number(readFileSync(pidFile, 'utf8'))), 'the grandchild was killed too');
});

t.test('could not run: not found, not executable', async (t) => {
  const missing = await run({ command: join(dir, 'missing.sh') });
  t.same(missing.error, { reason: 'error', message: `cannot run ${join(dir, 'missing.sh')}: ENOENT (not found)` });
  const notExec = await run({ command: script('noexec.sh', 'exit 0', 0o644) });
  t.match(notExec.error?.message, /noexec\.sh: EACCES \(not executable\)$/);
  const byName = await run({ command: 'no-such-program-anywhere' });
  t.equal(byName.error?.reason, 'error');
});

t.test('the shipped smoke-tests row runs the script with its argument and environment', async (t) => {
  const ok = script('smoke-ok.sh', '[ "$1" = production ] && [ "$API_URL" = https://api.example.test ] && [ -n "$SMOKE_API_TOKEN" ] && echo "all smoke tests passed"');
  const bad = script('smoke-bad.sh', 'echo "FAIL: POST /api/v1/activities answered 500"; exit 1');
  const env = { PATH: process.env.PATH, API_URL: 'https://api.example.test', SMOKE_API_TOKEN: SECRET };
  const [pass] = await runShipped({ ...env, SMOKE_TEST_SCRIPT: ok }, ['smoke-tests']);
  t.equal(pass!.state, 'pass', pass!.message);
  t.match(pass!.message, /last output: all smoke tests passed$/);
  const [fail] = await runShipped({ ...env, SMOKE_TEST_SCRIPT: bad }, ['smoke-tests']);
  t.equal(fail!.state, 'fail');
  t.match(fail!.message, /smoke-bad\.sh production exited 1 in [\d.]+ s \(expected exit code 0\); last output: FAIL: POST \/api\/v1\/activities answered 500$/);
  const [unset] = await runShipped({ PATH: process.env.PATH }, ['smoke-tests']);
  t.equal(unset!.state, 'unconfigured');
});

t.test('validate: problems caught at load', async (t) => {
  const v = (p: Record<string, unknown>) => execProbe.validate?.(params(p));
  t.same(v({ command: 'sh', args: ['-c', 'true'] }), []);
  t.same(v({ command: './scripts/none.sh' }), ['command ./scripts/none.sh does not exist']);
  t.same(v({ command: 'sh', cwd: '/nonexistent-dir' }), ['cwd /nonexistent-dir does not exist']);
  t.same(v({ command: 'sh', env: ['A'], setEnv: { A: '1' } }), ['A in both env and setEnv']);
  t.throws(() => params({ command: 'sh', env: ['not a name'] }), /pattern/);
  t.throws(() => params({ command: 'sh', maxOutputBytes: 10 }), /minimum/);
  t.same(params({ command: 'sh' }), { command: 'sh', args: [], env: [], expectExitCodes: [0], maxOutputBytes: 65536, tailLines: 5 });
});
