import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, publicSettings, resolveConfig } from '../../src/service/config.js';
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

describe('webhook settings', () => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

  it('takes signing secrets from the environment, several while rotating, and refuses what is not one', () => {
    assert.equal(resolveConfig({}, { SPOOLD_SIGNING_SECRET: `${secret} ${secret}` }).signingKeys.length, 2);
    assert.deepEqual(resolveConfig({}, {}).signingKeys, []);
    for (const bad of ['whsec_short', 'whsec_!!!!', 'not a secret']) {
      assert.throws(() => resolveConfig({}, { SPOOLD_SIGNING_SECRET: bad }), (e: Error) => e instanceof ConfigError && /whsec_/.test(e.message), bad);
    }
    assert.throws(() => resolveConfig({ signingSecretFile: '/nonexistent/secret' }, {}), /no such file/);
  });

  it('reads per-destination settings and refuses bad ones, naming the entry', () => {
    const file = (destinations: unknown) => ({ path: 'spoold.json', values: { destinations } });
    const [rule] = resolveConfig({}, {}, file([{ match: '*.example.com', concurrency: 4, rps: 2.5, timeout: '10s', minBackoff: '1s', maxBackoff: '1m', maxAttempts: 5, signingSecret: secret, headers: { 'X-Team': 'a' } }])).destinationSettings;
    assert.deepEqual({ ...rule, signingKeys: rule!.signingKeys!.length }, { match: ['*.example.com'], concurrency: 4, rps: 2.5, timeout: 10_000, minBackoff: 1000, maxBackoff: 60_000, maxAttempts: 5, signingKeys: 1, headers: [['X-Team', 'a']] });
    const table: [unknown, RegExp][] = [
      [{}, /destinations must be a list/],
      [[{ concurrency: 1 }], /destinations\[0\]: match/],
      [[{ match: 'a.com', speed: 1 }], /unknown field "speed"/],
      [[{ match: 'a.com', concurrency: 0 }], /destinations\[0\]: concurrency/],
      [[{ match: 'a.com', rps: -1 }], /rps/],
      [[{ match: 'a.com', timeout: 'soon' }], /timeout/],
      [[{ match: 'a.com', minBackoff: '1h', maxBackoff: '1m' }], /minBackoff is above/],
      [[{ match: 'a.com', headers: { 'Bad Name': 'x' } }], /header/],
      [[{ match: 'a.com', headers: { 'X-A': 'one\r\nX-B: two' } }], /header/],
      [[{ match: 'a.com', signingSecret: 'nope' }], /whsec_/],
    ];
    for (const [destinations, message] of table) assert.throws(() => resolveConfig({}, {}, file(destinations)), message, JSON.stringify(destinations));
  });

  it('keeps secrets and added header values out of what is logged', () => {
    const c = resolveConfig({}, { SPOOLD_SIGNING_SECRET: secret }, { path: 'f', values: { destinations: [{ match: 'a.com', signingSecret: secret, headers: { Authorization: 'Bearer x' } }] } });
    const shown = JSON.stringify(publicSettings(c));
    assert.ok(!shown.includes(secret.slice(6)) && !shown.includes('Bearer x'), shown);
    assert.match(shown, /"signing":"1 secret\(s\)"/);
  });

  it('checks the bounce hook URL', () => {
    assert.equal(resolveConfig({ bounceHook: 'https://ops.example.com/bounces' }, {}).bounceHook, 'https://ops.example.com/bounces');
    assert.throws(() => resolveConfig({ bounceHook: 'ftp://x' }, {}), /http and https/);
    assert.throws(() => resolveConfig({ bounceHook: 'not a url' }, {}), /not a URL/);
  });
});
