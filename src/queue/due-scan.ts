/**
 * The due scan: finds messages whose next attempt has come in deferred/
 * (spool/due.ts reads the names) and hands them to be claimed.
 *
 * A scan reads every name in the buckets it passes, due or not, so scans are
 * spaced to take at most 1/SPACING of the daemon's time, measured on the
 * monotonic clock: a retry comes due at most that many times the scan's own
 * cost late (about 100 ms with 6,000 deferred in one bucket), and a wall
 * clock stepped back by an hour delays nothing but the retries whose times
 * were written before the step.
 */
import { scanDue, type DueEntry } from '../spool/due.js';
import type { Spool } from '../spool/layout.js';
import type { Entry } from '../spool/names.js';
import type { Clock } from './clock.js';

const SPACING = 20;

export class DueScan {
  /** Something may be due that no scan has seen. */
  dirty = true;
  /** No scan before this (monotonic ms). */
  private after = 0;
  /** The earliest next attempt known not to be due yet (wall ms), if any. */
  nextDue: number | null = null;

  constructor(
    private readonly spool: Spool,
    private readonly clock: Clock,
  ) {}

  changed(): void {
    this.dirty = true;
  }

  /** When the next scan may run (monotonic ms): now if it may run now. */
  get readyAt(): number {
    return this.after;
  }

  ready(): boolean {
    return this.dirty && this.clock.mono() >= this.after;
  }

  /** At most `limit` due entries that `pass` does not pass over, earliest first. */
  scan(limit: number, pass: (e: Entry) => boolean): DueEntry[] {
    const started = this.clock.mono();
    const result = scanDue(this.spool, this.clock.wall(), limit, pass);
    this.after = this.clock.mono() + (this.clock.mono() - started) * SPACING;
    this.dirty = result.more;
    this.nextDue = result.nextDue;
    return result.due;
  }
}
