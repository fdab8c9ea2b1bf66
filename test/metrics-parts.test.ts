// /metrics hands the kept pieces to the socket (src/metrics.ts, sendParts in src/http/server.ts).
// Pinned without timing: a scrape with nothing changed copies no byte of check series and is a
// few whole-family pieces, not one per block; one check's run copies its blocks only; the body
// on the wire (GET over a real listener) is the exposition byte for byte, with its length, and
// HEAD sends the headers alone.
import { request } from 'node:http';
import pino from 'pino';
import t from 'tap';
import { BLOCK_CHECKS, createMetrics } from '../src/metrics.js';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });
const FAMILIES = 10;

function service(n: number) {
  const list = Array.from({ length: n }, (_, i) =>
    makeDef(() => ({ value: i, fields: { ok: i % 9 !== 0 } }), { id: `check-${i}`, section: i % 2 ? 'sécurité' : 'database', expect: ['ok == true'] }),
  );
  const s = new Service({ file: 'x.yaml', checklist: checklistOf(...list), store: new MemoryStore(), log });
  return { s, list };
}

t.test('no change: no byte copied and one piece per family; one run: only its blocks', async (t) => {
  const blocks = 8;
  const { s, list } = service(BLOCK_CHECKS * blocks);
  await Promise.all(list.map((d) => s.scheduler.runNow(d.id)));
  const m = createMetrics(s);
  const first = await m.scrapeParts();
  const total = first.reduce((n, p) => n + p.length, 0);
  t.ok(m.bytesCopied() > 0 && m.bytesCopied() < total, `the first scrape encodes the check series once (${m.bytesCopied()} of ${total} bytes)`);
  t.ok(first.length > blocks * 3, `it hands over the blocks (${first.length} pieces)`);

  await m.scrapeParts();
  const copied = m.bytesCopied();
  const lines = m.linesBuilt();
  // The second scrape with the same blocks keeps each family whole (one copy, once).
  const third = await m.scrapeParts();
  const joined = m.bytesCopied();
  const fourth = await m.scrapeParts();
  t.equal(m.bytesCopied(), joined, 'nothing changed: no byte copied');
  t.equal(m.linesBuilt(), lines, 'and no line built');
  t.ok(joined - copied < total, 'the families were joined once');
  t.ok(fourth.length <= FAMILIES * 3 + 3, `a family that does not change is one piece (${fourth.length} pieces in all)`);
  t.equal(Buffer.concat(fourth).toString().replace(/^(process|nodejs|readiness_exporter)_.*$/gm, ''), Buffer.concat(third).toString().replace(/^(process|nodejs|readiness_exporter)_.*$/gm, ''), 'the same exposition');

  await s.scheduler.runNow('check-70');
  const before = m.bytesCopied();
  const after = await m.scrapeParts();
  const copiedNow = m.bytesCopied() - before;
  // Its lines of every family (one check) and the blocks of the families its run changed.
  t.ok(copiedNow > 0 && copiedNow < total / blocks, `one check ran: ${copiedNow} bytes copied of ${total}`);
  t.match(Buffer.concat(after).toString(), 'readiness_check_runs_total{check="check-70",result="pass"} 2', 'its new run count is served');
  t.match(Buffer.concat(after).toString(), 'readiness_check_passing{check="check-71",section="sécurité",severity="critical",phase="pre-deploy"} 1', 'non-ASCII labels survive the byte blocks');
});

/** A raw HTTP request to a listening server: status, headers and the body bytes. */
function get(port: number, method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('GET /metrics over a real listener is the exposition with its length; HEAD has no body', async (t) => {
  const { s, list } = service(BLOCK_CHECKS * 3 + 7);
  await Promise.all(list.map((d) => s.scheduler.runNow(d.id)));
  const app = await buildServer({ service: s, log });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const strip = (b: Buffer) => b.toString().split('\n').filter((l) => !/^(# (HELP|TYPE) )?(process|nodejs|readiness_exporter)_/.test(l)).join('\n');
  const reference = createMetrics(s);
  for (let i = 0; i < 3; i++) {
    const res = await get(port, 'GET', '/metrics');
    t.equal(res.status, 200, `scrape ${i}: 200`);
    t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'Prometheus text format');
    t.equal(Number(res.headers['content-length']), res.body.length, 'content-length is the body length');
    t.notOk(res.headers['transfer-encoding'], 'not chunked');
    t.equal(strip(res.body), strip(await reference.scrapeBuffer()), 'the exposition, byte for byte (UTF-8 labels included)');
    t.match(res.body.toString(), 'section="sécurité"');
    await s.scheduler.runNow(`check-${i}`);
  }
  const head = await get(port, 'HEAD', '/metrics');
  t.equal(head.status, 200, 'HEAD answers');
  t.equal(head.body.length, 0, 'with no body');
  // The connection stays usable after a HEAD (no stray body bytes on a kept-alive socket).
  const again = await get(port, 'GET', '/metrics');
  t.equal(Number(again.headers['content-length']), again.body.length, 'and the next GET is whole');
});
