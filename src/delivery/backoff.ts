/**
 * Retry timing. Pure: the random source and the clock are arguments.
 *
 *   delay = min(maxBackoff, minBackoff × 2^(attempt−1)), spread by ±25% jitter
 *
 * Jitter keeps a backlog that failed together from retrying together (the
 * retry waves Postfix's qshape documentation warns about). A Retry-After is a
 * floor: the delay is never below it, even above maxBackoff.
 */

export const JITTER = 0.25;

/** `attempt` is the number of requests made so far (1 after the first failure). */
export function backoffDelay(attempt: number, minBackoff: number, maxBackoff: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  // 2^exponent overflows to Infinity long after it passes any sane cap.
  const base = Math.min(maxBackoff, minBackoff * 2 ** Math.min(exponent, 1000));
  const spread = 1 + JITTER * (2 * random() - 1);
  return Math.max(0, Math.round(base * spread));
}

/**
 * Retry-After as milliseconds from `now`: delay-seconds or an HTTP-date
 * (RFC 9110 §10.2.3). Null when absent or unreadable; never negative.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return null;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return null;
  const at = Date.parse(text);
  if (!Number.isFinite(at)) return null;
  return Math.max(0, at - now);
}

export function retryDelay(opts: {
  attempt: number;
  minBackoff: number;
  maxBackoff: number;
  retryAfter: number | null;
  random?: () => number;
}): number {
  const delay = backoffDelay(opts.attempt, opts.minBackoff, opts.maxBackoff, opts.random);
  return opts.retryAfter === null ? delay : Math.max(delay, opts.retryAfter);
}
