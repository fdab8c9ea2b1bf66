// `readiness validate`: load and validate only. Needs the loader and every probe kind's
// schema and fields, never a probe's client, the store or the server.
import { intrusiveReport, missingReport } from '../config/missing.js';
import { configPath, EXIT, type Io } from './common.js';
import { loadOrReport } from './load.js';

export async function validate(o: { config?: string }, io: Io): Promise<number> {
  const file = configPath(o.config, io.env);
  const cl = await loadOrReport(file, io);
  if (!cl) return EXIT.USAGE;
  const unconfigured = cl.checks.filter((c) => c.unconfigured);
  io.out(`${file}: ok, ${cl.checks.length} checks${unconfigured.length ? `, ${unconfigured.length} unconfigured in this environment` : ''}`);
  for (const line of missingReport(cl.checks)) io.out(line);
  for (const line of intrusiveReport(cl.checks, io.env)) io.out(line);
  return EXIT.OK;
}
