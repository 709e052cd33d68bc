/**
 * Claim: incoming/ or deferred/ → active/, by one rename each.
 *
 * The rename is the claim. If the file vanished first (an operator deleted or
 * held it, a second claimant won), the rename fails with ENOENT and the
 * message is simply not ours: skipped, never an error.
 *
 * The active/ name records the attempt about to be made. A message that
 * crashes the daemon is therefore counted on every restart and still runs
 * out of attempts instead of crash-looping forever.
 */
import fs from 'node:fs';
import type { Spool } from './layout.js';
import { formatActiveName, incomingName, type Entry } from './names.js';

export interface Claimed {
  entry: Entry;
  /** Name in active/. */
  name: string;
  path: string;
}

/** rename(2), answering false when the source is gone. Any other failure throws. */
export function moveIfPresent(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(from)) return false;
    throw err;
  }
}

/** `owner`: this daemon's id in a shared spool (written into the active/ name), else null. */
function claim(spool: Spool, from: string, entry: Entry, owner: string | null): Claimed | null {
  const formatted = formatActiveName(entry, owner);
  const path = spool.path('active', formatted);
  // The formatted name is a tree of a dozen string pieces, and a claimed message is held until it
  // is sent: with 10,000 held, 3.5 MB of them. The name as a slice of the (flat) path costs one.
  const name = path.slice(path.length - formatted.length);
  return moveIfPresent(from, path) ? { entry, name, path } : null;
}

export function claimIncoming(spool: Spool, id: string, now: number, owner: string | null = null): Claimed | null {
  const entry: Entry = { id, time: now, attempts: 1, arrival: now, destination: '-', lastError: '-' };
  return claim(spool, spool.path('incoming', incomingName(id)), entry, owner);
}

export function claimDeferred(spool: Spool, path: string, deferred: Entry, now: number, owner: string | null = null): Claimed | null {
  return claim(spool, path, { ...deferred, time: now, attempts: deferred.attempts + 1 }, owner);
}
