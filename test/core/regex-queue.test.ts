// Long inputs are matched in one worker thread, one request at a time, with a deadline per
// request. Several checks share that worker, so the rule "a bad target degrades one check,
// never others" is decided here: waiting in the queue must not count against a request's
// deadline, and the request that runs past its deadline must fail alone (the ones behind it
// are answered by the replacement worker).
//
// The slow inputs are real matches: `([ab]{1,50})c` with a capture group goes through re2js's
// NFA (no DFA shortcut, no literal prefilter since the text has a c), linear in the input at
// about 2-4 µs a character here: 128 KiB took 270-520 ms (1.3 s beside a CPU hog). The deadline
// is set from a measured match on this machine at this moment (four times it), so the cases
// keep their shape on a loaded machine; no duration is asserted.
import t from 'tap';
import { closeRegexWorker, INLINE_MAX_CHARS, MATCH_DEADLINE_MS, SafeRegex, setMatchDeadline } from '../../src/regex.js';

const re = SafeRegex.compile('([ab]{1,50})c');
const AB = 'ab'.repeat(64 * 1024);
/** 128 KiB of ab, then `c` (a match: the last 50 characters and the c) or `xc` (no match). */
const hit = `${AB}c`;
const miss = `${AB}xc`;
const HIT = ['ab'.repeat(25) + 'c', 'ab'.repeat(25)];
/** 16 times as long: well past a deadline of four ordinary matches. */
const hostile = `${AB.repeat(16)}xc`;

t.teardown(async () => {
  setMatchDeadline(undefined);
  await closeRegexWorker();
});

/** The slowest of a few ordinary matches in a warm worker, in ms. */
async function measureOne(): Promise<number> {
  setMatchDeadline(undefined);
  await re.exec(miss); // starts the worker, compiles the pattern there
  let slowest = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await re.exec(miss);
    slowest = Math.max(slowest, performance.now() - t0);
  }
  return slowest;
}

const settle = (ps: Promise<unknown>[]) =>
  Promise.allSettled(ps).then((rs) => rs.map((r) => (r.status === 'fulfilled' ? { value: r.value } : { error: (r.reason as Error).message })));

t.test('precondition: the inputs are matched in the worker, with the answers the inline engine gives', async (t) => {
  t.ok(hit.length > INLINE_MAX_CHARS && hostile.length > INLINE_MAX_CHARS);
  t.same(await re.exec(hit), HIT);
  t.equal(await re.exec(miss), null);
  t.equal(await re.test(hit), true);
  t.same(re.testSync(`${'ab'.repeat(30)}c`), true, 'the same pattern inline');
});

t.test('a request queued behind others does not time out because of the wait', async (t) => {
  const one = await measureOne();
  const deadline = Math.ceil(4 * one);
  setMatchDeadline(deadline);
  // Eight at once: the last waits for seven matches (about 7 x one), far past the deadline if
  // the wait counted; each match alone takes a quarter of it.
  const texts = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? hit : miss));
  const got = await settle(texts.map((s) => re.exec(s)));
  t.same(
    got,
    texts.map((s) => ({ value: s === hit ? HIT : null })),
    `all eight answered (one match ~${Math.round(one)} ms, deadline ${deadline} ms)`,
  );
});

t.test('a request past its deadline fails alone: the ones behind it are answered, later calls work', async (t) => {
  const one = await measureOne();
  const deadline = Math.ceil(4 * one);
  setMatchDeadline(deadline);
  const calls = [re.exec(hostile), re.exec(hit), re.exec(miss), re.test(hit), SafeRegex.compile('^(ab)+xc$').test(miss)];
  const got = await settle(calls);
  t.match(got[0], { error: `regular expression "([ab]{1,50})c" did not finish within ${deadline} ms` }, 'the hostile match fails with the deadline message');
  t.same(got.slice(1), [{ value: HIT }, { value: null }, { value: true }, { value: true }], 'the four queued behind it get their answers from the new worker');
  t.same(await re.exec(hit), HIT, 'and a later call works');
  t.equal(await re.test(miss), false);
});

t.test('closeRegexWorker: pending requests fail with a clear error, the next one starts a new worker', async (t) => {
  setMatchDeadline(undefined);
  t.equal(MATCH_DEADLINE_MS, 10_000, 'the product deadline is unchanged');
  await re.exec(miss); // a started worker with the pattern compiled
  const pending = settle([re.exec(miss), re.exec(hit), re.test(hit)]);
  const closing = closeRegexWorker();
  const after = settle([re.exec(hit)]);
  await closing;
  t.same(await pending, [{ error: 'the regex worker was closed' }, { error: 'the regex worker was closed' }, { error: 'the regex worker was closed' }], 'in flight and queued: all fail');
  t.same(await after, [{ value: HIT }], 'a request made while the old worker stopped is answered by a new one');
  await closeRegexWorker();
  t.equal(await re.test(hit), true, 'and after a completed close too');
});
