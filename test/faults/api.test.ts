// API abuse against a real `readiness serve` (issue 12, item 8: a 413 answered with a code
// docs/api.md did not list). Every refusal of a request the API parses is JSON with a code from
// docs/api.md's error table and that code's status; what Node's HTTP parser refuses before the
// API sees it (garbage, oversized headers) is the 400 or 431 docs/api.md describes; and after
// all of it the service answers as before, with no 500 and no `request failed` in its log.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startServe } from '../helpers/cli.js';
import { checklistYaml, closedPortCheck } from '../helpers/checklists.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-api-'));
const suite = faultSuite(t, 'api');
const TOKEN = 'faults-api-token';

/** `code` -> status, from docs/api.md's error table. */
const documented = new Map([...readFileSync('docs/api.md', 'utf8').matchAll(/^\| `(RDY_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

const file = join(dir, 'checklist.yaml');
writeFileSync(file, checklistYaml('faults-api', [closedPortCheck('closed')]));

/** One shared service for every case (each case leaves it as it found it). */
let svc: Awaited<ReturnType<typeof startServe>> | undefined;
async function service(): Promise<NonNullable<typeof svc>> {
  svc ??= await startServe(t, ['-c', file], { READINESS_API_TOKEN: TOKEN, READINESS_DATA_DIR: join(dir, 'data') });
  return svc;
}
type Tap = Parameters<Parameters<typeof suite.fault>[2]>[0];

/** The service still answers, and has logged no failed request. */
async function stillServing(t: Tap, url: string, output: () => string): Promise<void> {
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'the service still answers /healthz');
  const r = await fetch(`${url}/readiness`);
  t.ok([200, 503].includes(r.status), '/readiness answers');
  t.notMatch(output(), /request failed/, 'no request ended in a 500');
}

/** A raw exchange over TCP: what Node's parser answers before the API sees the request. */
function raw(url: string, bytes: string | Buffer): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve(got) : reject(err)));
    s.on('close', () => resolve(got));
    s.setTimeout(30_000, () => s.destroy(new Error(`no answer within 30 s; got ${JSON.stringify(got.slice(0, 200))}`)));
    s.write(bytes);
  });
}

suite.fault('oversized, mistyped and malformed requests: each a JSON error with a code and status from docs/api.md', 120_000, async (t) => {
  const { url, output } = await service();
  t.ok(documented.size >= 16, `${documented.size} codes in docs/api.md's table`);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const twoMiB = JSON.stringify({ check: 'closed', by: 'x'.repeat(2 * 1024 * 1024), role: 'r' });
  const cases: [name: string, path: string, init: RequestInit, status: number][] = [
    ['a body over 1 MiB', '/attestations', { method: 'POST', headers: json, body: twoMiB }, 413],
    [
      'a chunked body over 1 MiB (no Content-Length)',
      '/attestations',
      {
        method: 'POST',
        headers: json,
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 3; i++) c.enqueue(new TextEncoder().encode('x'.repeat(512 * 1024)));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit,
      413,
    ],
    ['a content type the API does not take', '/deployments', { method: 'POST', headers: { ...auth, 'content-type': 'application/xml' }, body: '<deployment/>' }, 415],
    ['bad JSON', '/attestations', { method: 'POST', headers: json, body: '{"check":' }, 400],
    ['an empty JSON body', '/deployments', { method: 'POST', headers: json, body: '' }, 400],
    ['JSON nested 300,000 deep', '/deployments', { method: 'POST', headers: json, body: `${'['.repeat(300_000)}${']'.repeat(300_000)}` }, 400],
    ['an unknown key', '/deployments', { method: 'POST', headers: json, body: JSON.stringify({ version: 'v1', extra: 1 }) }, 400],
    ['__proto__ in the body', '/deployments', { method: 'POST', headers: json, body: '{"version":"v1","__proto__":{"admin":true}}' }, 400],
    ['no token', '/deployments', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"version":"v1"}' }, 401],
    ['a wrong token', '/deployments', { method: 'POST', headers: { ...json, authorization: 'Bearer nope' }, body: '{"version":"v1"}' }, 403],
    ['an unknown filter value', '/readiness?severity=%00%ff', {}, 400],
    ['an unknown check', '/checks/..%2f..%2fetc%2fpasswd', {}, 404],
    ['an unknown route', '/.env', {}, 404],
  ];
  for (const [name, path, init, status] of cases) {
    const res = await fetch(url + path, init);
    const text = await res.text();
    let body: { error?: string; message?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      t.fail(`${name}: the answer is not JSON: ${text.slice(0, 200)}`);
    }
    t.equal(res.status, status, `${name}: ${status}`);
    t.ok(body.error !== undefined && documented.has(body.error), `${name}: ${body.error} is in docs/api.md`);
    t.equal(documented.get(body.error ?? ''), res.status, `${name}: documented with status ${res.status}`);
    t.type(body.message, 'string', `${name}: a message`);
  }
  await stillServing(t, url, output);
});

suite.fault("garbage on the wire and oversized headers: Node's parser answers 400 or 431, the service keeps serving", 120_000, async (t) => {
  const { url, output } = await service();
  t.match(await raw(url, 'GARBAGE \x00\x01\x02 NOT HTTP\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n/, 'not HTTP: 400');
  t.match(await raw(url, `GET /readiness HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/, 'headers over 16 KiB: 431');
  t.match(await raw(url, 'POST /deployments HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n/, 'Content-Length with Transfer-Encoding (request smuggling): 400');
  await stillServing(t, url, output);
});
