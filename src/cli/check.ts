// `readiness check`: runs every check once, in this process, and prints the results.
import { runOnce } from '../scheduler.js';
import { closeProbeKinds } from '../probes/index.js';
import { isReady, matches, readiness, type CheckView } from '../state.js';
import { createStore, storeConfigFromEnv } from '../store/index.js';
import { MemoryStore } from '../store/memory.js';
import { configPath, EXIT, filtersFrom, UsageError, type FilterOptions, type Io } from './common.js';
import { loadOrReport } from './load.js';
import { makeLogger } from './logger.js';
import { setLogSecrets } from '../secrets.js';

/** Fixed-width table for `readiness check` and `readiness gate`. */
export function formatTable(views: readonly CheckView[]): string {
  const rows = views.map((v) => [v.state.toUpperCase(), v.def.id, v.def.severity, v.def.phase, v.value === undefined ? '' : String(Math.round(v.value * 100) / 100), v.message]);
  const head = ['STATE', 'CHECK', 'SEVERITY', 'PHASE', 'VALUE', 'MESSAGE'];
  const widths = head.map((h, i) => Math.min(i === 5 ? 200 : 48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const line = (r: string[]) => r.map((c, i) => (i === 5 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

export async function check(
  o: { config?: string; format: 'table' | 'json'; concurrency: number } & FilterOptions,
  io: Io,
): Promise<number> {
  const file = configPath(o.config, io.env);
  const checklist = await loadOrReport(file, io);
  if (!checklist) return EXIT.USAGE;
  const unknown = (o.only ?? []).filter((id) => !checklist.byId.has(id));
  if (unknown.length) throw new UsageError(`--only: unknown check ${unknown.join(', ')}`);
  const filters = filtersFrom(o);
  const only = checklist.checks.filter((c) => matches(c, filters)).map((c) => c.id);
  const log = makeLogger(io.env.READINESS_LOG_LEVEL ?? 'warn', true);
  setLogSecrets(checklist, checklist.checks.flatMap((c) => c.secrets));
  let views: CheckView[];
  // Attestations and deployments live in the service's store: read them from there, but keep
  // this one-off run's results out of its history.
  const records = checklist.checks.some((c) => c.kind === 'attestation') ? await createStore(storeConfigFromEnv(io.env, log)) : undefined;
  try {
    await records?.init({ tolerateDown: true });
  } catch (err) {
    io.err(`cannot open the ${records?.kind ?? ''} store to read attestations: ${(err as Error).message}`);
    return EXIT.USAGE;
  }
  try {
    views = await runOnce(checklist, { store: new MemoryStore(), ...(records && { records }), log, env: io.env, concurrency: o.concurrency, only });
  } finally {
    await closeProbeKinds();
    await records?.close();
  }
  views = views.filter((v) => matches(v.def, filters));
  const ready = isReady(views);
  if (o.format === 'json') {
    const body = readiness(checklist, views, filters, Date.now(), true);
    io.out(JSON.stringify(body, null, 2));
  } else {
    io.out(formatTable(views));
    const bad = views.filter((v) => v.gating && !['pass', 'warn'].includes(v.state));
    io.out(`\n${ready ? 'READY' : 'NOT READY'}: ${views.length - bad.length} of ${views.length} checks passing${bad.length ? `; failing: ${bad.map((v) => v.def.id).join(', ')}` : ''}`);
  }
  return ready ? EXIT.OK : EXIT.NOT_READY;
}
