/**
 * One structured line per event on stdout (journald keeps stdout), written
 * synchronously so that the last lines before a crash are not lost in a buffer.
 * Every line names its event; message events carry the id and the queue.
 * On a terminal (or with --log-format pretty) the same events print for people.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export async function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): Promise<Logger> {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  let destination: DestinationStream;
  if (pretty) {
    const { default: prettyStream } = await import('pino-pretty');
    destination = prettyStream({
      sync: true,
      singleLine: true,
      colorize: process.stdout.isTTY === true,
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname,event,msg',
      messageFormat: '{event}{if id} {id}{end}: {msg}',
    });
  } else {
    destination = pino.destination({ fd: 1, sync: true });
  }
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Credentials must not reach the journal even if a header map is logged.
      redact: { paths: ['headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]'], censor: '[redacted]' },
    },
    destination,
  );
}
