// A request's logger is made only when something is logged (src/http/server.ts,
// LazyRequestLogger): gate polls and scrapes build no pino child per request, while a request
// that does log (an internal error, a recorded deployment) still carries its reqId.
import pino from 'pino';
import t from 'tap';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

t.test('no pino child per /readiness or /metrics request; a logged error has its reqId', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const list = [makeDef(() => ({ fields: { ok: true } }), { id: 'a', expect: ['ok == true'] })];
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...list), store: new MemoryStore(), log });
  await service.scheduler.runNow('a');
  const app = await buildServer({ service, log, apiToken: 'tok-123456' });
  t.teardown(() => app.close());
  await app.ready();

  // Every pino logger inherits `child` from the root (children are Object.create of their parent).
  let children = 0;
  const child = log.child.bind(log);
  const proto = Object.getPrototypeOf(log) as { child: typeof log.child };
  const original = proto.child;
  proto.child = function (this: typeof log, ...a: Parameters<typeof log.child>) {
    children++;
    return original.apply(this, a);
  } as typeof log.child;
  t.teardown(() => {
    proto.child = original;
  });
  t.ok(child, 'precondition: the logger can make children');

  for (let i = 0; i < 20; i++) {
    t.equal((await app.inject('/readiness')).statusCode, 200);
    t.equal((await app.inject('/metrics')).statusCode, 200);
  }
  t.equal(children, 0, '40 requests that log nothing made no child logger');

  // A request that logs: an internal error, logged with the request's id.
  const health = service.storeHealth.bind(service);
  service.storeHealth = () => {
    throw new Error('store exploded');
  };
  const res = await app.inject('/healthz');
  service.storeHealth = health;
  t.equal(res.statusCode, 500, 'the failing route answers 500');
  t.equal(children, 1, 'its logger was made when it logged');
  const logged = lines.find((l) => l.msg === 'request failed');
  t.ok(logged, 'the error is logged');
  t.match(logged, { reqId: String, component: 'http', level: 50 }, 'with the reqId and the http component');
  t.match(String((logged!.err as { message?: string }).message), 'store exploded');
});
