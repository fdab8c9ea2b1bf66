// Runs one probe kind once in a process of its own and prints the Observation as JSON: for
// tests that need the probe inside another namespace (a private /etc/hosts, no network).
//   node --import tsx test/helpers/run-probe.ts KIND '{"host":"...","port":5432}' [timeoutMs]
import pino from 'pino';
import { getProbeKind } from '../../src/probes/index.js';

const [kindName, paramsJson, timeout] = process.argv.slice(2);
const kind = getProbeKind(kindName ?? '');
if (!kind) throw new Error(`unknown probe kind ${kindName}`);
const timeoutMs = Number(timeout ?? 10_000);
const obs = await kind.run(JSON.parse(paramsJson ?? '{}') as never, {
  signal: AbortSignal.timeout(timeoutMs),
  log: pino({ level: 'silent' }),
  checkId: 'run-probe',
  timeoutMs,
  env: process.env,
  valueOf: () => undefined,
});
process.stdout.write(`${JSON.stringify(obs)}\n`);
