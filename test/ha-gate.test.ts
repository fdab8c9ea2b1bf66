// HA: a run asks whether its replica still holds the check's lease where the probe sends, not
// only when the run starts. A replica stopped (SIGSTOP) or stalled while a probe's connection
// was opening used to send the request when it resumed, after another replica had taken the
// check over: a double probe at the target (seen in test/ha-hang.test.ts, the check in step
// with the one in flight at the stop). Here the lease is lost at the exact moment the probe's
// connection reaches the target, before its TLS handshake can finish: deterministic, no timing.
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import pino from 'pino';
import t from 'tap';
import { runCheck } from '../src/harness.js';
import flowProbe from '../src/probes/flow.js';
import httpProbe from '../src/probes/http.js';
import tcpProbe from '../src/probes/tcp.js';
import tlsProbe from '../src/probes/tls.js';
import { LeaseLostError } from '../src/probes/types.js';
import { Scheduler } from '../src/scheduler.js';
import { MemoryStore } from '../src/store/memory.js';
import { makeCert } from './helpers/certs.js';
import { checklistOf, makeDef } from './helpers/checks.js';
import { makeCtx } from './helpers/ctx.js';

const log = pino({ level: 'silent' });
const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true }).compile(httpProbe.params);
function params(input: Record<string, unknown>): Static<typeof httpProbe.params> {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Static<typeof httpProbe.params>;
}

/**
 * The check `web` (http, at `url`) in a scheduler whose lease epoch is `epoch()` (the test
 * changes it, as another replica taking the check over does): once through the check's
 * client, once through a redirect-following agent.
 */
function httpRuns(url: string, epoch: () => number, extra: Record<string, unknown> = {}) {
  const ownership = {
    replicaId: 'r1',
    owns: () => true,
    fence: () => ({ owner: 'r1', epoch: epoch() }),
    owned: () => ['web'],
    start: async () => {},
    stop: async () => {},
  };
  return [false, true].map((followRedirects) => {
    const def = makeDef(() => ({ fields: {} }), { id: 'web', kind: 'http', probe: httpProbe as never, params: params({ url, ...extra, followRedirects }), timeoutMs: 5_000 });
    const store = new MemoryStore();
    const sched = new Scheduler(checklistOf(def), { store, log, maxJitterMs: 0, ownership });
    return { sched, store, how: followRedirects ? 'through a redirect-following agent' : 'through the check\'s client' };
  });
}

