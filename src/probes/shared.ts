// Small helpers several probe kinds share. Not a kind: nothing here is registered.
import { ProbeError } from './types.js';

/**
 * Settles like `work`, or rejects with ProbeError('timeout') when the check's signal fires
 * first; the harness owns the timeout, this only names what was still pending.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: () => string): Promise<T> {
  if (signal.aborted) return Promise.reject(new ProbeError('timeout', what()));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ProbeError('timeout', what()));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A load-time problem with an http(s) URL param, or undefined when it is fine. */
export function httpUrlProblem(name: string, value: string): string | undefined {
  try {
    const u = new URL(value);
    return u.protocol === 'https:' || u.protocol === 'http:' ? undefined : `${name} must be an http(s) URL`;
  } catch {
    return `${name} is not a valid URL`;
  }
}

/**
 * Replaces every secret in a text with `***`, longest first (so a secret containing another
 * is hidden whole). Values shorter than `minLength` are left alone: scrubbing "1" or "ab"
 * would garble messages without hiding anything worth hiding.
 */
export function scrubSecrets(text: string, secrets: Iterable<string>, minLength = 1): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s.length >= minLength) out = out.split(s).join('***');
  return out;
}
