// tcp probe against real sockets on 127.0.0.1: open, refused, filtered (blackhole), DNS.
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import tcpProbe from '../../src/probes/tcp.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { closedPort, listenBlackhole, listenGarbage, listenHanging, type Listener } from '../helpers/listeners.js';

// Params as the checklist loader builds them: ajv with type coercion and defaults.
const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true }).compile(tcpProbe.params);
function params(input: Record<string, unknown>): Static<typeof tcpProbe.params> {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Static<typeof tcpProbe.params>;
}

const listeners: Listener[] = [];
t.teardown(() => Promise.all(listeners.map((l) => l.close())));

t.test('results are data: open, refused and filtered ports', async (t) => {
  const open = await listenHanging();
  const garbage = await listenGarbage('\x00\xff garbage \r\n', { waitForClient: false });
  const blackhole = await listenBlackhole();
  listeners.push(open, garbage, blackhole);
  const refused = await closedPort();

  const table = [
    { name: 'listening port', host: '127.0.0.1', port: open.port, result: 'open', value: 1, message: /^127\.0\.0\.1:\d+ is open \(connected in [\d.]+ ms\)$/ },
    { name: 'port that answers garbage is still open', host: '127.0.0.1', port: garbage.port, result: 'open', value: 1, message: /is open/ },
    { name: 'host name is resolved first', host: 'localhost', port: open.port, result: 'open', value: 1, message: /^localhost:\d+ \(127\.0\.0\.1\) is open/ },
    { name: 'closed port', host: '127.0.0.1', port: refused, result: 'refused', value: 0, message: /refused the connection \(ECONNREFUSED\)$/ },
    { name: 'filtered port', host: '127.0.0.1', port: blackhole.port, connectTimeoutMs: 300, result: 'timeout', value: 0, message: /did not answer within 300 ms/ },
  ];
  for (const row of table) {
    const obs = await tcpProbe.run(params({ host: row.host, port: row.port, connectTimeoutMs: row.connectTimeoutMs }), makeCtx());
    t.equal(obs.error, undefined, `${row.name}: not an error`);
    t.equal(obs.failure, undefined, `${row.name}: not a failure`);
    t.equal(obs.fields.result, row.result, `${row.name}: result`);
    t.equal(obs.fields.open, row.result === 'open', `${row.name}: open`);
    t.equal(obs.fields.address, '127.0.0.1', `${row.name}: address`);
    t.equal(obs.value, row.value, `${row.name}: value`);
    t.type(obs.fields.connect_ms, 'number', `${row.name}: connect_ms`);
    t.match(obs.message, row.message, `${row.name}: message`);
  }
});

t.test('connect_ms of a filtered port is about connectTimeoutMs', async (t) => {
  const blackhole = await listenBlackhole();
  listeners.push(blackhole);
  const obs = await tcpProbe.run(params({ host: '127.0.0.1', port: blackhole.port, connectTimeoutMs: '250' }), makeCtx());
  const ms = obs.fields.connect_ms as number;
  t.ok(ms >= 240 && ms < 2000, `connect_ms ${ms}`);
});

t.test('the check timeout aborts a pending connect: rejects with timeout', async (t) => {
  const blackhole = await listenBlackhole();
  listeners.push(blackhole);
  const started = Date.now();
  const err = await tcpProbe.run(params({ host: '127.0.0.1', port: blackhole.port }), makeCtx({ timeoutMs: 200 })).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError, 'a ProbeError');
  t.equal((err as ProbeError).reason, 'timeout');
  t.match((err as ProbeError).message, /connecting to 127\.0\.0\.1:\d+ did not finish before the check timeout \(connectTimeoutMs 3000/);
  t.ok(Date.now() - started < 2500, 'settles before connectTimeoutMs');
});

t.test('a name that does not resolve is an error, reason dns', async (t) => {
  const obs = await tcpProbe.run(params({ host: 'nonexistent.invalid', port: 5432 }), makeCtx());
  t.equal(obs.error?.reason, 'dns');
  t.match(obs.error?.message, /^nonexistent\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)$/);
  t.equal(obs.value, undefined);
});

t.test('params: coerced from strings, defaults applied, garbage rejected', async (t) => {
  t.same(params({ host: 'db', port: '5432' }), { host: 'db', port: 5432, connectTimeoutMs: 3000 });
  t.same(params({ host: 'db', port: 5432, connectTimeoutMs: '500' }), { host: 'db', port: 5432, connectTimeoutMs: 500 });
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['port out of range', { host: 'db', port: 70000 }, /maximum/],
    ['port not a number', { host: 'db', port: 'postgres' }, /integer/],
    ['missing port', { host: 'db' }, /port/],
    ['empty host', { host: '', port: 1 }, /minLength/],
    ['unknown key', { host: 'db', port: 1, timeout: '3s' }, /additionalProperties/],
  ];
  for (const [name, input, message] of bad) t.throws(() => params(input), message, name);
  t.same(tcpProbe.validate?.(params({ host: 'db.internal:5432', port: 5432 })), [
    'host "db.internal:5432" must be a host name or IP address, not a URL (the port goes in port)',
  ]);
  t.same(tcpProbe.validate?.(params({ host: '10.0.0.5', port: 5432 })), []);
});
