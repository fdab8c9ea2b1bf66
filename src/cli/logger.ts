// The logger of serve (stdout) and check (stderr, so that stdout stays the result).
import pino, { type Logger } from 'pino';

export function makeLogger(level: string, toStderr: boolean): Logger {
  return pino(
    {
      level,
      base: { service: 'readiness-exporter' },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.password'], censor: '***' },
    },
    toStderr ? pino.destination(2) : pino.destination(1),
  );
}
