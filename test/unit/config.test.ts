import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, resolveConfig } from '../../src/config.js';
import { formatRelative, parseDuration, parseSize } from '../../src/units.js';

describe('units', () => {
  it('parses durations', () => {
    const table: [string, number][] = [['250', 250], ['250ms', 250], ['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['2d', 172_800_000], ['1.5s', 1500], [' 10 s ', 10_000]];
    for (const [text, ms] of table) assert.equal(parseDuration(text), ms, text);
    for (const bad of ['', 'abc', '5 fortnights', '-1s', '1w']) assert.throws(() => parseDuration(bad), RangeError, bad);
  });

  it('parses sizes', () => {
    const table: [string, number][] = [['1024', 1024], ['512k', 524_288], ['1MiB', 1_048_576], ['1m', 1_048_576], ['2gb', 2 * 1024 ** 3]];
    for (const [text, n] of table) assert.equal(parseSize(text), n, text);
    assert.throws(() => parseSize('1 parsec'), RangeError);
  });

  it('formats relative times for tables', () => {
    assert.equal(formatRelative(240_000), 'in 4m');
    assert.equal(formatRelative(-7_200_000), '2h ago');
    assert.equal(formatRelative(500), 'in 500ms');
  });
});

describe('configuration', () => {
  it('has webhook-friendly defaults', () => {
    assert.deepEqual(resolveConfig({}, {}), DEFAULTS);
  });

  it('takes the environment, and options over the environment', () => {
    const c = resolveConfig({ concurrency: '10' }, { SPOOL_DIR: '/srv/spool', SPOOLD_CONCURRENCY: '5', SPOOLD_MAX_AGE: '2d' });
    assert.equal(c.spool, '/srv/spool');
    assert.equal(c.concurrency, 10);
    assert.equal(c.maxAge, 172_800_000);
  });

  it('refuses bad values, naming where they came from', () => {
    assert.throws(() => resolveConfig({ concurrency: '0' }, {}), (e: Error) => e instanceof ConfigError && /--concurrency/.test(e.message));
    assert.throws(() => resolveConfig({}, { SPOOLD_TIMEOUT: 'forever' }), /SPOOLD_TIMEOUT/);
    assert.throws(() => resolveConfig({ minBackoff: '2h', maxBackoff: '1h' }, {}), /above max-backoff/);
    assert.throws(() => resolveConfig({ spool: '' }, {}), /must not be empty/);
  });

  it('caps the per-destination limit at the global one', () => {
    assert.equal(resolveConfig({ concurrency: '4', perDestination: '16' }, {}).perDestination, 4);
  });
});
