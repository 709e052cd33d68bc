import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, parseRetryAfter, retryDelay } from '../../src/delivery/backoff.js';

const mid = () => 0.5; // no jitter
const MIN = 30_000;
const MAX = 3_600_000;

describe('back-off', () => {
  it('doubles per attempt from min-backoff and caps at max-backoff', () => {
    const table: [number, number][] = [
      [1, 30_000],
      [2, 60_000],
      [3, 120_000],
      [7, 1_920_000],
      [8, 3_600_000],
      [50, 3_600_000],
      [100_000, 3_600_000],
    ];
    for (const [attempt, delay] of table) assert.equal(backoffDelay(attempt, MIN, MAX, mid), delay, `attempt ${attempt}`);
  });

  it('spreads by at most ±25%', () => {
    assert.equal(backoffDelay(1, MIN, MAX, () => 0), 22_500);
    assert.equal(backoffDelay(1, MIN, MAX, () => 0.999999), 37_500);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const base = Math.min(MAX, MIN * 2 ** (attempt - 1));
        const d = backoffDelay(attempt, MIN, MAX, () => r);
        return d >= Math.floor(base * 0.75) && d <= Math.ceil(base * 1.25);
      }),
    );
  });

  it('reads Retry-After as seconds or an HTTP-date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:05:00 GMT', now), 300_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter(undefined, now), null);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
    assert.equal(parseRetryAfter('1.5', now), null);
    assert.equal(parseRetryAfter(['7', '9'], now), 7000);
  });

  it('treats Retry-After as a floor that jitter never undercuts, even above max-backoff', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 10 * MAX }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, retryAfter, r) => {
        const d = retryDelay({ attempt, minBackoff: MIN, maxBackoff: MAX, retryAfter, random: () => r });
        return d >= retryAfter && d >= backoffDelay(attempt, MIN, MAX, () => r);
      }),
    );
    assert.equal(retryDelay({ attempt: 1, minBackoff: MIN, maxBackoff: MAX, retryAfter: 7_200_000, random: mid }), 7_200_000);
  });
});