t.test('a lease lost while the probe connects: no request is sent, nothing is published', async (t) => {
  const cert = makeCert({ cn: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  let requests = 0;
  const target = https.createServer({ cert: cert.cert, key: cert.key }, (_req, res) => {
    requests++;
    res.end('ok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => target.close(() => r())));
  const targetPort = (target.address() as net.AddressInfo).port;

  // The replica's lease: the test takes it away (a new epoch, as when another replica takes
  // the check over) when the probe's connection arrives, before a byte of it is relayed.
  let epoch = 1;
  let loseOnConnect = false;
  let connections = 0;
  const front = net.createServer((s) => {
    connections++;
    if (loseOnConnect) epoch++;
    const back = net.connect(targetPort, '127.0.0.1');
    s.pipe(back).pipe(s);
    s.on('error', () => back.destroy());
    back.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => front.close(() => r())));
  const url = `https://127.0.0.1:${(front.address() as net.AddressInfo).port}/health`;

  for (const { sched, store, how } of httpRuns(url, () => epoch, { insecure: true })) {

    // Precondition: with the lease kept, the same run reaches the target and is published.
    loseOnConnect = false;
    [requests, connections] = [0, 0];
    const kept = await sched.runNow('web');
    t.equal(requests, 1, `${how}: with the lease kept, the request reaches the target`);
    t.match(kept, { state: 'pass', last: { ranBy: { replica: 'r1', epoch } } }, 'and its result is published under the lease');

    loseOnConnect = true;
    [requests, connections] = [0, 0];
    const before = store.latest('web');
    const lost = await sched.runNow('web');
    t.equal(connections, 1, `${how}: the probe opened its connection (the run got that far)`);
    t.equal(requests, 0, 'but sent no request: the lease was lost before it could be written');
    t.equal(lost, before, 'and published nothing: the stored result is the one before');
    t.equal(store.latest('web')?.last.startedAt, before?.last.startedAt, 'the store holds no result of that run');
    await sched.stop(1_000);
  }
});

t.test('a lease lost before the probe starts (its client library loading): the probe is not run', async (t) => {
  let asked = 0;
  const def = makeDef(() => ({ fields: {} }));
  const r = await runCheck(def, { log, stillOwner: () => (asked++, false) });
  t.equal(def.runs(), 0, 'the probe did not run');
  t.equal(asked, 1, 'the harness asked once, before the probe');
  t.match(r, { state: 'error', message: /lease was lost before the probe was sent/ });
  const ok = await runCheck(def, { log, stillOwner: () => true });
  t.equal(def.runs(), 1, 'with the lease held it runs');
  t.equal(ok.state, 'pass');
  t.ok(new LeaseLostError('x') instanceof Error);
});

t.test('a lease lost after the connection opened, before the request is written: nothing is sent', async (t) => {
  // undici publishes `undici:client:connected` synchronously between the connector's callback
  // (the first lease question) and writing the request: the lease is lost exactly there.
  let requests = 0;
  const target = http.createServer((_req, res) => {
    requests++;
    res.end('ok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => target.close(() => r())));
  const url = `http://127.0.0.1:${(target.address() as net.AddressInfo).port}/health`;

  let epoch = 1;
  let loseOnConnected = false;
  let connected = 0;
  const onConnected = () => {
    connected++;
    if (loseOnConnected) epoch++;
  };
  diagnostics.subscribe('undici:client:connected', onConnected);
  t.teardown(() => diagnostics.unsubscribe('undici:client:connected', onConnected));
  for (const { sched, store, how } of httpRuns(url, () => epoch)) {

    loseOnConnected = false;
    [requests, connected] = [0, 0];
    const kept = await sched.runNow('web');
    t.equal(requests, 1, `${how}: with the lease kept, the request reaches the target`);
    t.equal(connected, 1, 'after one connection');
    t.match(kept, { state: 'pass', last: { ranBy: { replica: 'r1', epoch } } }, 'and its result is published under the lease');

    loseOnConnected = true;
    [requests, connected] = [0, 0];
    const before = store.latest('web');
    const lost = await sched.runNow('web');
    t.equal(connected, 1, `${how}: the connection opened and passed the first question`);
    await new Promise((r) => setTimeout(r, 50));
    t.equal(requests, 0, 'but the request was not written: the lease was lost before the write');
    t.equal(lost, before, 'and nothing was published');
    t.equal(store.latest('web')?.last.startedAt, before?.last.startedAt, 'the store holds no result of that run');
    await sched.stop(1_000);
  }
});

t.test('a lease lost between two requests of one run: the next request is not sent (flow)', async (t) => {
  // Keep-alive: the second step goes out on the first step's connection, so only the socket's
  // write gate can stop it (no new connection asks).
  const seen: string[] = [];
  let owner = true;
  const target = http.createServer((req, res) => {
    seen.push(req.url!);
    if (req.url === '/one') owner = false; // another replica takes the check over meanwhile
    res.end('ok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => target.close(() => r())));
  const base = `http://127.0.0.1:${(target.address() as net.AddressInfo).port}/`;
  const p = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(flowProbe.params);
  const input = { url: base, steps: [{ name: 'one', path: '/one' }, { name: 'two', path: '/two' }] };
  t.ok(p(input), 'valid flow');

  const kept = await flowProbe.run(input as never, { ...makeCtx(), stillOwner: () => true });
  t.same(seen, ['/one', '/two'], 'with the lease kept both steps reach the target');
  t.match(kept.fields, { steps_passed: 2 });

  seen.length = 0;
  owner = true;
  const lost = await flowProbe.run(input as never, { ...makeCtx(), stillOwner: () => owner }).catch((err: unknown) => err);
  await new Promise((r) => setTimeout(r, 50));
  t.same(seen, ['/one'], 'the lease was lost during step one: step two was never sent');
  t.notMatch(lost, { fields: { steps_passed: 2 } }, 'and the run did not pass');
});

t.test('a lease lost while the host resolves: tcp and tls connect nowhere', async (t) => {
  let connections = 0;
  const accept = (s: net.Socket) => {
    connections++;
    s.destroy();
  };
  const listener = net.createServer(accept);
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => listener.close(() => r())));
  const port = (listener.address() as net.AddressInfo).port;
  // `localhost` may resolve to ::1 first: listen there too where the machine has IPv6.
  const v6 = net.createServer(accept);
  await new Promise<void>((r) => v6.once('error', () => r()).listen(port, '::1', r));
  t.teardown(() => new Promise<void>((r) => (v6.listening ? v6.close(() => r()) : r())));
  // `localhost` resolves (from /etc/hosts) after the run started: the harness's question was
  // answered yes, and the lease is gone by the time the address is known.
  for (const [kind, probe, input] of [
    ['tcp', tcpProbe, { host: 'localhost', port }],
    ['tls', tlsProbe, { host: 'localhost', port }],
  ] as const) {
    const compile = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(probe.params);
    const p = { ...input };
    t.ok(compile(p), `${kind}: valid params`);
    connections = 0;
    await probe.run(p as never, { ...makeCtx(), stillOwner: () => true }).catch(() => {});
    t.ok(connections >= 1, `${kind}: with the lease kept it connects`);
    connections = 0;
    const lost = await probe.run(p as never, { ...makeCtx(), stillOwner: () => false }).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 50));
    t.equal(connections, 0, `${kind}: with the lease lost once resolved, no connection was made`);
    t.type(lost, LeaseLostError, `${kind}: the run says the lease was lost`);
  }
});

t.test('every probe that builds an undici Agent or Client gates it on the lease', async (t) => {
  // A guard for probes yet to come: an Agent built without agentConnect/gatedConnector/
  // leaseConnector would send after its replica lost the check.
  const dir = new URL('../src/probes/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  let agents = 0;
  for (const f of files) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    for (const m of src.matchAll(/new (?:client\.)?(?:Agent|Client|Pool)\((?:\w+, )?\{[^\n]*/g)) {
      if (f === 'postgres.ts') continue; // pg's Pool and Client: not undici
      agents++;
      t.match(m[0], /connect: (await agentConnect|await leaseConnector|stillOwner \? gatedConnector)\(/, `${f}: ${m[0].slice(0, 60)}…`);
    }
  }
  t.ok(agents >= 9, `found the probes' undici dispatchers (${agents})`);
});
