/**
 * Requests in flight that the process's file-descriptor limit allows.
 *
 * Every request in flight holds a socket, and every claim opens the message
 * file for a moment. Run with a low `ulimit -n` (64 is not rare outside
 * systemd, whose unit here sets LimitNOFILE=65536), sockets can take every
 * descriptor: then each claim meets EMFILE and claiming pauses, and the
 * daemon crawls instead of delivering at the rate the limit allows. So the
 * concurrency is fitted to the descriptors that are left once the daemon is
 * up, less a reserve for what opens descriptors besides requests.
 *
 * EMFILE can still happen (idle keep-alive sockets to several destinations,
 * status-page clients, another thread of the process): it stays a host
 * trouble that retries and never bounces (see delivery/classify.ts).
 */
import fs from 'node:fs';
import type { Config } from './config.js';

/**
 * Kept free for what is not a request: the claim being read, history and
 * bounce records, the state files, status-page and metrics clients, the
 * descriptors undici's connect opens and closes.
 */
export const RESERVE = 12;

/** The soft limit on open files (RLIMIT_NOFILE), or Infinity when it cannot be read (not Linux) or is unlimited. */
export function openFilesLimit(limits = '/proc/self/limits'): number {
  try {
    const line = fs.readFileSync(limits, 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : Infinity;
  } catch {
    return Infinity;
  }
}

/** Descriptors open now, or 0 when that cannot be known. */
export function openDescriptors(fdDir = '/proc/self/fd'): number {
  try {
    // The directory's own descriptor is among the names, and is closed again.
    return Math.max(0, fs.readdirSync(fdDir).length - 1);
  } catch {
    return 0;
  }
}

/** Requests that may be in flight at once within `limit` descriptors of which `open` are taken: at least 1. */
export function requestRoom(limit: number, open: number): number {
  return Math.max(1, limit - open - RESERVE);
}

/**
 * The configuration with every concurrency capped at `room`, and what was
 * lowered (empty: nothing), for the warning that says so.
 */
export function fitConcurrency(config: Config, room: number): { config: Config; lowered: string[] } {
  const lowered: string[] = [];
  if (config.concurrency <= room && config.destinationSettings.every((d) => (d.concurrency ?? 0) <= room)) return { config, lowered };
  if (config.concurrency > room) lowered.push('concurrency');
  if (config.destinationSettings.some((d) => (d.concurrency ?? 0) > room)) lowered.push('destinations.concurrency');
  return {
    config: {
      ...config,
      concurrency: Math.min(config.concurrency, room),
      perDestination: Math.min(config.perDestination, room),
      destinationSettings: config.destinationSettings.map((d) => (d.concurrency !== undefined && d.concurrency > room ? { ...d, concurrency: room } : d)),
    },
    lowered,
  };
}
