/**
 * The status page's pure parts: a destination's health word, the last
 * hour's per-minute figures (with an injected clock), and the guard that
 * keeps an error escaping the HTTP side from stopping the daemon.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { healthOf } from '../../src/http/health.js';
import { RecentActivity } from '../../src/http/activity.js';

const seen = (attempts: number, failures: number, meanMs: number, last: string | null) => ({ origin: 'https://a.example', attempts, failures, bounced: 0, meanMs, last });

describe('destination health', () => {
  it('calls a destination that refuses every connection failing, never slow', () => {
    assert.equal(healthOf(undefined, false, seen(40, 40, 1, 'ECONNREFUSED')), 'failing');
    assert.equal(healthOf(undefined, false, seen(40, 40, 30_000, 'HEADERS_TIMEOUT')), 'failing');
  });
  it('is failing when the last attempt failed or more than a fifth did, slow when it answers slowly', () => {
    assert.equal(healthOf('ok', false, seen(10, 1, 5, '503')), 'failing', 'the last attempt failed');
    assert.equal(healthOf('ok', false, seen(10, 3, 5, null)), 'failing', '30% failed');
    assert.equal(healthOf('ok', false, seen(10, 1, 5, null)), 'ok');
    assert.equal(healthOf('ok', false, seen(10, 0, 2500, null)), 'slow');
    assert.equal(healthOf(undefined, false, undefined), 'ok', 'nothing seen');
  });
  it('puts a pause and the circuit first', () => {
    assert.equal(healthOf('dead', true, seen(10, 10, 1, '503')), 'paused');
    assert.equal(healthOf('paused', false, undefined), 'paused');
    assert.equal(healthOf('dead', false, seen(10, 10, 1, '503')), 'dead');
    assert.equal(healthOf('probing', false, undefined), 'probing');
  });
});

describe('the last hour', () => {
  it('counts outcomes per minute and gives request and delivery percentiles, forgetting what is older than an hour', () => {
    let now = 1_800_000_000_000;
    const a = new RecentActivity(() => now);
    for (let i = 1; i <= 100; i++) a.record('delivered', 'https://a.example', { requestMs: i, deliveryMs: i * 10 });
    a.record('bounced', 'https://a.example', { requestMs: 3, last: '422' });
    a.record('deferred', 'https://a.example', { requestMs: 3, last: '503' });
    let m = a.minutes();
    assert.equal(m.length, 60);
    const current = m.at(-1)!;
    assert.equal(current.delivered, 100);
    assert.equal(current.deferred, 1);
    assert.equal(current.bounced, 1);
    assert.ok(current.request && current.request[0] >= 49 && current.request[0] <= 51, `p50 ${current.request?.[0]}`);
    assert.ok(current.delivery && current.delivery[2] >= 980 && current.delivery[2] <= 1010, `p99 ${current.delivery?.[2]}`);
    assert.deepEqual(a.destinations().map((d) => [d.attempts, d.failures, d.bounced, d.last]), [[102, 1, 1, '503']], 'a bounce is not the destination failing');
    now += 61 * 60_000;
    m = a.minutes();
    assert.equal(m.reduce((n, x) => n + x.delivered, 0), 0, 'an hour later');
    assert.deepEqual(a.destinations(), []);
  });
});

describe('the HTTP side guard', () => {
  it('survives an error thrown inside a request handler, and still dies of any other', () => {
    const script = `
      import { installHttpGuard, onHttpSide } from ${JSON.stringify(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/http/guard.ts'))};
      const lines = [];
      installHttpGuard({ error: (o) => lines.push(o.event + ' ' + o.path) });
      onHttpSide('/api/status', () => setTimeout(() => { throw new Error('in a handler callback'); }, 5));
      setTimeout(() => { console.log(lines.join(',')); throw new Error('in delivery'); }, 50);
      setTimeout(() => console.log('not reached'), 200);
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'http-uncaught /api/status', r.stderr);
    assert.match(r.stderr, /in delivery/);
    assert.equal(r.status, 1);
  });
});
