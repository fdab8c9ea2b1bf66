// Issue 12 item 8: every error code the API can answer is documented, and fastify's own refusals
// (413 body too large, 415, bad JSON, unknown route or method) answer with a documented code.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const apiDoc = readFileSync('docs/api.md', 'utf8');
/** `code` -> status, from docs/api.md's error table. */
const documented = new Map([...apiDoc.matchAll(/^\| `(RDY_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('every RDY_ code in src/ is in docs/api.md', async (t) => {
  const codes = new Set(sources('src').flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/RDY_[A-Z_]+/g)].map((m) => m[0])));
  t.ok(codes.size >= 16, `${codes.size} codes in src/`);
  t.ok(codes.has('RDY_PAYLOAD_TOO_LARGE'), 'the 413 code is in src/');
  for (const c of codes) t.ok(documented.has(c), `${c} is in docs/api.md's error table`);
});

t.test('a real server answers fastify refusals with documented codes', async (t) => {
  const token = 'api-codes-token';
  const service = new Service({ file: 'x', checklist: checklistOf(makeDef(() => ({ fields: {} }))), store: new MemoryStore(), log: pino({ level: 'silent' }) });
  const app = await buildServer({ service, log: pino({ level: 'silent' }), apiToken: token });
  t.teardown(() => app.close());
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const auth = { authorization: `Bearer ${token}` };
  const cases: { name: string; init: RequestInit; path: string; status: number; code: string }[] = [
    { name: 'body over 1 MiB', path: '/attestations', status: 413, code: 'RDY_PAYLOAD_TOO_LARGE', init: { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ note: 'x'.repeat(2 * 1024 * 1024) }) } },
    { name: 'unsupported content type', path: '/attestations', status: 415, code: 'RDY_UNSUPPORTED_MEDIA_TYPE', init: { method: 'POST', headers: { ...auth, 'content-type': 'application/xml' }, body: '<a/>' } },
    { name: 'bad JSON', path: '/attestations', status: 400, code: 'RDY_BAD_REQUEST', init: { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"check":' } },
    { name: 'empty JSON body', path: '/deployments', status: 400, code: 'RDY_BAD_REQUEST', init: { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '' } },
    { name: 'unknown route', path: '/nope', status: 404, code: 'RDY_NOT_FOUND', init: {} },
    { name: 'method the path does not have', path: '/readiness', status: 404, code: 'RDY_NOT_FOUND', init: { method: 'DELETE' } },
  ];
  for (const c of cases) {
    const res = await fetch(url + c.path, c.init);
    const body = (await res.json()) as { error?: string; message?: string };
    t.equal(res.status, c.status, `${c.name}: status`);
    t.equal(body.error, c.code, `${c.name}: code`);
    t.equal(documented.get(body.error ?? ''), res.status, `${c.name}: ${body.error} is documented with status ${res.status}`);
    t.type(body.message, 'string', `${c.name}: message`);
  }
});
