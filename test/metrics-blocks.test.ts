// /metrics keeps each family's lines per block of BLOCK_CHECKS checks as bytes (src/metrics.ts).
// Pinned without timing: the blocks built per scrape. Nothing changed: none. One check ran
// again: only its block, and only the families its run changed (never the seven-line state
// family of a check that stayed passing). A reload that changes the checks rebuilds what
// moved. The bytes are the same as the text.
import pino from 'pino';
import t from 'tap';
import { BLOCK_CHECKS, createMetrics, type MetricsSource } from '../src/metrics.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });
const FAMILIES = 10;

function defs(n: number, value: (i: number) => number = (i) => i) {
  return Array.from({ length: n }, (_, i) => makeDef(() => ({ value: value(i), fields: { ok: true } }), { id: `check-${i}`, expect: ['ok == true'] }));
}

const strip = (m: string) => m.split('\n').filter((l) => l !== '' && !/^(# (HELP|TYPE) )?(process|nodejs|readiness_exporter)_/.test(l)).join('\n');
const line = (text: string, prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));

t.test('blocks built per scrape: all at first, none without a change, one block of the changed families after one run', async (t) => {
  const n = BLOCK_CHECKS * 4;
  const list = defs(n);
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...list), store: new MemoryStore(), log });
  await Promise.all(list.map((d) => service.scheduler.runNow(d.id)));
  const m = createMetrics(service);

  const first = await m.scrape();
  t.equal(m.blocksBuilt(), 4 * FAMILIES, 'the first scrape builds every family of every block');
  t.match(first, `readiness_check_passing{check="check-${n - 1}"`, 'every check is exported');

  const second = await m.scrape();
  t.equal(m.blocksBuilt(), 4 * FAMILIES, 'nothing changed: no block built');
  t.equal(strip(second), strip(first), 'and the same check series');

  const before = line(first, 'readiness_check_runs_total{check="check-70"');
  await service.scheduler.runNow('check-70');
  const third = await m.scrape();
  const built = m.blocksBuilt() - 4 * FAMILIES;
  // A run changes the last run time and the run count, maybe the duration; never passing, state, info or interval.
  t.ok(built >= 2 && built <= 4, `one check ran: ${built} blocks built (its block, the families its run changed)`);
  t.not(line(third, 'readiness_check_runs_total{check="check-70"'), before, 'its new run count is exported');
  t.equal(line(third, 'readiness_check_runs_total{check="check-70"'), 'readiness_check_runs_total{check="check-70",result="pass"} 2');
  t.equal(line(third, 'readiness_check_runs_total{check="check-71"'), 'readiness_check_runs_total{check="check-71",result="pass"} 1', 'its neighbour in the block is unchanged');

  const bytes = await m.scrapeBuffer();
  t.equal(strip(bytes.toString()), strip(third), 'the bytes served are the text');
});

t.test('checks removed and moved between scrapes (a reload) export exactly the new list', async (t) => {
  const list = defs(BLOCK_CHECKS * 2 + 5);
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...list), store: new MemoryStore(), log });
  await Promise.all(list.map((d) => service.scheduler.runNow(d.id)));
  // The service as the metrics see it, with the views replaced as a reload would replace them.
  let views = service.views();
  const source: MetricsSource = {
    checklist: () => service.checklist(),
    views: () => views,
    schedulerStats: () => service.schedulerStats(),
    storeHealth: () => service.storeHealth(),
    rollbackRecommended: () => false,
    deploymentWindow: (now) => service.deploymentWindow(now),
    reloads: () => service.reloads(),
    version: 'test',
  };
  const m = createMetrics(source);
  await m.scrape();
  // Drop the first check: every later check moves one slot, the last block shrinks.
  views = views.slice(1);
  const text = await m.scrape();
  const exported = [...text.matchAll(/^readiness_check_interval_seconds\{check="([^"]+)"\}/gm)].map((x) => x[1]);
  t.same(exported, list.slice(1).map((d) => d.id), 'one series per remaining check, in order');
  t.notMatch(text, 'check="check-0"', 'the removed check is gone');
  // Back to the full list: the first block's slots hold their old checks again.
  views = service.views();
  const again = [...(await m.scrape()).matchAll(/^readiness_check_interval_seconds\{check="([^"]+)"\}/gm)].map((x) => x[1]);
  t.same(again, list.map((d) => d.id), 'and every check again once it is back');
});
