// The bearer check every write route runs (makeAuth in src/http/server.ts), header by header:
// no token configured disables writes whatever is sent; the scheme is case-insensitive and
// spacing around the token is tolerated; anything else around it is malformed (401); a
// well-formed header with another token (case, prefix, extension) is forbidden (403).
import type { FastifyRequest } from 'fastify';
import pino from 'pino';
import t from 'tap';
import { buildServer, makeAuth } from '../../src/http/server.js';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const TOKEN = 'tok-123';
const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as FastifyRequest;

async function verdict(auth: ReturnType<typeof makeAuth>, header?: string): Promise<string> {
  try {
    await auth(req(header));
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

t.test('no token configured: writes are disabled, whatever the header', async (t) => {
  for (const token of [undefined, '']) {
    const auth = makeAuth(token);
    for (const h of [undefined, '', 'Bearer ', 'Bearer x', `Bearer ${TOKEN}`]) t.equal(await verdict(auth, h), 'RDY_WRITES_DISABLED', `token ${JSON.stringify(token)}, header ${JSON.stringify(h)}`);
  }
});

t.test('the right token in any well-formed header is accepted', async (t) => {
  const auth = makeAuth(TOKEN);
  for (const h of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer   ${TOKEN}`, `Bearer\t${TOKEN}`, `Bearer ${TOKEN} `, `Bearer ${TOKEN}\t  `]) {
    t.equal(await verdict(auth, h), 'ok', JSON.stringify(h));
  }
});

t.test('a missing or malformed header is 401', async (t) => {
  const auth = makeAuth(TOKEN);
  const malformed = [undefined, '', 'Bearer', 'Bearer ', 'Bearer  ', `Bearer${TOKEN}`, `Basic ${TOKEN}`, `xBearer ${TOKEN}`, ` Bearer ${TOKEN}`, `Bearer ${TOKEN} extra`, `Bearer ${TOKEN} ${TOKEN}`, TOKEN];
  for (const h of malformed) t.equal(await verdict(auth, h), 'RDY_UNAUTHORIZED', JSON.stringify(h));
});

t.test('another token is 403: case, prefix and extension of the right one included', async (t) => {
  const auth = makeAuth(TOKEN);
  for (const h of ['Bearer x', `Bearer ${TOKEN.toUpperCase()}`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}4`, `Bearer ${TOKEN.slice(1)}`, `Bearer t`]) {
    t.equal(await verdict(auth, h), 'RDY_FORBIDDEN', JSON.stringify(h));
  }
});

t.test('through a write route: the codes and messages the API documents', async (t) => {
  const def = makeDef(() => ({ fields: { ok: true } }), { id: 'a', expect: ['ok == true'] });
  const log = pino({ level: 'silent' });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(def), store: new MemoryStore(), log });
  const app = await buildServer({ service, log, apiToken: TOKEN });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  const run = (authorization?: string) => app.inject({ method: 'POST', url: '/checks/a/run', headers: authorization === undefined ? {} : { authorization } });
  let res = await run();
  t.same([res.statusCode, res.json()], [401, { error: 'RDY_UNAUTHORIZED', message: 'missing or malformed Authorization: Bearer <token> header' }]);
  res = await run('Bearer nope');
  t.same([res.statusCode, res.json()], [403, { error: 'RDY_FORBIDDEN', message: 'the bearer token is not valid' }]);
  t.equal(def.runs(), 0, 'refused requests ran nothing');
  res = await run(`bearer ${TOKEN}`);
  t.equal(res.statusCode, 200);
  t.equal(def.runs(), 1);
});
