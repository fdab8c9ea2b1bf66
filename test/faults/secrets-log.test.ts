// Issue 12 item 2: the log scrubbing hook. `readiness serve` and `readiness check` log through
// makeLogger (src/cli/logger.ts), whose pino streamWrite hook replaces every registered secret
// (src/secrets.ts setLogSecrets, called with each loaded checklist's secrets) by ***. This pins
// the hook itself: a process logs a canary, in each form a probe sends it, at every level, in
// the message, in a field and in an error's message and stack, to stdout (serve) and stderr
// (check). With the secrets registered no line shows one; without (the control) every line
// does, so the test can see a leak. Removing the hook fails it.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { faultSuite } from '../helpers/faults.js';

const suite = faultSuite(t, 'secrets-log');
const CANARY = 'cnry-log-token/k+9z';
const PAIR = 'cnry-user:cnry-log-pw/x+1';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/** Runs the built logger in a child process; returns what it wrote to the stream. */
function logInChild(register: boolean, toStderr: boolean): string {
  const script = `
    import { makeLogger } from './dist/cli/logger.js';
    import { secretForms, setLogSecrets } from './dist/secrets.js';
    const [canary, pair, register, toStderr] = JSON.parse(process.argv[1]);
    if (register) setLogSecrets({}, secretForms([canary], [pair]));
    const log = makeLogger('trace', toStderr).child({ check: 'c' });
    const forms = [canary, encodeURIComponent(canary), Buffer.from(canary).toString('base64'), Buffer.from(pair).toString('base64')];
    for (const level of ${JSON.stringify(LEVELS)}) {
      log[level]({ detail: forms.join(' '), nested: { echo: JSON.stringify({ body: canary }) }, err: new Error('target said ' + forms.join(' ')) }, 'echoed ' + forms.join(' '));
    }
    log.flush?.();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify([CANARY, PAIR, register, toStderr])], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`the logging child exited ${r.status}: ${r.stderr}`);
  return toStderr ? r.stderr : r.stdout;
}

const forbidden: [string, string][] = [
  ['raw', CANARY],
  ['URL-encoded', encodeURIComponent(CANARY)],
  ['base64', b64(CANARY)],
  ['Basic user:password base64', b64(PAIR)],
];

suite.fault('every log level, field and error of serve (stdout) and check (stderr) is scrubbed of registered secrets', 120_000, async (t) => {
  for (const toStderr of [false, true]) {
    const stream = toStderr ? 'stderr (check)' : 'stdout (serve)';
    const out = logInChild(true, toStderr);
    const lines = out.split('\n').filter((l) => l.includes('"msg":"echoed'));
    t.equal(lines.length, LEVELS.length, `${stream}: one line per level was written`);
    for (const [form, v] of forbidden) t.notOk(out.includes(v), `${stream}: no ${form} canary in any line`);
    t.ok(lines.every((l) => l.includes('***')), `${stream}: every line shows *** where the secret was`);

    // The control: the same lines with nothing registered show the canary in every form.
    const control = logInChild(false, toStderr);
    for (const [form, v] of forbidden) t.ok(control.includes(v), `${stream}, nothing registered: the ${form} canary shows (the test can see a leak)`);
  }
});
