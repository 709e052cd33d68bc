/**
 * Dead destinations: Postfix's "dead destination", a circuit breaker per
 * origin. Pure: the queue manager feeds it results and asks it whether a
 * request may start; no timers, no I/O.
 *
 *   ok       requests flow; consecutive transient failures are counted
 *   dead     after `deadAfter` of them in a row: nothing is sent until the
 *            cool-off ends, and due messages wait without spending attempts
 *   probing  the cool-off ended: exactly one request goes; success reopens
 *            the destination, failure makes it dead again for twice as long
 *            (up to `maxCoolOff`)
 *
 * Only transient failures count (5xx, 408, 429, network errors, timeouts);
 * any other answer, a 4xx included, shows the destination is alive.
 *
 * The streak must also cover one full round of the destination's concurrency
 * (Postfix's "failed cohort"): with 64 requests in flight, a destination
 * failing 30% of them at random strings 10 failures together about once in
 * 200,000 requests, a few minutes at full speed, and would be held back while
 * it still delivers most messages; 64 in a row at 30% never happens.
 */
export type CircuitState = 'ok' | 'dead' | 'probing';

export interface CircuitSettings {
  /** Consecutive transient failures that make a destination dead; 0: never. */
  deadAfter: number;
  coolOff: number;
  maxCoolOff: number;
}

/** Failures in a row that make a destination dead: `deadAfter`, and at least one round of its `concurrency` (0 stays off). */
export function deadThreshold(deadAfter: number, concurrency: number): number {
  return deadAfter === 0 ? 0 : Math.max(deadAfter, concurrency);
}

/** What changed with a result, for the log. */
export type CircuitChange = 'died' | 'still-dead' | 'reopened' | null;

export class Circuit {
  state: CircuitState = 'ok';
  failures = 0;
  deadUntil = 0;
  private coolOff: number;
  private probing = false;

  constructor(private settings: CircuitSettings) {
    this.coolOff = settings.coolOff;
  }

  configure(settings: CircuitSettings): void {
    this.settings = settings;
    this.coolOff = Math.min(Math.max(this.coolOff, settings.coolOff), settings.maxCoolOff);
  }

  /** Whether a request to this destination may start now. */
  admits(now: number): boolean {
    if (this.state === 'ok') return true;
    if (this.state === 'dead') return now >= this.deadUntil && !this.probing;
    return !this.probing;
  }

  /** A request starts (call only when admitted). */
  started(now: number): void {
    if (this.state === 'dead' && now >= this.deadUntil) this.state = 'probing';
    if (this.state === 'probing') this.probing = true;
  }

  /** A request ended; `transient`: it failed in a way worth retrying. */
  ended(transient: boolean, now: number, wasProbe = this.probing): CircuitChange {
    if (wasProbe) this.probing = false;
    if (!transient) {
      const was = this.state;
      this.state = 'ok';
      this.failures = 0;
      this.coolOff = this.settings.coolOff;
      return was === 'ok' ? null : 'reopened';
    }
    this.failures++;
    if (this.state === 'probing' && wasProbe) {
      this.coolOff = Math.min(this.coolOff * 2, this.settings.maxCoolOff);
      this.state = 'dead';
      this.deadUntil = now + this.coolOff;
      return 'still-dead';
    }
    if (this.state === 'ok' && this.settings.deadAfter > 0 && this.failures >= this.settings.deadAfter) {
      this.state = 'dead';
      this.deadUntil = now + this.coolOff;
      return 'died';
    }
    return null;
  }

  /** The probe's answer says nothing (this host's own trouble): another may go. */
  probeAbandoned(): void {
    this.probing = false;
  }

  /** Idle and healthy: nothing worth keeping. */
  get forgettable(): boolean {
    return this.state === 'ok' && this.failures === 0 && !this.probing;
  }
}
