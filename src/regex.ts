// Regular expressions from the checklist meet text a target controls: a condition's `=~` /
// `!~` against a response body, a report's `pattern`, S3 key patterns, label matchers against
// alert labels (and Alertmanager's own route regexes against the checklist's labels). A
// backtracking engine lets such a pair freeze the process: `(a+)+$` against
// `aaaaaaaaaaaaaaaaaaaaaaaaaa!` held the event loop for 5.8 s per run.
//
// So every one of them runs on RE2 semantics through re2js (pure JavaScript, linear in the
// input whatever the pattern: no catastrophic backtracking exists there) and, since linear
// still means about half a second for a hostile megabyte on this engine, inputs longer than
// INLINE_MAX_CHARS are matched in a worker thread with a deadline: the event loop that
// answers /readiness, /metrics and runs the scheduler never does that work itself.
// bench/regex-bench.ts measures both, and the native `re2` binding it was chosen over.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { RE2JS } from 're2js';
import { requireRe2js } from './deferred.js';
import { packagePath } from './paths.js';

// Resolved from the package root (src/paths.ts): the same from src/, dist/ and the bundle.
const require = createRequire(packagePath('package.json'));
type Re2js = typeof import('re2js');
let re2jsModule: Re2js | undefined;
/** re2js loads on the first regex (100+ ms of module code): commands and checklists without one never pay it. */
function re2js(): Re2js {
  return (re2jsModule ??= requireRe2js() as Re2js);
}

/** Inputs up to this many characters are matched inline (worst case a few milliseconds). */
export const INLINE_MAX_CHARS = 16 * 1024;
/** A match in the worker that takes longer than this, counted from when it is sent to the worker (not from when it was queued), fails alone (the worker is replaced; the queue goes on). */
export const MATCH_DEADLINE_MS = 10_000;

export interface RegexFlags {
  ignoreCase?: boolean;
  /** `^` and `$` match at line breaks. */
  multiline?: boolean;
  /** `.` matches a newline too. */
  dotAll?: boolean;
}

/** A pattern that RE2 does not accept (lookaround, backreferences, bad syntax). */
export class RegexSyntaxError extends Error {
  override name = 'RegexSyntaxError';
}

function flagBits(f: RegexFlags): number {
  const { RE2JS } = re2js();
  return (f.ignoreCase ? RE2JS.CASE_INSENSITIVE : 0) | (f.multiline ? RE2JS.MULTILINE : 0) | (f.dotAll ? RE2JS.DOTALL : 0);
}

/**
 * A compiled checklist regex. `testSync` is for inputs known to be short (label values);
 * `test`, `testMany` and `exec` take any input and keep long ones off the event loop.
 */
export class SafeRegex {
  readonly #re: RE2JS;
  readonly #bits: number;

  private constructor(
    readonly source: string,
    re: RE2JS,
    bits: number,
  ) {
    this.#re = re;
    this.#bits = bits;
  }

