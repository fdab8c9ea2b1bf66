// Checklists above the supported size (issue 12, item 7): a 50 MB checklist took 21 s and
// 1.8 GiB to validate. The loader reads at most MAX_CHECKLIST_BYTES and refuses the rest, so
// every path (validate, check, serve's start and its SIGHUP reload) turns such a file away
// with a diagnostic inside a V8 heap far smaller than the file: each process here runs with
// --max-old-space-size (NODE_OPTIONS), under which reading the file whole would end in an
// out-of-memory abort instead of exit 2. Real files, real processes, a real SIGHUP.
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MAX_CHECKLIST_BYTES } from '../../src/config/load.js';
import { runCli, startServe } from '../helpers/cli.js';
import { waitFor } from '../helpers/service.js';
import { checklistYaml, closedPortCheck } from '../helpers/checklists.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-size-'));
const suite = faultSuite(t, 'size');

/** A heap far below the 50 MB file (and the 1.8 GiB the old loader needed for it). */
const SMALL_HEAP = { NODE_OPTIONS: '--max-old-space-size=64' };
/** serve's own working set is larger than validate's; still less than twice the file. */
const SERVE_HEAP = { NODE_OPTIONS: '--max-old-space-size=96' };

const GOOD = checklistYaml('size', [closedPortCheck('closed')]);

/** A valid checklist grown to `bytes` with more valid checks (about 200 bytes each): only its size is wrong. */
function padded(file: string, bytes: number): string {
  const one = (i: number) => GOOD.slice(GOOD.indexOf('  - id: closed')).replace('id: closed', `id: closed-${i}`);
  const parts = [GOOD];
  let size = GOOD.length;
  for (let i = 0; size < bytes; i++) {
    const c = one(i);
    parts.push(c);
    size += c.length;
  }
  writeFileSync(file, parts.join(''));
  return file;
}

const big = padded(join(dir, 'fifty-mb.yaml'), 50_000_000);

suite.fault('a 50 MB checklist: validate, check and serve refuse it with the size diagnostic inside a 64-96 MiB heap', 240_000, async (t) => {
  t.ok(statSync(big).size >= 50_000_000, 'the file is 50 MB');
  t.equal(MAX_CHECKLIST_BYTES, 8 * 1024 * 1024, 'the documented limit');
  for (const [args, env] of [
    [['validate', '-c', big], SMALL_HEAP],
    [['check', '-c', big], SMALL_HEAP],
    [['serve', '-c', big, '--port', '0', '--data-dir', join(dir, 'data-start')], SERVE_HEAP],
  ] as const) {
    const r = await runCli([...args], { env, timeoutMs: 120_000 });
    t.equal(r.code, 2, `${args[0]} exits 2 (${r.stderr.slice(-300)})`);
    t.match(r.stderr, /fifty-mb\.yaml:1:1: the checklist is 47\.7 MiB: larger than the supported 8\.0 MiB/, `${args[0]}: the diagnostic names the file, the size and the limit`);
    t.notMatch(r.stderr, /heap out of memory|Allocation failed/, `${args[0]}: no out-of-memory abort`);
  }
});

suite.fault('SIGHUP onto a 50 MB checklist: rejected, the service keeps its checklist and its small heap', 240_000, async (t) => {
  const file = join(dir, 'served.yaml');
  writeFileSync(file, GOOD);
  const svc = await startServe(t, ['-c', file], { ...SERVE_HEAP, READINESS_DATA_DIR: join(dir, 'data-reload') });
  t.teardown(() => {
    if (!t.passing()) t.comment(svc.output().slice(-4000));
  });
  padded(file, 50_000_000);
  svc.child.kill('SIGHUP');
  const metrics = await waitFor(
    'the rejected reload',
    async () => {
      const m = await (await fetch(`${svc.url}/metrics`)).text();
      return /readiness_exporter_config_reloads_total\{result="failure"\} 1/.test(m) ? m : undefined;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
  t.match(metrics, 'readiness_exporter_config_last_reload_successful 0');
  t.equal(svc.child.exitCode, null, 'still running');
  const checks = (await (await fetch(`${svc.url}/checks`)).json()) as { checks: { id: string }[] };
  t.same(
    checks.checks.map((c) => c.id),
    ['closed'],
    'the running checklist is kept',
  );
  await waitFor('the diagnostic in the log', async () => (/larger than the supported 8\.0 MiB/.test(svc.output()) ? true : undefined), { timeoutMs: 10_000 });
  t.match(svc.output(), 'checklist reload rejected: keeping the running checklist');
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0, 'and it stops cleanly');
});
