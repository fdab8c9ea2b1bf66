// runCheck's lease question (HA) and the message of a pass with several conditions.
import pino from 'pino';
import t from 'tap';
import { runCheck } from '../../src/harness.js';
import { makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });

t.test('a lease lost before the probe is sent: the probe never runs, the result says why', async (t) => {
  const def = makeDef(() => ({ fields: {} }));
  const r = await runCheck(def, { log, stillOwner: () => false });
  t.equal(def.runs(), 0, 'the probe was not sent');
  t.equal(r.state, 'error');
  t.equal(r.message, "the check's lease was lost before the probe was sent");
});

t.test('a lease still held: the probe runs and can ask the same question', async (t) => {
  let answer: boolean | undefined;
  const def = makeDef((ctx) => {
    answer = ctx.stillOwner?.();
    return { fields: {} };
  });
  const r = await runCheck(def, { log, stillOwner: () => true });
  t.equal(def.runs(), 1);
  t.equal(answer, true, 'the probe sees stillOwner');
  t.equal(r.state, 'pass');
});

t.test('a pass with several conditions names each, separated by "; "', async (t) => {
  const def = makeDef(() => ({ fields: { n: 5, ok: true } }), { expect: ['n >= 5', 'ok == true'] });
  const r = await runCheck(def, { log });
  t.equal(r.state, 'pass');
  t.equal(r.message, 'n >= 5 is true (n = 5); ok == true is true (ok = true)');
});
