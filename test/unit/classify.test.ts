import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, errorVerdict, statusVerdict, type AttemptResult, type AttemptContext } from '../../src/delivery/classify.js';
import { DEFAULTS } from '../../src/service/config.js';

const NOW = 1_800_000_000_000;
const ctx = (over: Partial<AttemptContext> = {}): AttemptContext => ({ attempts: 1, arrival: NOW - 1000, now: NOW, policy: { ...DEFAULTS, maxAttempts: 5 }, random: () => 0.5, ...over });
const status = (s: number, retryAfter?: string): AttemptResult => ({ kind: 'response', status: s, retryAfter, excerpt: 'body text', elapsed: 5 });
const error = (code: string): AttemptResult => ({ kind: 'error', code, message: code, elapsed: 5 });

describe('classification', () => {
  it('sorts statuses into outcomes', () => {
    const table: [number, string][] = [
      [200, 'delivered'], [201, 'delivered'], [202, 'delivered'], [204, 'delivered'], [299, 'delivered'],
      [100, 'deferred'], [199, 'deferred'],
      [300, 'bounced'], [301, 'bounced'], [302, 'bounced'], [304, 'bounced'], [307, 'bounced'], [308, 'bounced'],
      [400, 'bounced'], [401, 'bounced'], [403, 'bounced'], [404, 'bounced'], [409, 'bounced'], [410, 'bounced'], [413, 'bounced'], [422, 'bounced'], [499, 'bounced'],
      [408, 'deferred'], [429, 'deferred'],
      [500, 'deferred'], [502, 'deferred'], [503, 'deferred'], [504, 'deferred'], [599, 'deferred'], [999, 'deferred'],
    ];
    for (const [s, outcome] of table) assert.equal(classify(status(s), ctx()).outcome, outcome, `HTTP ${s}`);
  });

  it('defers network errors and timeouts, and anything unknown; bounces requests that cannot be built', () => {
    const table: [string, string][] = [
      ['ECONNREFUSED', 'deferred'], ['ECONNRESET', 'deferred'], ['ENOTFOUND', 'deferred'], ['EAI_AGAIN', 'deferred'], ['EHOSTUNREACH', 'deferred'],
      ['UND_ERR_SOCKET', 'deferred'], ['UND_ERR_CONNECT_TIMEOUT', 'deferred'], ['UND_ERR_HEADERS_TIMEOUT', 'deferred'], ['UND_ERR_BODY_TIMEOUT', 'deferred'],
      ['HEADERS_TIMEOUT', 'deferred'], ['BODY_TIMEOUT', 'deferred'], ['UND_ERR_DESTROYED', 'deferred'], ['CERT_HAS_EXPIRED', 'deferred'], ['SOMETHING_NEW', 'deferred'],
      ['UND_ERR_INVALID_ARG', 'bounced'], ['ERR_INVALID_URL', 'bounced'],
    ];
    for (const [code, outcome] of table) assert.equal(classify(error(code), ctx()).outcome, outcome, code);
    assert.equal(statusVerdict(200), 'success');
    assert.equal(errorVerdict('ECONNREFUSED'), 'transient');
  });

  it('names the status, excerpt and error in the reason', () => {
    assert.deepEqual(classify(status(404), ctx()), { outcome: 'bounced', lastError: '404', reason: 'HTTP 404: body text' });
    const d = classify(error('ECONNREFUSED'), ctx());
    assert.equal(d.outcome, 'deferred');
    assert.equal(d.outcome === 'deferred' && d.lastError, 'ECONNREFUSED');
  });

  it('schedules the next attempt with back-off from the attempt count', () => {
    const d = classify(status(500), ctx({ attempts: 3 }));
    assert.deepEqual(d, { outcome: 'deferred', nextAttempt: NOW + 120_000, delay: 120_000, lastError: '500', reason: 'HTTP 500' });
  });

  it('honours Retry-After on 429 and 503 only', () => {
    const r429 = classify(status(429, '7200'), ctx());
    assert.equal(r429.outcome === 'deferred' && r429.delay, 7_200_000);
    const r503 = classify(status(503, '45'), ctx());
    assert.equal(r503.outcome === 'deferred' && r503.delay, 45_000);
    const r500 = classify(status(500, '7200'), ctx());
    assert.equal(r500.outcome === 'deferred' && r500.delay, 30_000);
  });

  it('never schedules a retry past the expiry, whatever Retry-After asks', () => {
    const d = classify(status(503, String(10 * 365 * 86_400)), ctx({ arrival: NOW - 1000 }));
    assert.equal(d.outcome === 'deferred' && d.nextAttempt, NOW - 1000 + DEFAULTS.maxAge);
    const e = classify(status(503, '7200'), ctx({ expiresAt: NOW + 60_000 }));
    assert.equal(e.outcome === 'deferred' && e.nextAttempt, NOW + 60_000);
  });

  it('bounces when the attempts run out, or the message is too old', () => {
    assert.deepEqual(classify(status(500), ctx({ attempts: 5 })), { outcome: 'bounced', lastError: '500', reason: 'HTTP 500 after 5 attempts' });
    assert.equal(classify(status(500), ctx({ attempts: 4 })).outcome, 'deferred');
    assert.equal(classify(status(500), ctx({ attempts: 500, policy: { ...DEFAULTS, maxAttempts: 0 } })).outcome, 'deferred', '0 means no limit');
    const old = classify(error('ECONNREFUSED'), ctx({ arrival: NOW - DEFAULTS.maxAge }));
    assert.deepEqual(old, { outcome: 'bounced', lastError: 'ECONNREFUSED', reason: 'ECONNREFUSED after 1 attempt: expired' });
    assert.equal(classify(error('ECONNREFUSED'), ctx({ expiresAt: NOW })).outcome, 'bounced');
    assert.equal(classify(error('ECONNREFUSED'), ctx({ expiresAt: NOW + 1 })).outcome, 'deferred');
    assert.equal(classify(status(200), ctx({ attempts: 99 })).outcome, 'delivered', 'success counts whatever the attempts');
  });
});
