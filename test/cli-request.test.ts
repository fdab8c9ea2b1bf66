// The commands' one JSON request (src/cli/request.ts), which replaced fetch() in gate, attest,
// revoke and deploy-mark (issue 14: fetch's client cost gate more start-up than the rest of
// it). What fetch did for them, it must still do: follow a GET's redirects, hand back any
// status with its JSON (or none for garbage), fail with the socket's own code, and give up
// at the deadline. Real listeners on loopback, in-process.
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import t from 'tap';
import { requestJson } from '../src/cli/request.js';

async function listen(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

t.test('a GET follows redirects to the JSON answer; a POST does not', async (t) => {
  const seen: string[] = [];
  const base = await listen((req, body, res) => {
    seen.push(`${req.method} ${req.url} ${body}`);
    if (req.url === '/old') return void res.writeHead(302, { location: '/readiness?phase=verify' }).end();
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: false, failing: [{ id: 'x' }] }));
  });
  const got = await requestJson(new URL(`${base}/old`), { headers: { accept: 'application/json' }, timeoutMs: 10_000 });
  t.same(got, { status: 503, statusText: 'Service Unavailable', contentType: 'application/json', json: { ready: false, failing: [{ id: 'x' }] } });
  t.same(seen, ['GET /old ', 'GET /readiness?phase=verify ']);

  const posted = await requestJson(new URL(`${base}/old`), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"by":"é"}', timeoutMs: 10_000 });
  t.equal(posted.status, 302, 'a POST answered with a redirect is reported, not replayed');
  t.equal(seen.at(-1), 'POST /old {"by":"é"}', 'the body arrives whole (content-length counts bytes, not characters)');
});

t.test('garbage, an empty body and an endless redirect are answers, not crashes', async (t) => {
  const base = await listen((req, _body, res) => {
    if (req.url === '/loop') return void res.writeHead(301, { location: '/loop' }).end();
    if (req.url === '/empty') return void res.writeHead(204).end();
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not json');
  });
  const html = await requestJson(new URL(`${base}/`), { timeoutMs: 10_000 });
  t.same([html.status, html.contentType, html.json], [200, 'text/html', undefined]);
  const empty = await requestJson(new URL(`${base}/empty`), { timeoutMs: 10_000 });
  t.same([empty.status, empty.json], [204, undefined]);
  const loop = await requestJson(new URL(`${base}/loop`), { timeoutMs: 10_000 });
  t.equal(loop.status, 301, 'gives up after a few hops with the last answer');
});

t.test('an unreachable service fails with the socket\'s code', async (t) => {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  await t.rejects(requestJson(new URL(`http://127.0.0.1:${port}/readiness`), { timeoutMs: 10_000 }), { code: 'ECONNREFUSED' });
  await t.rejects(requestJson(new URL('ftp://127.0.0.1/'), { timeoutMs: 1000 }), { code: 'ERR_INVALID_PROTOCOL' });
});

t.test('a service that accepts and never answers times out at the deadline', async (t) => {
  const sockets: Socket[] = [];
  const s = createNetServer((c) => sockets.push(c.on('error', () => {})));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const c of sockets) c.destroy();
    s.close();
  });
  const port = (s.address() as { port: number }).port;
  const started = Date.now();
  await t.rejects(requestJson(new URL(`http://127.0.0.1:${port}/readiness`), { timeoutMs: 300 }), { code: 'ETIMEDOUT' });
  t.ok(Date.now() - started >= 290, 'not before the deadline');
  t.equal(sockets.length, 1, 'the request did connect (the timeout is the answer\'s, not the connection\'s)');
});

t.test('an answer larger than the limit is refused, not buffered', async (t) => {
  const base = await listen((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(`"${'x'.repeat(100_000)}"`);
  });
  await t.rejects(requestJson(new URL(base), { timeoutMs: 10_000, maxBody: 10_000 }), { code: 'ERR_BODY_TOO_LARGE' });
  const whole = await requestJson(new URL(base), { timeoutMs: 10_000 });
  t.equal((whole.json as string).length, 100_000, 'under the default limit it is read whole');
});
