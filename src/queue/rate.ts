/**
 * A destination's request rate (`rps` in its settings): a token bucket with
 * bursts of up to one second's worth. Pure: the monotonic time is an argument.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private rps: number,
    now: number,
  ) {
    this.tokens = this.burst;
    this.at = now;
  }

  private get burst(): number {
    return Math.max(1, this.rps);
  }

  configure(rps: number): void {
    this.rps = rps;
  }

  /** Takes a token if one is there. */
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rps) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token (0 if one is there). */
  wait(now: number): number {
    const tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rps) / 1000);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.rps);
  }

  /** Full again: nothing is lost by forgetting it. */
  full(now: number): boolean {
    return this.wait(now) === 0 && this.tokens + ((now - this.at) * this.rps) / 1000 >= this.burst;
  }
}
