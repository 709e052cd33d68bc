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

/** False when the file was gone already (another process moved it: a peer's recovery, an operator). */
export function complete(activePath: string): boolean {
  try {
    fs.unlinkSync(activePath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return false;
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
export function completeAsync(activePath: string): Promise<boolean> {
  return new Promise((resolve, reject) =>
    fs.unlink(activePath, (err) => {
      if (err && err.code !== 'ENOENT') reject(err);
      else resolve(!err);
    }),
  );
}

/** An unlink on the event loop slower than this (microseconds, averaged) sends the next ones to the thread pool. */
export const SLOW_UNLINK_US = 100;
/** While they go to the thread pool, one in this many is still done on the event loop and timed. */
export const UNLINK_SAMPLE_EVERY = 256;
/** The weight of each new timing in the running average. */
const UNLINK_WEIGHT = 0.25;

/**
 * Where delivered files are unlinked: on the event loop while unlinks are
 * quick, through the thread pool while the disk makes them wait. Handing an
 * unlink to the thread pool wakes a worker, and on a busy 2-core machine
 * that cost the event loop about 33 us a message in a drain, against 6-15 us
 * for the unlink itself on tmpfs or a quiet disk (unlinked on the loop, a
 * drain on tmpfs went from 4,964 to 5,609 msgs/s). But an unlink that waits
 * for a journal commit (see completeAsync) must not be on the loop. So every
 * unlink on the loop is timed, and while the average is over SLOW_UNLINK_US
 * they go to the pool, with one in UNLINK_SAMPLE_EVERY still timed on the
 * loop to notice when the disk is quick again. The choice changes only
 * where the wait is: the file is unlinked either way, and only after a 2xx.
 */
export class UnlinkPlace {
  private averageUs = 0;
  private sinceSample = 0;

  /** Whether the next unlink is done on the event loop (and timed). */
  onLoop(): boolean {
    if (this.averageUs <= SLOW_UNLINK_US) return true;
    if (++this.sinceSample < UNLINK_SAMPLE_EVERY) return false;
    this.sinceSample = 0;
    return true;
  }

  /** An unlink on the event loop took this long. */
  timed(us: number): void {
    this.averageUs += (us - this.averageUs) * UNLINK_WEIGHT;
  }

  get slow(): boolean {
    return this.averageUs > SLOW_UNLINK_US;
  }
}

const monotonicNow = (): number => performance.now();

/** Unlinks a delivered message's file where UnlinkPlace says; resolves and rejects as completeAsync does. */
export function completeSomewhere(activePath: string, place: UnlinkPlace, now: () => number = monotonicNow): Promise<boolean> {
  if (!place.onLoop()) return completeAsync(activePath);
  const started = now();
  let removed: boolean;
  try {
    removed = complete(activePath);
  } catch (err) {
    return Promise.reject(err);
  } finally {
    place.timed((now() - started) * 1000);
  }
  return Promise.resolve(removed);
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
export function moveToBounced(spool: Spool, from: string, entry: Entry, record: BounceRecord, announce?: (name: string) => void): string | null {
  const name = formatEntry(entry);
  const reason = spool.path('bounced', reasonName(name));
  try {
    writeRecord(spool, reason, JSON.stringify(record, null, 2) + '\n', true);
    // A notice is made before the move it announces (see notices.ts).
    announce?.(name);
    if (!moveIfPresent(from, spool.path('bounced', name))) {
      // Another process has the message: the record would be an orphan.
      fs.rmSync(reason, { force: true });
      return null;
    }
  } catch (err) {
    throw new MoveError(entry.id, 'bounced', err);
  }
  return spool.path('bounced', name);
}
