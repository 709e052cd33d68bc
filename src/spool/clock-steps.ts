/**
 * Clock steps, remembered in the spool so that a message's age survives them.
 *
 * A message's age counts from its arrival, a wall-clock time in its name. If
 * the clock was far behind when it arrived (a machine whose clock starts in
 * the past until NTP corrects it), the correction would make it look years
 * old, and bounce it as expired after one attempt. So every forward step of
 * the wall clock is recorded, and an age is counted without the steps that
 * came after the arrival. (A step back only makes messages look younger,
 * which delays an expiry rather than bringing one: it is not recorded.)
 *
 *   clock.json  { boot, wall, mono, steps: [{ before, delta }] }
 *
 * A step is seen while the daemon runs (the queue manager compares the wall
 * clock with the monotonic one), and also across a restart within one boot:
 * the kernel's monotonic clock runs on through a restart, so the record's
 * wall and monotonic times, written every minute and at stop, tell how far
 * the wall clock moved while the daemon was down. Across a reboot nothing
 * can tell; a step then is taken as time that passed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Spool } from './layout.js';
import { readRecord, writeRecord } from './staging.js';

/** A jump of the wall clock against the monotonic one larger than this is a step. */
export const STEP_MS = 2000;
const KEEP = 32;

interface Record {
  boot: string;
  wall: number;
  mono: number;
  steps: { before: number; delta: number }[];
}

export interface SystemClock {
  wall(): number;
  /** CLOCK_MONOTONIC, system-wide (the same in every process of one boot), ms. */
  mono(): number;
  boot(): string;
}

export const systemClock: SystemClock = {
  wall: () => Date.now(),
  mono: () => Number(process.hrtime.bigint() / 1_000_000n),
  boot: () => {
    try {
      return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      return '';
    }
  },
};

export class ClockSteps {
  private steps: { before: number; delta: number }[] = [];

  constructor(
    private readonly spool: Spool,
    private readonly clock: SystemClock = systemClock,
  ) {}

  private get file(): string {
    return path.join(this.spool.root, 'clock.json');
  }

  /** Reads what was recorded; a step while the daemon was down (same boot) is recorded now. Returns that step, if any. */
  load(): number | null {
    let rec: Record | null = null;
    try {
      rec = JSON.parse(readRecord(this.file)) as Record;
    } catch {
      /* none yet, or unreadable: nothing is known */
    }
    if (rec && Array.isArray(rec.steps)) this.steps = rec.steps.filter((s) => Number.isFinite(s.before) && s.delta > 0).slice(-KEEP);
    let step: number | null = null;
    if (rec && rec.boot !== '' && rec.boot === this.clock.boot() && Number.isFinite(rec.wall) && Number.isFinite(rec.mono)) {
      const expected = rec.wall + (this.clock.mono() - rec.mono);
      const delta = this.clock.wall() - expected;
      if (Math.abs(delta) > STEP_MS) {
        step = delta;
        this.stepped(delta, expected);
      }
    }
    this.save();
    return step;
  }

  /** The wall clock jumped by `delta` ms at wall time `before` (as it read just before the jump). */
  stepped(delta: number, before: number): void {
    if (delta <= 0) return;
    this.steps = [...this.steps, { before, delta }].slice(-KEEP);
    this.save();
  }

  /** A message's arrival as if the clock had not stepped since: its age is `now - arrivalOf(arrival)`. */
  arrivalOf(arrival: number): number {
    let corrected = arrival;
    for (const s of this.steps) if (arrival < s.before) corrected += s.delta;
    return corrected;
  }

  /** Records where the clocks stand (every minute and at stop), for the next start to compare. A side path: never throws. */
  save(): void {
    try {
      const rec: Record = { boot: this.clock.boot(), wall: this.clock.wall(), mono: this.clock.mono(), steps: this.steps };
      writeRecord(this.spool, this.file, JSON.stringify(rec) + '\n', false);
    } catch {
      /* the next save tries again; ages then count as the wall clock says */
    }
  }
}
