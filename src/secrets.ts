// What counts as a secret of a check, in every form a probe may send it, and the one place
// that hides them from every surface: run messages and condition texts (src/harness.ts), the
// params /checks shows (src/http/server.ts) and every log line at every level (the logger's
// streamWrite hook below).
//
// A check's secrets are its secret params' values (kind.secretParams) and the values of every
// environment variable it names (`bearerTokenEnv`, `tokenEnv`, `passwordEnv`, any `*Env`, and
// the kind's own requiredEnv defaults such as STRIPE_SECRET_KEY). A target that echoes what it
// received sends them back in the encodings the probe used, so each value is hidden raw,
// URL-encoded and decoded, in base64 (and base64url), JSON-escaped, and as the base64 of the
// Basic `user:password` pair a probe builds from a URL or from usernameEnv/passwordEnv.

/** Values shorter than this are not scrubbed ("1" or "ab" would garble messages, hiding nothing). */
export const MIN_SECRET_LENGTH = 4;

/** Names of the environment variables a check's params name: every string under a key ending in `Env`. */
export function envParamNames(params: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (/Env$/.test(k) && typeof x === 'string' && x !== '') out.push(x);
        else walk(x);
      }
    }
  };
  walk(params);
  return out;
}

/** `usernameEnv`/`passwordEnv` pairs (at any depth) as the `user:password` a Basic header encodes. */
export function basicPairsFromEnv(params: unknown, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const user = typeof o.usernameEnv === 'string' ? env[o.usernameEnv] : undefined;
      const pass = typeof o.passwordEnv === 'string' ? env[o.passwordEnv] : undefined;
      if (pass) out.push(`${user ?? ''}:${pass}`);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(params);
  return out;
}

/** `user:password` of every URL with credentials in the params (decoded, as Basic sends them). */
export function basicPairsFromUrls(params: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string') {
      if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(v)) return;
      try {
        const u = new URL(v);
        if (u.password) out.push(`${safeDecode(u.username)}:${safeDecode(u.password)}`);
      } catch {
        // Not a URL: nothing to add.
      }
    } else if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(params);
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Every form of the values (and Basic pairs) a probe might send and a target echo back. */
export function secretForms(values: Iterable<string>, basicPairs: Iterable<string> = []): string[] {
  const out = new Set<string>();
  const add = (s: string) => {
    if (s.length < MIN_SECRET_LENGTH) return;
    out.add(s);
    out.add(safeDecode(s));
    out.add(encodeURIComponent(s));
    out.add(new URLSearchParams({ x: s }).toString().slice(2));
    out.add(JSON.stringify(s).slice(1, -1));
    out.add(Buffer.from(s).toString('base64'));
    out.add(Buffer.from(s).toString('base64url'));
  };
  for (const v of values) add(v);
  for (const pair of basicPairs) {
    const b = Buffer.from(pair);
    out.add(b.toString('base64'));
    out.add(b.toString('base64url'));
    // A pair with an empty password or user still hides the password part itself (added above).
  }
  return [...out].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

// ---------------------------------------------------------------------------------------------
// Log lines: every secret of the loaded checklist(s), whatever logged it and at what level.

const logSecrets = new Map<object, readonly string[]>();
let pattern: RegExp | undefined;

/** Registers (or, with undefined, forgets) the secrets of one owner (a loaded checklist). */
export function setLogSecrets(owner: object, secrets: readonly string[] | undefined): void {
  if (secrets === undefined || secrets.length === 0) logSecrets.delete(owner);
  else logSecrets.set(owner, secrets);
  const all = new Set<string>();
  for (const list of logSecrets.values()) for (const s of list) if (s.length >= MIN_SECRET_LENGTH) all.add(s);
  // Each also as it appears inside a JSON string (a log line is JSON).
  for (const s of [...all]) all.add(JSON.stringify(s).slice(1, -1));
  const sorted = [...all].sort((a, b) => b.length - a.length);
  pattern = sorted.length === 0 ? undefined : new RegExp(sorted.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
}

/** A log line with every registered secret replaced by `***` (pino's streamWrite hook). */
export function scrubLogLine(line: string): string {
  return pattern ? line.replace(pattern, '***') : line;
}

// ---------------------------------------------------------------------------------------------
// Cut secrets: a probe or a condition shortens a long text (`body = "{...ECHO[Y25yeTAw..."`)
// before the harness sees it, so a secret cut in two is no longer found whole. The part left
// next to the cut is still the secret's: a head before an ellipsis or at the text's end, a tail
// after an ellipsis or at its start.

/** Shortest cut part hidden: shorter heads are too common to hide ("http", a JSON brace). */
export const MIN_CUT_LENGTH = 6;
const CUT = /\.\.\.|\u2026/g;

/** The text with every part of a secret cut off at an ellipsis (or the text's ends) replaced by `***`. */
export function maskCutSecrets(text: string, secrets: readonly string[]): string {
  const long = secrets.filter((s) => s.length > MIN_CUT_LENGTH);
  if (long.length === 0 || text === '') return text;
  const cuts = new Set<number>([0, text.length]);
  for (const m of text.matchAll(CUT)) cuts.add(m.index).add(m.index + m[0].length);
  // [start, end) ranges to hide, found first, replaced right to left.
  const hide: [number, number][] = [];
  for (const at of cuts) {
    let head = 0;
    let tail = 0;
    for (const s of long) {
      // Longest proper head of s ending at `at`, longest proper tail starting there.
      for (let k = Math.min(s.length - 1, at); k >= MIN_CUT_LENGTH && k > head; k--) {
        if (text.startsWith(s.slice(0, k), at - k)) head = k;
      }
      for (let k = Math.min(s.length - 1, text.length - at); k >= MIN_CUT_LENGTH && k > tail; k--) {
        if (text.startsWith(s.slice(s.length - k), at)) tail = k;
      }
    }
    if (head > 0) hide.push([at - head, at]);
    if (tail > 0) hide.push([at, at + tail]);
  }
  if (hide.length === 0) return text;
  hide.sort((a, b) => a[0] - b[0]);
  let out = '';
  let pos = 0;
  for (const [start, end] of hide) {
    if (end <= pos) continue;
    out += text.slice(pos, Math.max(pos, start)) + '***';
    pos = end;
  }
  return out + text.slice(pos);
}
