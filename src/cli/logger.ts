// The logger of serve (stdout) and check (stderr, so that stdout stays the result).
import pino, { type Logger } from 'pino';
import { scrubLogLine } from '../secrets.js';

export function makeLogger(level: string, toStderr: boolean): Logger {
  return pino(
    {
      level,
      base: { service: 'readiness-exporter' },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.password'], censor: '***' },
      // Every secret of the loaded checklist, whatever logged it and at what level (src/secrets.ts).
      hooks: { streamWrite: scrubLogLine },
    },
    toStderr ? pino.destination(2) : pino.destination(1),
  );
}
