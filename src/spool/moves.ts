/**
 * The moves after an attempt, out of active/:
 *
 *   complete  unlink: only after a 2xx, the one place a message file is removed
 *   defer     rename into deferred/<bucket>/ with the next-attempt time in the name
 *   bounce    write the reason record, then rename the message beside it
 *
 * Each is a single rename or unlink, so a crash at any point leaves the
 * message whole in exactly one queue (or in active/, where start-up finds it).
 * A move that fails for any reason but a vanished source throws with the
 * message id and queue; the message stays where it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { moveIfPresent } from './claim.js';
import { SpoolError } from '../errors.js';
import type { Spool } from './layout.js';
import { bucketOf, formatEntry, reasonName, type Entry } from './names.js';
import { writeRecord } from './staging.js';

export class MoveError extends SpoolError {
  constructor(
    readonly id: string,
    readonly queue: string,
    cause: unknown,
  ) {
    super(`message ${id}: move to ${queue}/ failed: ${(cause as Error).message}`, 'SPOOL_ERR_MOVE', { cause });
  }
}

export function complete(activePath: string): void {
  try {
    fs.unlinkSync(activePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The same, through the thread pool. On a journalled disk an unlink of a
 * file fsynced a moment ago waits for the journal commit that the producers'
 * fsyncs keep forcing (0.4-0.8 ms here, against 14 us for an old file): on
 * the event loop that wait held up every other message. Node's callback
 * form, not fs/promises: on Node 20 fsp.unlink costs the event loop 16-19 us
 * a call against 9-11 for this (20,000 unlinks on tmpfs, one run), paid for
 * every message delivered.
 */
export function completeAsync(activePath: string): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.unlink(activePath, (err) => {
      if (err && err.code !== 'ENOENT') reject(err);
      else resolve();
    }),
  );
}

/**
 * Renames into deferred/, creating the time bucket when it is missing.
 * Returns where it went, or null when the source was gone (another process
 * moved it first: a peer's recovery, an operator).
 */
export function moveToDeferred(spool: Spool, from: string, entry: Entry): string | null {
  const name = formatEntry(entry);
  const dir = spool.bucketDir(bucketOf(entry.time));
  const to = path.join(dir, name);
  try {
    // The bucket may be missing, or removed as empty by a peer's scan between
    // our mkdir and our rename (rmdir never removes a file): make it and retry.
    for (let tries = 1; ; tries++) {
      try {
        if (!moveIfPresent(from, to)) return null;
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || tries === 3) throw err;
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      }
    }
  } catch (err) {
    throw new MoveError(entry.id, 'deferred', err);
  }
  return to;
}

export interface BounceRecord {
  id: string;
  reason: string;
  lastError: string | null;
  attempts: number;
  arrival: string;
  bouncedAt: string;
  url?: string;
}

/**
 * The reason record is made first (written whole and fsynced in tmp/,
 * renamed into bounced/); then the message follows. A crash between the two
 * leaves an orphan record, never a message without its queue; a power cut
 * after the move leaves the record whole (a bounce is rare: its fsync costs
 * little), where without the fsync it could come back empty.
 */
export function moveToBounced(spool: Spool, from: string, entry: Entry, record: BounceRecord, announce?: (name: string) => void): string {
  const name = formatEntry(entry);
  try {
    writeRecord(spool, spool.path('bounced', reasonName(name)), JSON.stringify(record, null, 2) + '\n', true);
    // A notice is made before the move it announces (see notices.ts).
    announce?.(name);
    moveIfPresent(from, spool.path('bounced', name));
  } catch (err) {
    throw new MoveError(entry.id, 'bounced', err);
  }
  return spool.path('bounced', name);
}
