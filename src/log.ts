/**
 * One structured line per event on stdout (journald keeps stdout), written
 * synchronously so that the last lines before a crash are not lost in a buffer.
 * Every line names its event; message events carry the id and the queue.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.SPOOLD_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Credentials must not reach the journal even if a header map is logged.
      redact: { paths: ['headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]'], censor: '[redacted]' },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}
