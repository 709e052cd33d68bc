/**
 * Telling systemd how the daemon is doing (sd_notify(3)): READY=1 once the
 * spool is locked, checked and watched; RELOADING=1 then READY=1 around a
 * reload; STOPPING=1 when a stop begins; WATCHDOG=1 from the event loop, so
 * that a daemon whose loop is stuck is restarted.
 *
 * The message is a datagram to the unix socket named by NOTIFY_SOCKET. Node
 * has no unix datagram sockets, so it goes through unix-dgram, a small native
 * binding (an optional dependency: where it could not be built, the daemon
 * says so once, and `spoold unit` writes Type=exec). Not systemd-notify(1):
 * a message from a process that has exited before systemd reads it cannot be
 * matched to its unit (systemd 252, as on Debian 12, loses it), and it would
 * need NotifyAccess=all. Sent by the main process itself: NotifyAccess=main.
 *
 * A side path: a failure to notify is logged, never fatal.
 */
import { createRequire } from 'node:module';
import type { Logger } from './log.js';

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, callback?: (err?: Error) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  close(): void;
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): DgramSocket;
}

/** The binding, if it is installed and built; null otherwise. */
export function loadUnixDgram(): UnixDgram | null {
  try {
    return createRequire(import.meta.url)('unix-dgram') as UnixDgram;
  } catch {
    return null;
  }
}

/** CLOCK_MONOTONIC in µs, as RELOADING=1 wants it. */
function monotonicUsec(): string {
  return String(process.hrtime.bigint() / 1000n);
}

export class Notifier {
  private readonly socket: string | null;
  private readonly dgram: UnixDgram | null;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: Logger,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const path = env.NOTIFY_SOCKET ?? '';
    // systemd names a file-system socket (/run/systemd/notify); an abstract
    // one (@name) the binding cannot address.
    this.socket = path === '' ? null : path;
    if (path.startsWith('@')) log.warn({ event: 'notify-unavailable', socket: path }, 'NOTIFY_SOCKET is an abstract socket, which this build cannot reach: systemd will not hear that the daemon is ready (use Type=exec)');
    this.dgram = this.socket && !path.startsWith('@') ? loadUnixDgram() : null;
    if (this.socket && !path.startsWith('@') && !this.dgram) log.warn({ event: 'notify-unavailable' }, 'NOTIFY_SOCKET is set but the unix-dgram binding is not installed: systemd will not hear that the daemon is ready (use Type=exec)');
    const usec = Number(env.WATCHDOG_USEC ?? 0);
    const pid = env.WATCHDOG_PID === undefined ? process.pid : Number(env.WATCHDOG_PID);
    // Pinged at half the interval, as sd_watchdog_enabled(3) advises.
    if (this.dgram && usec > 0 && pid === process.pid) {
      this.watchdog = setInterval(() => this.send('WATCHDOG=1'), Math.max(50, usec / 2000));
      this.watchdog.unref();
    }
  }

  /** Whether there is a service manager listening (and a way to reach it). */
  get active(): boolean {
    return this.dgram !== null;
  }

  send(...fields: string[]): void {
    if (!this.socket || !this.dgram) return;
    const message = Buffer.from(fields.join('\n') + '\n');
    try {
      const s = this.dgram.createSocket('unix_dgram');
      // The binding answers at once (its callbacks are synchronous).
      s.send(message, 0, message.length, this.socket, (err) => {
        if (err) this.log.warn({ event: 'notify-failed', error: err.message }, 'could not notify systemd');
      });
      s.close();
    } catch (err) {
      this.log.warn({ event: 'notify-failed', error: (err as Error).message }, 'could not notify systemd');
    }
  }

  ready(status: string): void {
    this.send('READY=1', `STATUS=${status}`, `MAINPID=${process.pid}`);
  }

  reloading(): void {
    this.send('RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`, 'STATUS=reloading the configuration');
  }

  stopping(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.send('STOPPING=1', 'STATUS=stopping: finishing requests in flight');
  }

  status(text: string): void {
    this.send(`STATUS=${text}`);
  }
}
