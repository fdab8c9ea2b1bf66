// Builds the ProbeContext the harness would hand a probe, for tests that call run() directly.
import pino from 'pino';
import type { ProbeContext } from '../../src/probes/types.js';

export function makeCtx(opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; values?: Record<string, number> } = {}): ProbeContext {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return {
    signal: AbortSignal.timeout(timeoutMs),
    log: pino({ level: 'silent' }),
    checkId: 'test-check',
    timeoutMs,
    env: opts.env ?? {},
    valueOf: (id) => opts.values?.[id],
  };
}
