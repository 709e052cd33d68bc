/**
 * The incoming scan: claims producers' files from incoming/ (Postfix's
 * qmgr_scan.c for the incoming queue).
 *
 * File events (spool/watch.ts) claim single names as they appear; this scan
 * is for backlogs and the safety net (events can be missed). One read of
 * incoming/ is carried from fill to fill while a backlog lasts, so a large
 * folder is read once per pass instead of from its start at every fill. Only
 * a pass begun in a fill and read to its end proves that nothing is left (one
 * begun earlier may have missed names added since).
 *
 * While incoming/ holds more than a fill claims (a backlog), it is scanned
 * every BUSY_RESCAN_MS; the backlog is over after a quiet second, so that a
 * bursty producer does not make it flap.
 *
 * In a shared spool a pass claims only this daemon's part of the names
 * (partition.ts) and skips the others'. A pass that found none of its own
 * but skipped some is followed at once by one that takes every name: an idle
 * daemon helps a busy peer and delivers a dead one's part. A pass that
 * skipped names is no proof that incoming/ was claimed to its end.
 */
import { DirectoryPass, type Spool } from '../spool/layout.js';
import { parseIncomingName } from '../spool/names.js';
import type { Clock } from './clock.js';

/** A backlog is over once incoming/ has had none for this long. */
const WATCH_RESUME_AFTER_MS = 1000;
/** How often a backlog is scanned for, file events being paused. */
export const BUSY_RESCAN_MS = 50;

export interface IncomingHost {
  /** Whether this daemon holds a message with this id now. */
  isHeld(id: string): boolean;
  /** Claims and takes up one message; false if it was gone. Throws for the host's trouble. */
  claim(id: string): boolean;
  /** Whether this daemon claims this id first (partition.ts); always true alone. */
  mine(id: string): boolean;
  /** incoming/ started or stopped holding more than a fill claims. */
  backlogChanged(backlog: boolean): void;
  /** A read of incoming/ reached its end (see ordering.ts). */
  readEnded(): void;
}

export class IncomingScan {
  /** A scan may find something file events did not report. */
  dirty = true;
  /** incoming/ holds more than a fill claims. */
  backlog = false;
  /** When the last fill read incoming/ (monotonic ms). */
  lastScan = -Infinity;
  /** When the last read of incoming/ that reached its end began (monotonic ms). */
  readStartedAt = -Infinity;
  private quietSince: number | null = null;
  private pass: DirectoryPass | null = null;
  /** The current pass takes every name, not only this daemon's part. */
  private passTakesAll = false;
  /** In the current pass: claims made, and others' names skipped. */
  private passClaimed = 0;
  private passSkipped = 0;
  private strangers: DirectoryPass | null = null;

  constructor(
    private readonly spool: Spool,
    private readonly clock: Clock,
    private readonly host: IncomingHost,
  ) {}

  /** Claims up to `limit` messages; returns how many. Throws for the host's trouble (the pass is dropped). */
  fill(limit: number): number {
    let claimed = 0;
    let exhausted = false;
    let takeAll = false;
    this.lastScan = this.clock.mono();
    for (let fresh = this.pass === null; !exhausted; fresh = true) {
      if (this.pass === null) {
        this.pass = new DirectoryPass(this.spool.dir('incoming'), this.clock.mono());
        this.passTakesAll = takeAll;
        this.passClaimed = this.passSkipped = 0;
      }
      const pass = this.pass;
      let d: ReturnType<DirectoryPass['read']> = null;
      try {
        while ((d = pass.read()) !== null) {
          const id = parseIncomingName(d.name);
          if (!id || this.host.isHeld(id)) continue;
          if (!this.passTakesAll && !this.host.mine(id)) {
            this.passSkipped++;
            continue;
          }
          if (claimed >= limit) {
            pass.unread(d);
            break;
          }
          if (this.host.claim(id)) {
            claimed++;
            this.passClaimed++;
          }
        }
      } catch (err) {
        // A read or a claim failed (EIO, EMFILE): this pass ends unfinished; the next starts afresh.
        pass.close();
        this.pass = null;
        throw err;
      }
      if (d !== null) break;
      this.pass = null;
      if (this.passSkipped === 0) {
        this.readStartedAt = pass.startedAt;
        this.host.readEnded();
      }
      // Our part has run out and others' names wait: take them all, now.
      takeAll = this.passSkipped > 0 && this.passClaimed === 0;
      exhausted = fresh && !takeAll;
    }
    const now = this.clock.mono();
    if (!exhausted) {
      this.quietSince = null;
      if (!this.backlog) {
        this.backlog = true;
        this.host.backlogChanged(true);
      }
    } else if (this.backlog) {
      this.quietSince ??= now;
      if (now - this.quietSince >= WATCH_RESUME_AFTER_MS) {
        this.backlog = false;
        this.host.backlogChanged(false);
      }
    }
    this.dirty = !exhausted || this.backlog;
    return claimed;
  }

  /**
   * While the active set is full: looks at up to `examine` names, carried
   * from call to call, and claims those `take` accepts (see admission.ts:
   * fresh messages for other destinations, whose file events were missed).
   * A pass of its own: it says nothing of backlogs or of reads reaching
   * their end, since it leaves names unclaimed on purpose.
   */
  findStrangers(examine: number, take: (id: string) => boolean): number {
    let claimed = 0;
    const pass = (this.strangers ??= new DirectoryPass(this.spool.dir('incoming'), this.clock.mono()));
    try {
      for (let i = 0; i < examine; i++) {
        const d = pass.read();
        if (d === null) {
          this.strangers = null;
          break;
        }
        const id = parseIncomingName(d.name);
        if (id && !this.host.isHeld(id) && take(id) && this.host.claim(id)) claimed++;
      }
    } catch (err) {
      pass.close();
      this.strangers = null;
      throw err;
    }
    return claimed;
  }

  /** When the next scan is due (monotonic ms), file events or not. */
  nextScanAt(scanInterval: number): number {
    return this.backlog ? this.clock.mono() + BUSY_RESCAN_MS : Math.max(this.lastScan + scanInterval, this.clock.mono());
  }

  close(): void {
    this.pass?.close();
    this.pass = null;
    this.strangers?.close();
    this.strangers = null;
  }
}
