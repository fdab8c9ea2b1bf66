// The http kind keeps its dispatchers between runs but never a connection: every run opens
// its own (so each measures DNS, TCP and TLS afresh), and no socket outlives its run, whether
// the run read the whole body, stopped at maxBodyBytes or was aborted mid-body.
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import httpProbe from '../../src/probes/http.js';
import { makeCtx } from '../helpers/ctx.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true }).compile(httpProbe.params);
function params(input: Record<string, unknown>): Static<typeof httpProbe.params> {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Static<typeof httpProbe.params>;
}

/** A server that counts connections, and knows which are open now. */
async function server(handler: http.RequestListener) {
  const open = new Set<Socket>();
  let accepted = 0;
  const srv = http.createServer({ keepAlive: true, keepAliveTimeout: 60_000 }, handler);
  srv.on('connection', (s: Socket) => {
    accepted++;
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  return {
    url,
    accepted: () => accepted,
    open: () => open.size,
    close: () => new Promise<void>((r) => {
      for (const s of open) s.destroy();
      srv.close(() => r());
    }),
  };
}

async function until(what: string, fn: () => boolean): Promise<boolean> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return fn();
}

t.teardown(() => httpProbe.close?.());

t.test('every run opens its own connection and leaves none open', async (t) => {
  // A keep-alive server: a client that kept the connection would find it open after the run.
  const s = await server((_req, res) => res.end('{"status":"ok"}'));
  t.teardown(s.close);
  for (let i = 1; i <= 3; i++) {
    const obs = await httpProbe.run(params({ url: s.url }), makeCtx());
    t.equal(obs.fields.status, 200, `run ${i} answered`);
    t.equal(s.accepted(), i, `run ${i} opened a new connection`);
    t.ok(await until('closed', () => s.open() === 0), `run ${i} left no connection open`);
  }
  t.match((await httpProbe.run(params({ url: s.url }), makeCtx())).fields, { 'json.status': undefined, json: { status: 'ok' } }, 'the body is still parsed as JSON');
});

t.test('a body cut at maxBodyBytes, or a run aborted mid-body, leaves no connection open', async (t) => {
  const s = await server((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    if (req.url === '/big') res.end('x'.repeat(1_000_000));
    else res.write('partial'); // never ends: the run times out mid-body
  });
  t.teardown(s.close);
  const cut = await httpProbe.run(params({ url: `${s.url}/big`, maxBodyBytes: 10 }), makeCtx());
  t.equal(cut.fields.body_truncated, true, 'the body was cut');
  t.ok(await until('closed', () => s.open() === 0), 'no connection left after a cut body');

  const ctx = makeCtx({ timeoutMs: 300 });
  await t.rejects(httpProbe.run(params({ url: `${s.url}/hang` }), ctx), /no complete response before the check timeout/);
  // undici may open a spare connection after an abort: it must be gone too, and stay gone.
  await new Promise((r) => setTimeout(r, 300));
  t.ok(await until('closed', () => s.open() === 0), 'no connection left after an aborted run');
  t.ok(s.accepted() <= 3, `one connection per run, and at most one spare closed at once (${s.accepted()})`);
});

t.test('a body that is not JSON is not parsed as JSON; one that is, is', async (t) => {
  const bodies: Record<string, string> = { '/html': '<html>ok</html>', '/num': ' 42\n', '/arr': '[1,2]', '/text': 'ok\n' };
  const s = await server((req, res) => res.end(bodies[req.url!]));
  t.teardown(s.close);
  const json = async (path: string) => (await httpProbe.run(params({ url: `${s.url}${path}` }), makeCtx())).fields.json;
  t.equal(await json('/html'), undefined);
  t.equal(await json('/text'), undefined);
  t.equal(await json('/num'), 42);
  t.same(await json('/arr'), [1, 2]);
});
