/**
 * What happens to a message after an attempt: one pure function choosing one
 * of three outcomes.
 *
 *   delivered  2xx                                     → unlink
 *   deferred   5xx, 408, 429, network errors, timeouts → deferred/, retried later
 *   bounced    3xx (redirects are not followed), other 4xx, requests that can
 *              never be sent, or out of attempts/time  → bounced/
 *
 * Anything not recognised is deferred, never bounced: a wrong bounce loses a
 * message from the retry path, a wrong deferral only costs another attempt.
 */
import { parseRetryAfter, retryDelay } from './backoff.js';
import type { DeliveryPolicy } from '../service/config.js';
import { BLOCKED_CODE } from './guard.js';
import { errorToken } from '../spool/names.js';

export type AttemptResult =
  | { kind: 'response'; status: number; retryAfter?: string | undefined; excerpt: string; elapsed: number }
  | { kind: 'error'; code: string; message: string; elapsed: number };

export type Outcome = 'delivered' | 'deferred' | 'bounced';

export type Decision =
  | { outcome: 'delivered' }
  | { outcome: 'deferred'; nextAttempt: number; delay: number; lastError: string; reason: string }
  | { outcome: 'bounced'; lastError: string; reason: string };

/** Errors raised while building the request, or a refused destination: sending it again cannot help. */
const PERMANENT_ERRORS = new Set([BLOCKED_CODE, 'UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'ERR_INVALID_URL', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR', 'ERR_HTTP_INVALID_HEADER_VALUE']);

export type Verdict = 'success' | 'transient' | 'permanent';

export function statusVerdict(status: number): Verdict {
  if (status >= 200 && status < 300) return 'success';
  if (status === 408 || status === 429) return 'transient';
  if (status >= 300 && status < 500) return 'permanent';
  return 'transient';
}

export function errorVerdict(code: string): Verdict {
  return PERMANENT_ERRORS.has(code) ? 'permanent' : 'transient';
}

/** This host's own trouble (no file descriptors or ports left, our own cut at shutdown): it says nothing about the destination. */
const HOST_SIDE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'EADDRNOTAVAIL', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);
/** Answers and errors that say the receiver has more than it can take now. */
const CONGESTED_STATUSES = new Set([408, 429, 502, 503, 504]);
const CONGESTED_ERRORS = new Set(['HEADERS_TIMEOUT', 'BODY_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET']);

/**
 * What an attempt says about its destination, from the same verdict that
 * chooses the message's outcome, so the breaker and the window never judge
 * an attempt differently from the classifier:
 *
 *   good       it answered (2xx, or a refusal: the receiver keeps up)
 *   refused    it answered that it is overloaded (408, 429, 502, 503, 504):
 *              a failure, and the window shrinks unless shrinking it does not
 *              make the receiver refuse less (window.ts)
 *   congested  it is unreachable or does not answer in time (timeouts,
 *              refused or reset connections): a failure, and the window shrinks
 *   failed     it failed otherwise (500, DNS, TLS): a failure, window kept
 *   neutral    nothing about it (this host's own trouble)
 */
export type Signal = 'good' | 'refused' | 'congested' | 'failed' | 'neutral';

export function signalOf(result: AttemptResult): Signal {
  const verdict = result.kind === 'response' ? statusVerdict(result.status) : errorVerdict(result.code);
  if (verdict !== 'transient') return 'good';
  if (result.kind === 'error' && HOST_SIDE_ERRORS.has(result.code)) return 'neutral';
  if (result.kind === 'response') return CONGESTED_STATUSES.has(result.status) ? 'refused' : 'failed';
  return CONGESTED_ERRORS.has(result.code) ? 'congested' : 'failed';
}

export interface AttemptContext {
  /** Requests made so far, this one included. */
  attempts: number;
  /** Epoch ms of first claim. */
  arrival: number;
  now: number;
  policy: DeliveryPolicy;
  /** Absolute expiry from the message, if any (epoch ms). */
  expiresAt?: number | undefined;
  random?: () => number;
}

function describe(result: AttemptResult): string {
  return result.kind === 'response' ? `HTTP ${result.status}` : result.code;
}

export function classify(result: AttemptResult, ctx: AttemptContext): Decision {
  const verdict = result.kind === 'response' ? statusVerdict(result.status) : errorVerdict(result.code);
  if (verdict === 'success') return { outcome: 'delivered' };

  const lastError = errorToken(result.kind === 'response' ? result.status : result.code);
  const what = describe(result);
  if (verdict === 'permanent') {
    const excerpt = result.kind === 'response' && result.excerpt ? `: ${result.excerpt}` : '';
    return { outcome: 'bounced', lastError, reason: `${what}${excerpt}` };
  }

  const { policy } = ctx;
  const plural = ctx.attempts === 1 ? 'attempt' : 'attempts';
  if (policy.maxAttempts > 0 && ctx.attempts >= policy.maxAttempts) {
    return { outcome: 'bounced', lastError, reason: `${what} after ${ctx.attempts} ${plural}` };
  }
  const expiry = Math.min(ctx.arrival + policy.maxAge, ctx.expiresAt ?? Infinity);
  if (ctx.now >= expiry) {
    return { outcome: 'bounced', lastError, reason: `${what} after ${ctx.attempts} ${plural}: expired` };
  }

  const honoursRetryAfter = result.kind === 'response' && (result.status === 429 || result.status === 503);
  const retryAfter = honoursRetryAfter ? parseRetryAfter(result.retryAfter, ctx.now) : null;
  const delay = retryDelay({
    attempt: ctx.attempts,
    minBackoff: policy.minBackoff,
    maxBackoff: policy.maxBackoff,
    retryAfter,
    ...(ctx.random ? { random: ctx.random } : {}),
  });
  // Never scheduled past the expiry (a Retry-After of years would otherwise
  // strand the message): at the expiry it is bounced as expired.
  const nextAttempt = Math.min(ctx.now + delay, expiry);
  return { outcome: 'deferred', nextAttempt, delay: nextAttempt - ctx.now, lastError, reason: what };
}