  /** Compiles with RE2 syntax; throws RegexSyntaxError with a one-line reason. */
  static compile(source: string, flags: RegexFlags = {}): SafeRegex {
    const bits = flagBits(flags);
    const { RE2JS, RE2JSException } = re2js();
    try {
      return new SafeRegex(source, RE2JS.compile(source, bits), bits);
    } catch (err) {
      if (err instanceof RE2JSException) {
        const hint = /\(\?[=!<]|\\[1-9]/.test(source) ? ' (RE2 syntax: no lookaround or backreferences)' : '';
        // re2js quotes the pattern with the flags it added in front ((?m)...): show what was written.
        throw new RegexSyntaxError(`${err.message.replace(/\s+/g, ' ').replace(/`\(\?[imsU]+\)/, '`')}${hint}`);
      }
      throw err;
    }
  }

  /** Inline match: linear time, but on the caller's thread. */
  testSync(text: string): boolean {
    return this.#re.test(text);
  }

  /** Whether the pattern matches anywhere in `text`. */
  async test(text: string): Promise<boolean> {
    if (text.length <= INLINE_MAX_CHARS) return this.#re.test(text);
    const [r] = await offload({ source: this.source, bits: this.#bits, op: 'test', texts: [text] });
    return r as boolean;
  }

  /** One answer per text; the batch goes to the worker when it is long in total. */
  async testMany(texts: readonly string[]): Promise<boolean[]> {
    let total = 0;
    for (const t of texts) total += t.length;
    if (total <= INLINE_MAX_CHARS) return texts.map((t) => this.#re.test(t));
    return (await offload({ source: this.source, bits: this.#bits, op: 'test', texts: [...texts] })) as boolean[];
  }

  /** The first match and its groups (`[whole, group1, ...]`, a group that did not take part is undefined), or null. */
  async exec(text: string): Promise<(string | undefined)[] | null> {
    if (text.length <= INLINE_MAX_CHARS) return execOne(this.#re, text);
    const [r] = await offload({ source: this.source, bits: this.#bits, op: 'exec', texts: [text] });
    return r as (string | undefined)[] | null;
  }
}

function execOne(re: RE2JS, text: string): (string | undefined)[] | null {
  const m = re.matcher(text);
  if (!m.find()) return null;
  const out: (string | undefined)[] = [];
  for (let g = 0; g <= m.groupCount(); g++) out.push(m.group(g) ?? undefined);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The worker: one, started on first use, unref'd while idle (it never keeps the process alive),
// fed one request at a time. Its code is a CommonJS string loading re2js by absolute path, so
// it runs the same from src/ under the tests' TypeScript loader and from dist/.
//
// The queue lives here, not in the worker's port: a request's deadline starts when it is sent,
// so waiting behind other checks' matches never counts against it. A request past its deadline
// fails alone: its worker is replaced and the requests behind it go to the new one. One hostile
// body degrades the check it came from, never another check's regex.

interface Request {
  source: string;
  bits: number;
  op: 'test' | 'exec';
  texts: string[];
}

const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { RE2JS } = require(workerData.re2js);
const cache = new Map();
parentPort.on('message', ({ id, source, bits, op, texts }) => {
  try {
    const key = bits + '/' + source;
    let re = cache.get(key);
    if (!re) {
      if (cache.size >= 256) cache.clear();
      re = RE2JS.compile(source, bits);
      cache.set(key, re);
    }
    const out = texts.map((t) => {
      if (op === 'test') return re.test(t);
      const m = re.matcher(t);
      if (!m.find()) return null;
      const g = [];
      for (let i = 0; i <= m.groupCount(); i++) g.push(m.group(i) ?? undefined);
      return g;
    });
    parentPort.postMessage({ id, out });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

interface Job {
  req: Request;
  resolve: (v: unknown[]) => void;
  reject: (e: Error) => void;
}

/** The request the worker is matching now (at most one), with its deadline. */
interface InFlight {
  job: Job;
  id: number;
  worker: Worker;
  timer: NodeJS.Timeout;
}

let worker: Worker | undefined;
let nextId = 0;
let deadlineMs = MATCH_DEADLINE_MS;
const queue: Job[] = [];
let inFlight: InFlight | undefined;
/** Workers this module terminated: their 'error' and 'exit' are expected, not a crash. */
const retired = new WeakSet<Worker>();

/** Tests only: a shorter deadline for worker matches; `undefined` restores MATCH_DEADLINE_MS. */
export function setMatchDeadline(ms: number | undefined): void {
  deadlineMs = ms ?? MATCH_DEADLINE_MS;
}

/** Stops a worker of ours: its 'error' and 'exit' are then expected, not a crash. */
function retire(w: Worker): Promise<number> {
  retired.add(w);
  if (worker === w) worker = undefined;
  return w.terminate();
}

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_CODE, { eval: true, workerData: { re2js: require.resolve('re2js') } });
  w.unref();
  w.on('message', (msg: { id: number; out?: unknown[]; error?: string }) => {
    const f = inFlight;
    if (!f || f.worker !== w || f.id !== msg.id) return;
    inFlight = undefined;
    clearTimeout(f.timer);
    if (msg.error !== undefined) f.job.reject(new RegexSyntaxError(msg.error));
    else f.job.resolve(msg.out ?? []);
    pump();
  });
  // A crash we did not cause (out of memory, a bug in the engine): the request it was matching
  // fails, the rest go to a new worker.
  const crashed = (err: Error) => {
    if (retired.has(w)) return;
    retired.add(w);
    if (worker === w) worker = undefined;
    const f = inFlight;
    if (f && f.worker === w) {
      inFlight = undefined;
      clearTimeout(f.timer);
      f.job.reject(err);
    }
    pump();
  };
  w.on('error', crashed);
  w.on('exit', (code) => crashed(new Error(`the regex worker exited (code ${code})`)));
  worker = w;
  return w;
}

/** Sends the next queued request when nothing is in flight; lets an idle worker go. */
function pump(): void {
  if (inFlight) return;
  const job = queue.shift();
  if (!job) {
    worker?.unref();
    return;
  }
  const w = getWorker();
  const id = nextId++;
  const ms = deadlineMs;
  const timer = setTimeout(() => {
    // Linear time makes this a safety net only: never let a match hold anything forever.
    if (inFlight?.id !== id) return;
    inFlight = undefined;
    void retire(w);
    job.reject(new Error(`regular expression ${JSON.stringify(job.req.source.slice(0, 80))} did not finish within ${ms} ms`));
    pump();
  }, ms);
  timer.unref();
  inFlight = { job, id, worker: w, timer };
  // While a match is pending the worker must keep the process alive to answer it.
  w.ref();
  w.postMessage({ id, ...job.req });
}

function offload(req: Request): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    queue.push({ req, resolve, reject });
    pump();
  });
}

/**
 * Stops the worker (tests, shutdown): the request in flight and the queued ones fail with
 * "the regex worker was closed"; the next long match starts a new worker.
 */
export async function closeRegexWorker(): Promise<void> {
  const w = worker;
  const jobs = queue.splice(0);
  const f = inFlight;
  inFlight = undefined;
  if (f) {
    clearTimeout(f.timer);
    jobs.unshift(f.job);
  }
  const err = new Error('the regex worker was closed');
  for (const j of jobs) j.reject(err);
  if (w) await retire(w);
}
