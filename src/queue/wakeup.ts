/**
 * The queue manager's one timer. Each part asks to be woken no later than
 * some time (monotonic); the timer is set for the earliest. A wake-up that
 * finds nothing to do costs a look, never a message: every part re-checks
 * its own state when woken.
 */
import { monoAt, type Clock } from './clock.js';

/** setTimeout takes at most 2^31 - 1 ms (beyond, it fires at once): later times are reached in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class Wakeup {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly fire: () => void,
  ) {}

  /** Wake no later than `at` (monotonic ms). */
  at(at: number): void {
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.fire();
    }, Math.min(MAX_DELAY_MS, Math.max(0, at - this.clock.mono())));
  }

  /** Wake no later than the wall clock reads `wall` (a next-attempt time), as of now. */
  atWall(wall: number): void {
    this.at(monoAt(this.clock, wall));
  }

  /** When it is set for (monotonic), or Infinity. */
  get pending(): number {
    return this.timerAt;
  }

  cancel(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}
