/**
 * A destination's concurrency window: how many requests may be in flight to
 * it. Postfix's slow start (qmgr starts a destination at 5 and grows it on
 * success), with TCP's congestion avoidance once the receiver has pushed back
 * (Vector's adaptive request concurrency is AIMD too). Pure: results in,
 * window out; no clock.
 *
 *   slow start   +1 per good answer: the window doubles per round trip, so a
 *                strong receiver reaches the limit within a few round trips
 *   congestion   the first congested answer (429, 503, a timeout, a refused
 *                connection) halves the window, and the halved size becomes
 *                the threshold above which it grows by only 1/window per good
 *                answer (+1 per round trip)
 *   one cut per round: answers to requests sent before the last cut cut it
 *                no further (they were sent into the old window)
 *
 * It never goes above the limit (--per-destination, or the destination's
 * `concurrency`) nor below 1. A fixed window (`"adaptive": false` in the
 * destination's settings) stays at the limit.
 */
export const INITIAL_WINDOW = 5;

export interface WindowSettings {
  limit: number;
  adaptive: boolean;
}

export class Window {
  private size: number;
  private threshold = Infinity;
  /** Incremented at every cut; each request carries the round it was sent in. */
  private round = 0;

  constructor(private settings: WindowSettings) {
    this.size = Math.min(INITIAL_WINDOW, settings.limit);
  }

  configure(settings: WindowSettings): void {
    this.settings = settings;
    this.size = Math.min(this.size, settings.limit);
  }

  /** Requests that may be in flight now. */
  get value(): number {
    return this.settings.adaptive ? Math.max(1, Math.min(this.settings.limit, Math.floor(this.size))) : this.settings.limit;
  }

  get limit(): number {
    return this.settings.limit;
  }

  /** A request is sent: the round to report its answer with. */
  sent(): number {
    return this.round;
  }

  /** The answer to a request sent in `round`. */
  answered(signal: 'good' | 'congested' | 'failed' | 'neutral', round: number): void {
    if (signal === 'good') {
      this.size = Math.min(this.settings.limit, this.size + (this.size < this.threshold ? 1 : 1 / this.size));
    } else if (signal === 'congested' && round === this.round) {
      this.size = Math.max(1, this.size / 2);
      this.threshold = this.size;
      this.round++;
    }
  }
}
