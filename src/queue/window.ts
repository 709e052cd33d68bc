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
 *   a trial per refusal cut: a receiver that answers 429 or 503 at random,
 *                whatever the load, would halve the window at every round
 *                and gain nothing from it (a fixed window sent first
 *                attempts 1.4 x faster against 30% random 503s). So a cut
 *                for a refusal is tried: the window holds at its new size
 *                for TRIAL_ANSWERS (or four windows) of answers, and if those
 *                were refused about as often as before (TRIAL_KEPT_SHARE)
 *                the cut is undone and that share becomes the floor.
 *                Refusals then cut only once their share is clearly above it
 *                (FLOOR_MARGIN), each such cut measured first at the size it
 *                cuts. With no floor, most cuts go untried (TRIAL_EVERY). An
 *                overloaded receiver refuses less once sent less, so its
 *                cuts stand.
 *                Timeouts and refused connections always cut: a receiver
 *                that does not answer must not hold more slots.
 *
 * It never goes above the limit (--per-destination, or the destination's
 * `concurrency`) nor below 1. A fixed window (`"adaptive": false` in the
 * destination's settings) stays at the limit.
 */
import type { Signal } from '../delivery/classify.js';

export const INITIAL_WINDOW = 5;
const TRIAL_ANSWERS = 16;
/**
 * A cut helped if it brought the share refused under this part of what it
 * was, or the share accepted above 1 / this part of it: a receiver far past
 * its capacity refuses 90% at 32 in flight and 80% at 16, but accepts twice
 * the share.
 */
const TRIAL_KEPT_SHARE = 0.75;
/** Refusals cut again above the floor by half of it, at most by this. */
const FLOOR_MARGIN = 0.1;
/**
 * A receiver refusing more than this share is cut whatever trials said: a
 * trial is a few dozen answers, and one misjudged by chance must not leave a
 * floor that keeps an overloaded receiver at the limit for good.
 */
const FLOOR_MAX = 0.5;
/** The share of answers refused, as a moving average over about this many answers. */
const SHARE_SPAN = 64;
/**
 * With no floor, a trial at most once per this many answers, the other cuts
 * made plain: a trial holds the window low for a while, which a receiver
 * that refuses past its capacity (every cut helps) would pay at every cut.
 */
const TRIAL_EVERY = 500;
/** A floor above the share of refusals sinks toward it over about this many answers. */
const FLOOR_SPAN = 256;

interface Trial {
  /** The round whose answers it counts: the current one while measuring before the cut, the one the cut began after it. */
  round: number;
  /** The share refused before the cut; null while it is being measured, the cut not yet made. */
  before: number | null;
  size: number;
  threshold: number;
  answers: number;
  refused: number;
}

export interface WindowSettings {
  limit: number;
  adaptive: boolean;
}

export class Window {
  private size: number;
  private threshold = Infinity;
  /** Incremented at every cut; each request carries the round it was sent in. */
  private round = 0;
  /** Refused answers' share of recent good and refused ones. */
  private share = 0;
  /** Answers and refusals to requests sent in the current round. */
  private roundAnswers = 0;
  private roundRefused = 0;
  /** The share of refusals that did not fall with the window (see the trial above). */
  private floor = 0;
  private trial: Trial | null = null;
  /** Good and refused answers so far, and the count at which a trial may begin again. */
  private answers = 0;
  private nextTrialAt = 0;

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
  answered(signal: Signal, round: number): void {
    if (signal === 'good' || signal === 'refused') this.learn(signal === 'refused', round);
    const trial = this.trial;
    if (trial !== null && signal === 'congested' && round === this.round) {
      this.trial = null;
      this.cut();
    } else if (trial !== null) {
      if ((signal === 'good' || signal === 'refused') && round === trial.round && ++trial.answers >= Math.max(TRIAL_ANSWERS, 4 * Math.ceil(this.size))) this.judge(trial);
    } else if (signal === 'good') {
      this.size = Math.min(this.settings.limit, this.size + (this.size < this.threshold ? 1 : 1 / this.size));
    } else if (signal === 'congested' && round === this.round) {
      this.cut();
    } else if (signal === 'refused' && round === this.round && this.share > this.floor + Math.min(this.floor / 2, FLOOR_MARGIN)) {
      if (!this.settings.adaptive || (this.floor === 0 && this.answers < this.nextTrialAt)) return this.cut();
      const trial: Trial = { round: this.round, before: null, size: this.size, threshold: this.threshold, answers: 0, refused: 0 };
      // Refusals have tracked the load so far: cut now, and weigh the cut
      // against what was seen. Past a floor, measure first at this size: a
      // share that only now crossed the floor says little of the load.
      if (this.floor === 0) this.startAfter(trial, Math.max(this.share, this.roundRefused / Math.max(1, this.roundAnswers)));
      else this.trial = trial;
    }
  }

  private learn(refused: boolean, round: number): void {
    this.answers++;
    this.share += ((refused ? 1 : 0) - this.share) / SHARE_SPAN;
    if (this.share < this.floor) this.floor -= (this.floor - this.share) / FLOOR_SPAN;
    if (round === this.round) {
      this.roundAnswers++;
      if (refused) this.roundRefused++;
    }
    if (refused && this.trial !== null && round === this.trial.round) this.trial.refused++;
  }

  /** Cuts, and holds the halved window until its answers are in. */
  private startAfter(trial: Trial, before: number): void {
    this.cut();
    this.trial = { ...trial, round: this.round, before, answers: 0, refused: 0 };
  }

  /** A phase's answers are in: after the one before the cut, cut; after the one after it, the cut stands if it helped, else it is undone. */
  private judge(trial: Trial): void {
    if (trial.before === null) return this.startAfter(trial, trial.refused / trial.answers);
    this.trial = null;
    this.nextTrialAt = this.answers + TRIAL_EVERY;
    const after = trial.refused / trial.answers;
    const helped = after < trial.before * TRIAL_KEPT_SHARE || 1 - after > (1 - trial.before) / TRIAL_KEPT_SHARE;
    if (!helped) {
      this.size = trial.size;
      this.threshold = trial.threshold;
      this.floor = Math.min(FLOOR_MAX, Math.max(this.floor, after));
    } else {
      this.floor = Math.min(this.floor, after);
    }
  }

  private cut(): void {
    this.size = Math.max(1, this.size / 2);
    this.threshold = this.size;
    this.round++;
    this.roundAnswers = this.roundRefused = 0;
  }
}
