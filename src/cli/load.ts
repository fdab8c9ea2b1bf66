// Loading the checklist for a command: every diagnostic printed as file:line:col, then a count.
import { loadChecklistFile } from '../config/load.js';
import { formatDiagnostic, type Checklist } from '../config/types.js';
import type { Io } from './common.js';

export async function loadOrReport(file: string, io: Io): Promise<Checklist | undefined> {
  const res = await loadChecklistFile(file, io.env);
  if (res.ok) return res.checklist;
  for (const d of res.diagnostics) io.err(formatDiagnostic(d));
  io.err(`${res.diagnostics.length} error${res.diagnostics.length === 1 ? '' : 's'} in ${file}`);
  return undefined;
}
