// A scrape never holds the event loop for long (issue 14: the gate never waits for a scrape).
// Pinned without timing, by what each step does between two turns of the event loop: the
// render builds at most WORK_PER_TURN units of lines and blocks per turn (a block more at
// most), joins at most one family per turn, and sendParts hands at most SEND_SLICE bytes to
// the socket per turn, the body still whole and exact, and it stops when the client goes.
import { createServer, request, type ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import pino from 'pino';
import t from 'tap';
import { BLOCK_CHECKS, createMetrics, WORK_PER_TURN } from '../src/metrics.js';
import { SEND_SLICE, sendParts } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });
const FAMILIES = 10;

/** Runs `fn` and, at every turn of the event loop until it settles, calls `each`. */
async function everyTurn<T>(fn: () => Promise<T>, each: () => void): Promise<{ value: T; turns: number }> {
  let settled = false;
  let turns = 0;
  const tick = () => {
    if (settled) return;
    turns++;
    each();
    setImmediate(tick);
  };
  setImmediate(tick);
  const value = await fn();
  settled = true;
  each();
  return { value, turns };
}

t.test('render: at most WORK_PER_TURN units of lines and blocks between two turns, one family joined per turn', async (t) => {
  const n = 2_000;
  const list = Array.from({ length: n }, (_, i) => makeDef(() => ({ value: i, fields: { ok: true } }), { id: `check-${i}`, expect: ['ok == true'] }));
  const s = new Service({ file: 'x.yaml', checklist: checklistOf(...list), store: new MemoryStore(), log });
  await Promise.all(list.map((d) => s.scheduler.runNow(d.id)));
  const m = createMetrics(s);

  // The first scrape builds every check's lines (4 units each) and every block of every family (one unit per check in it).
  let last = { lines: 0, blocks: 0 };
  let most = 0;
  const first = await everyTurn(
    () => m.scrapeParts(),
    () => {
      const now = { lines: m.linesBuilt(), blocks: m.blocksBuilt() };
      most = Math.max(most, (now.lines - last.lines) * 4 + (now.blocks - last.blocks) * BLOCK_CHECKS);
      last = now;
    },
  );
  const blocks = Math.ceil(n / BLOCK_CHECKS);
  t.equal(m.linesBuilt(), n, 'precondition: every check built');
  t.equal(m.blocksBuilt(), blocks * FAMILIES, 'precondition: every block of every family built');
  const total = n * 4 + blocks * FAMILIES * BLOCK_CHECKS;
  t.ok(first.turns >= Math.floor(total / (WORK_PER_TURN + 4 * BLOCK_CHECKS + FAMILIES * BLOCK_CHECKS)), `the first scrape took ${first.turns} turns for ${total} units`);
  // The budget itself is part of the guard: 4,000 units held the loop for ~10 ms on a loaded machine.
  t.ok(WORK_PER_TURN <= 1_000, `a budget of at most 1,000 units (${WORK_PER_TURN})`);
  t.ok(most > 0 && most <= WORK_PER_TURN + 4 * BLOCK_CHECKS + FAMILIES * BLOCK_CHECKS, `at most ${most} units between two turns (budget ${WORK_PER_TURN} and one block)`);

  // The second scrape with the same blocks joins each family into one Buffer: one per turn.
  await m.scrapeParts();
  // The largest piece of a scrape whose families are joined: the largest family.
  const largest = Math.max(...(await m.scrapeParts()).map((p) => p.length));
  const fresh = createMetrics(s);
  await fresh.scrapeParts();
  let copied = fresh.bytesCopied();
  let mostCopied = 0;
  let joinedBytes = 0;
  await everyTurn(
    () => fresh.scrapeParts(),
    () => {
      const now = fresh.bytesCopied();
      mostCopied = Math.max(mostCopied, now - copied);
      joinedBytes += now - copied;
      copied = now;
    },
  );
  t.ok(joinedBytes > largest, `precondition: the second scrape joined several families (${joinedBytes} bytes, the largest ${largest})`);
  t.ok(mostCopied <= largest, `at most one family joined between two turns (${mostCopied} bytes, the largest family ${largest})`);
});

/** A raw server whose handler calls sendParts with `parts` and records the most bytes handed over between two turns. */
async function server(t: { teardown(fn: () => Promise<void>): void }, parts: Buffer[]) {
  const seen: { most: number; handed: number; done?: Promise<void> }[] = [];
  const srv = createServer((_req, res: ServerResponse) => {
    const s = { most: 0, handed: 0, done: undefined as Promise<void> | undefined };
    seen.push(s);
    const write = res.write.bind(res) as (chunk: Buffer) => boolean;
    res.write = ((chunk: Buffer) => {
      s.handed += chunk.length;
      return write(chunk);
    }) as typeof res.write;
    const reply = { hijack() {}, raw: res } as unknown as FastifyReply;
    // A turn counter started first: its ticks and sendParts' turns alternate.
    let last = 0;
    let over = false;
    const tick = () => {
      s.most = Math.max(s.most, s.handed - last);
      last = s.handed;
      if (!over) setImmediate(tick);
    };
    setImmediate(tick);
    s.done = sendParts(reply, 'text/plain; version=0.0.4; charset=utf-8', parts).finally(() => {
      over = true;
      tick();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as { port: number }).port, seen };
}

t.test('sendParts hands at most SEND_SLICE bytes to the socket per turn; the body is whole', async (t) => {
  // Pieces smaller and larger than a slice, some empty: 7 MiB and a bit in all.
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) parts.push(Buffer.alloc(100_000 + i, 97 + (i % 26)));
  parts.push(Buffer.alloc(0));
  parts.push(Buffer.alloc(3 * SEND_SLICE + 17, 'z'));
  for (let i = 0; i < 5; i++) parts.push(Buffer.from(`\nline ${i}`));
  const whole = Buffer.concat(parts);
  t.ok(whole.length > 5 * SEND_SLICE, `precondition: a body of several slices (${whole.length} bytes)`);
  const { port, seen } = await server(t, parts);

  const got = await new Promise<{ length: number; body: Buffer }>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ length: Number(res.headers['content-length']), body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  await seen[0]!.done;
  t.ok(seen[0]!.most > 0 && seen[0]!.most <= SEND_SLICE, `at most ${seen[0]!.most} bytes of ${whole.length} handed over between two turns (slice ${SEND_SLICE})`);
  t.equal(seen[0]!.handed, whole.length, 'every byte handed over in the end');
  t.equal(got.length, whole.length, 'content-length is the body length');
  t.ok(got.body.equals(whole), 'the body byte for byte');
});

t.test('sendParts stops when the client goes away mid-body', async (t) => {
  const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(SEND_SLICE / 2, 97 + (i % 26)));
  const { port, seen } = await server(t, parts);
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => {});
    req.on('close', () => resolve());
    req.end();
    setTimeout(() => reject(new Error('no response')), 60_000).unref();
  });
  t.equal(seen.length, 1, 'precondition: the server answered');
  await seen[0]!.done;
  t.ok(seen[0]!.handed < 64 * (SEND_SLICE / 2), `it stopped before the end (${seen[0]!.handed} of ${64 * (SEND_SLICE / 2)} bytes handed over)`);
});
