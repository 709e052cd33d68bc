/**
 * One structured line per event on stdout (journald keeps stdout), written
 * synchronously so that the last lines before a crash are not lost in a buffer.
 * Every line names its event; message events carry the id and the queue.
 * On a terminal (or with --log-format pretty) the same events print for people.
 */
import fs from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** sd-daemon(3) priorities by level, read by journald from a `<N>` prefix. */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };
const LEVEL = /"level":"([a-z]+)"/;

/**
 * Whether standard output is the journal: systemd sets JOURNAL_STREAM to the
 * device and inode of the stream it connected (systemd.exec(5)); checked
 * against fd 1 itself, as a child with a redirected stdout inherits the variable.
 */
export function toJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(1);
    return st.dev === Number(m[1]) && st.ino === Number(m[2]);
  } catch {
    return false;
  }
}

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
      // Under systemd, each line carries its priority: journalctl -p err shows the errors.
      ...(!pretty && toJournal() && { hooks: { streamWrite: (line: string) => `<${PRIORITY[LEVEL.exec(line)?.[1] ?? 'info'] ?? 6}>${line}` } }),
    },
    destination,
  );
}
