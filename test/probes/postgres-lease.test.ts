// HA: the postgres probe asks the run's lease question where it sends (src/probes/lease.ts):
// `ready` at every write of its own connection (the startup message first), the pooled
// measures before each statement. A front relay between the probe and a real PostgreSQL
// counts what reaches the server.
import net from 'node:net';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import postgresProbe from '../../src/probes/postgres.js';
import { LeaseLostError } from '../../src/probes/types.js';
import { makeTestPki } from '../helpers/certs.js';
import { makeCtx } from '../helpers/ctx.js';
import { startPostgres } from '../helpers/postgres.js';

const pgServer = await startPostgres(t);
const compile = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(postgresProbe.params);
function params(input: Record<string, unknown>): Static<typeof postgresProbe.params> {
  const p = structuredClone(input);
  if (!compile(p)) throw new Error(JSON.stringify(compile.errors));
  return p as Static<typeof postgresProbe.params>;
}

// The relay: `sent` is every byte the probe sent to the server; `onAccept` runs as a
// connection arrives, before any of its bytes are relayed.
let sent = Buffer.alloc(0);
let onAccept = () => {};
const relay = net.createServer((s) => {
  onAccept();
  const back = net.connect(pgServer.port, '127.0.0.1');
  s.on('data', (d: Buffer) => {
    sent = Buffer.concat([sent, d]);
    back.write(d);
  });
  back.pipe(s);
  s.on('error', () => back.destroy());
  s.on('close', () => back.destroy());
  back.on('error', () => s.destroy());
});
await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => relay.close(() => r())));
const url = pgServer.urlFor({ port: (relay.address() as net.AddressInfo).port });
t.teardown(() => postgresProbe.close?.());

t.test('ready: a lease lost before its connection speaks sends not even the startup message', async (t) => {
  const p = params({ url, measure: 'ready' });
  let accepted = 0;
  onAccept = () => accepted++;
  sent = Buffer.alloc(0);
  const kept = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => true });
  t.equal(kept.error, undefined, 'with the lease kept it answers');
  t.ok(sent.length > 0, 'and its connection spoke to the server');

  // Lost since the run started (its first question is the socket's first write): the
  // connection still opens (connecting sends no data), but nothing is written on it.
  sent = Buffer.alloc(0);
  accepted = 0;
  const lost = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => false }).catch((err: unknown) => err);
  await new Promise((r) => setTimeout(r, 50));
  t.type(lost, LeaseLostError, 'the run says the lease was lost');
  t.equal(accepted, 1, 'its connection opened');
  t.equal(sent.length, 0, 'but nothing reached the server, not even the startup message');
});

t.test('a pooled measure: a lease lost while the pool connects sends no statement', async (t) => {
  let owner = true;
  const p = params({ url, measure: 'query', sql: 'SELECT 41 + 1 AS answer' });
  sent = Buffer.alloc(0);
  onAccept = () => {};
  const kept = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => owner });
  t.equal(kept.value, 42, 'with the lease kept the query runs');
  t.match(sent.toString('latin1'), /SELECT 41 \+ 1/, 'and reaches the server');
  await postgresProbe.close?.(); // the next run opens a new pooled connection

  sent = Buffer.alloc(0);
  onAccept = () => (owner = false);
  const lost = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => owner }).catch((err: unknown) => err);
  await new Promise((r) => setTimeout(r, 50));
  t.type(lost, LeaseLostError, 'the run says the lease was lost');
  t.notMatch(sent.toString('latin1'), /BEGIN|SELECT 41/, 'no statement reached the server');
});

t.test('ready over TLS: the SSLRequest is the first write, and it asks', async (t) => {
  const pki = makeTestPki();
  const tlsServer = await startPostgres(t, { tls: { cert: pki.valid.cert + pki.ca.cert, key: pki.valid.key } });
  const p = params({ url: tlsServer.url, measure: 'ready', sslmode: 'require' });
  const kept = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => true });
  t.equal(kept.error, undefined, 'with the lease kept it answers over TLS (the gate does not break the upgrade)');
  t.match(kept.fields, { status: 'accepting' });
  const lost = await postgresProbe.run(p, { ...makeCtx(), stillOwner: () => false }).catch((err: unknown) => err);
  t.type(lost, LeaseLostError, 'with the lease lost it sends nothing');
});
