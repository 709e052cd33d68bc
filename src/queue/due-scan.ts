/**
 * The due scan: finds messages whose next attempt has come in deferred/
 * (spool/due.ts reads the names) and hands them to be claimed.
 *
 * A scan reads every name in the buckets it passes, due or not, so scans are
 * spaced to take at most 1/SPACING of the daemon's time, measured on the
 * monotonic clock; a wall clock stepped back by an hour delays nothing but
 * the retries whose times were written before the step.
 *
 * Between scans, what comes due is claimed from the upcoming list: the
 * earliest UPCOMING entries not due yet at the last scan, with the daemon's
 * own moves into deferred/ added as it makes them. The list is complete up to
 * `completeUntil`: every name in deferred/ due before then is in it, but for
 * names others put there (an operator's flush or release, a peer), which the
 * scan that runs every --scan-interval finds. So a retry goes out when it is
 * due, not when the next scan may run (with thousands waiting in the current
 * bucket, a scan per due message would be spaced tens of ms apart), and a
 * full scan runs once per UPCOMING due messages, not once per message.
 */
import { scanDue, type DueEntry } from '../spool/due.js';
import type { Spool } from '../spool/layout.js';
import type { Entry } from '../spool/names.js';
import type { Clock } from './clock.js';

const SPACING = 20;
/** Entries kept between scans: about 200 bytes each. */
export const UPCOMING = 1024;

export class DueScan {
  /** Something may be due that the upcoming list does not hold. */
  private changedSince = true;
  /** No scan before this (monotonic ms). */
  private after = 0;
  /** A scan is wanted by then (monotonic ms): passed-over messages may go again. */
  private rescanAt = Infinity;
  /** When the last scan ran (monotonic ms). */
  lastScan = -Infinity;
  /** The earliest entries not due at the last scan, and the daemon's own since, earliest first. */
  private upcoming: DueEntry[] = [];
  /** `upcoming` holds every entry due before this (wall ms). */
  private completeUntil = -Infinity;

  constructor(
    private readonly spool: Spool,
    private readonly clock: Clock,
  ) {}

  /** deferred/ changed in a way the upcoming list does not know: scan it. */
  changed(): void {
    this.changedSince = true;
  }

  /** Scan again no later than `mono` (passed-over messages may be taken then). */
  scanBy(mono: number): void {
    this.rescanAt = Math.min(this.rescanAt, mono);
  }

  /** The daemon moved a message into deferred/, to `path`: it goes out from the list when due. */
  added(entry: Entry, path: string): void {
    if (entry.time >= this.completeUntil) return;
    const list = this.upcoming;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.entry.time <= entry.time) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, { entry, path });
    if (list.length > UPCOMING) this.completeUntil = list.pop()!.entry.time;
  }

  /** Whether a scan is needed: the list may miss something due by now. */
  get dirty(): boolean {
    return this.changedSince || this.clock.wall() >= this.completeUntil || this.clock.mono() >= this.rescanAt;
  }

  /** When the next scan may run (monotonic ms): now if it may run now. */
  get readyAt(): number {
    return this.after;
  }

  ready(): boolean {
    return this.dirty && this.clock.mono() >= this.after;
  }

  /** Names others moved into deferred/ are found by a scan at least this often (monotonic ms). */
  rescanEvery(interval: number): void {
    if (this.clock.mono() - this.lastScan >= interval) this.changedSince = true;
  }

  /** Whether something in deferred/ may be claimable, now or once the scan's spacing allows. */
  get waiting(): boolean {
    return this.dirty || this.listDue();
  }

  /** Whether something in deferred/ may be claimable now: from the list, or by a scan. */
  wanted(): boolean {
    return this.listDue() || this.ready();
  }

  /** When to look next (monotonic ms), scanning at least every `interval`. */
  wakeAt(interval: number): number {
    const now = this.clock.mono();
    if (this.dirty) return this.after;
    const scanAt = Math.min(now + (this.completeUntil - this.clock.wall()), this.rescanAt, this.lastScan + interval);
    const first = this.upcoming[0];
    return Math.min(first ? now + (first.entry.time - this.clock.wall()) : Infinity, Math.max(scanAt, this.after));
  }

  /** Whether the list holds something due now. */
  listDue(): boolean {
    return this.upcoming.length > 0 && this.upcoming[0]!.entry.time <= this.clock.wall();
  }

  /**
   * At most `limit` due entries from the list that `pass` does not pass over,
   * earliest first. One passed over leaves the list, which is then complete
   * only until its time: the next scan finds it again.
   */
  take(limit: number, pass: (e: Entry) => boolean): DueEntry[] {
    const now = this.clock.wall();
    const taken: DueEntry[] = [];
    let i = 0;
    for (; i < this.upcoming.length && taken.length < limit; i++) {
      const next = this.upcoming[i]!;
      if (next.entry.time > now) break;
      if (pass(next.entry)) this.completeUntil = Math.min(this.completeUntil, next.entry.time);
      else taken.push(next);
    }
    this.upcoming.splice(0, i);
    return taken;
  }

  /** At most `limit` due entries that `pass` does not pass over, earliest first; the list is made again. */
  scan(limit: number, pass: (e: Entry) => boolean): DueEntry[] {
    const started = this.clock.mono();
    this.changedSince = false;
    this.rescanAt = Infinity;
    const result = scanDue(this.spool, this.clock.wall(), limit, pass, UPCOMING);
    this.lastScan = this.clock.mono();
    this.after = this.lastScan + (this.lastScan - started) * SPACING;
    this.upcoming = result.upcoming;
    this.completeUntil = result.completeUntil;
    return result.due;
  }
}
