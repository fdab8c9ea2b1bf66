// `readiness gate`: polls a running service's /readiness until it is ready or the timeout
// passes. Needs nothing but node:http (src/cli/request.ts): no loader, no probes, no fetch.
import { fetchCause } from '../reasons.js';
import type { describe } from '../state.js';
import { EXIT, filtersFrom, UsageError, type FilterOptions, type Io } from './common.js';
import { requestJson } from './request.js';

export async function gate(
  o: { url: string; timeout: number; interval: number } & FilterOptions,
  io: Io,
): Promise<number> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new UsageError(`--url: not a URL: ${JSON.stringify(o.url)}`);
  }
  if (!url.pathname.endsWith('/readiness')) url.pathname = `${url.pathname.replace(/\/$/, '')}/readiness`;
  for (const [k, v] of Object.entries(filtersFrom(o))) url.searchParams.set(k, (v as string[]).join(','));
  const deadline = Date.now() + o.timeout;
  let lastFailing = '';
  let reachedOnce = false;
  let lastError = '';
  for (;;) {
    const remaining = deadline - Date.now();
    try {
      const res = await requestJson(url, { headers: { accept: 'application/json' }, timeoutMs: Math.max(1000, Math.min(10_000, remaining)) });
      const body = res.json as
        | { ready?: boolean; failing?: ReturnType<typeof describe>[]; message?: string; rollback?: { recommended: boolean; failing: string[] } }
        | undefined;
      if (res.status === 400) {
        io.err(`gate: the service rejected the request: ${body?.message ?? res.statusText}`);
        return EXIT.USAGE;
      }
      if ((res.status === 200 || res.status === 503) && body && typeof body === 'object' && typeof body.ready === 'boolean') {
        reachedOnce = true;
        lastError = '';
        if (body.ready) {
          io.out(`ready: ${url.toString()}`);
          return EXIT.OK;
        }
        // The service's own rollback verdict (Service.rollbackCauses), never recomputed here.
        const rollback = body.rollback?.recommended ? `\nrollback recommended: ${body.rollback.failing.join(', ')}` : '';
        const failing = (body.failing ?? []).map((f) => `  ${f.state.toUpperCase().padEnd(12)} ${f.id}: ${f.message}`).join('\n') + rollback;
        if (failing !== lastFailing) {
          io.out(`not ready (${new Date().toISOString()}), still failing:\n${failing}`);
          lastFailing = failing;
        }
      } else {
        lastError = `unexpected answer: HTTP ${res.status} ${res.contentType}`.trim();
        io.err(`gate: ${lastError}`);
      }
    } catch (err) {
      lastError = `cannot reach ${url.origin}: ${fetchCause(err)}`;
      io.err(`gate: ${lastError}`);
    }
    if (Date.now() + o.interval > deadline) break;
    await new Promise((r) => setTimeout(r, o.interval));
  }
  if (lastError) {
    io.err(`gate: timed out; the service ${reachedOnce ? 'is unreachable now' : 'was never reachable'} (${lastError})`);
    return EXIT.UNREACHABLE;
  }
  io.out(`gate: not ready after ${Math.round(o.timeout / 1000)}s`);
  return EXIT.NOT_READY;
}
