// What every `readiness` command shares: its output streams, exit codes, usage errors and
// option parsers. Kept free of the loader, the probes and the server so that the program
// (src/cli.ts) can parse arguments, print --help and --version before loading any of them.
import { parseDuration } from '../config/duration.js';
import type { Phase, Severity } from '../config/enums.js';
import { packagePath } from '../paths.js';
import { writeFd } from './output.js';
import type { Filters } from '../state.js';

export const EXIT = { OK: 0, NOT_READY: 1, USAGE: 2, UNREACHABLE: 3 } as const;

/** The shipped checklist, used when neither -c nor READINESS_CONFIG names one. */
export const DEFAULT_CONFIG = packagePath('probes', 'offgridflow.yaml');

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export const defaultIo: Io = {
  out: (s) => writeFd(1, `${s}\n`),
  err: (s) => writeFd(2, `${s}\n`),
  env: process.env,
};

/** A bad argument: printed as `error: <message>`, exit 2. */
export class UsageError extends Error {}

export function configPath(opt: string | undefined, env: NodeJS.ProcessEnv): string {
  return opt ?? env.READINESS_CONFIG ?? DEFAULT_CONFIG;
}

export function csv(name: string, allowed?: readonly string[]) {
  return (value: string, prev: string[] = []): string[] => {
    const vals = value.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = allowed ? vals.filter((v) => !allowed.includes(v)) : [];
    if (bad.length) throw new UsageError(`unknown ${name} ${bad.join(', ')}; allowed: ${allowed!.join(', ')}`);
    return [...prev, ...vals];
  };
}

export function durationOpt(name: string) {
  return (v: string): number => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) throw new UsageError(`--${name}: bad duration ${JSON.stringify(v)} (e.g. 30s, 15m, 1h)`);
    return ms;
  };
}

export function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** The filter options of check and gate, as /readiness takes them. */
export interface FilterOptions {
  severity?: string[];
  phase?: string[];
  section?: string[];
  check?: string[];
  only?: string[];
}

export function filtersFrom(o: FilterOptions): Filters {
  const f: Filters = {};
  if (o.severity?.length) f.severity = o.severity as Severity[];
  if (o.phase?.length) f.phase = o.phase as Phase[];
  if (o.section?.length) f.section = o.section;
  const ids = [...(o.check ?? []), ...(o.only ?? [])];
  if (ids.length) f.check = ids;
  return f;
}
