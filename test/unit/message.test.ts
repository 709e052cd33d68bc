import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scheduledAt, validateMessage, type Message } from '../../src/delivery/message.js';

function ok(input: unknown): Message {
  const v = validateMessage(input);
  assert.ok(v.ok, v.ok ? '' : v.reason);
  return v.message;
}

function reason(input: unknown): string {
  const v = validateMessage(input);
  assert.ok(!v.ok, 'expected invalid');
  return v.reason;
}

describe('message validation', () => {
  it('accepts the minimal message and defaults to POST with no body', () => {
    const m = ok({ url: 'https://example.com/hook?x=1#frag' });
    assert.equal(m.method, 'POST');
    assert.equal(m.origin, 'https://example.com');
    assert.equal(m.url.href, 'https://example.com/hook?x=1', 'the fragment is never sent');
    assert.equal(m.body, null);
    assert.deepEqual(m.headers, []);
  });

  it('sends a string body as it is and serializes anything else as JSON', () => {
    assert.equal(ok({ url: 'http://x/', body: '{"raw":1}' }).body?.toString(), '{"raw":1}');
    const m = ok({ url: 'http://x/', body: { a: [1, 'b'] } });
    assert.equal(m.body?.toString(), '{"a":[1,"b"]}');
    assert.deepEqual(m.headers, [['content-type', 'application/json']]);
    const own = ok({ url: 'http://x/', headers: { 'Content-Type': 'application/cloudevents+json' }, body: 1 });
    assert.deepEqual(own.headers, [['Content-Type', 'application/cloudevents+json']]);
    assert.equal(ok({ url: 'http://x/', body: false }).body?.toString(), 'false');
  });

  it('reads the per-message overrides', () => {
    const m = ok({ url: 'http://x/', maxAttempts: 3, maxAge: '2h', timeout: 5000, expiresAt: '2030-01-01T00:00:00Z', meta: { anything: true } });
    assert.equal(m.maxAttempts, 3);
    assert.equal(m.maxAge, 7_200_000);
    assert.equal(m.timeout, 5000);
    assert.equal(m.expiresAt, Date.parse('2030-01-01T00:00:00Z'));
  });

  it('takes an ordering key, and refuses one that is not a short string', () => {
    assert.equal(ok({ url: 'https://example.com/', orderingKey: 'customer-42' }).orderingKey, 'customer-42');
    for (const bad of ['', 42, 'x'.repeat(257)]) assert.match(reason({ url: 'https://example.com/', orderingKey: bad }), /orderingKey/);
  });

  it('refuses what can never be sent, with a reason', () => {
    const table: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      ['http://x/', /not a JSON object/],
      [[], /not a JSON object/],
      [{}, /"url" is missing/],
      [{ url: 5 }, /"url" is missing/],
      [{ url: '/relative' }, /not a valid absolute URL/],
      [{ url: 'javascript:alert(1)' }, /scheme javascript: is not allowed/],
      [{ url: 'http://a:b@x/' }, /credentials/],
      [{ url: 'http://x/', method: 'GET POST' }, /not a valid HTTP method/],
      [{ url: 'http://x/', method: 'connect' }, /CONNECT is not allowed/],
      [{ url: 'http://x/', method: 'GET', body: 'x' }, /GET request cannot carry a body/],
      [{ url: 'http://x/', headers: [] }, /"headers" must be an object/],
      [{ url: 'http://x/', headers: { 'X-A': 'ok\nX-B: injected' } }, /CR, LF or NUL/],
      [{ url: 'http://x/', headers: { 'X-A': 'nul\0' } }, /CR, LF or NUL/],
      [{ url: 'http://x/', headers: { 'X A': 'v' } }, /not a valid HTTP token/],
      [{ url: 'http://x/', headers: { 'Content-Length': '5' } }, /set by spoold/],
      [{ url: 'http://x/', headers: { 'Transfer-Encoding': 'chunked' } }, /set by spoold/],
      [{ url: 'http://x/', maxAttempts: -1 }, /"maxAttempts"/],
      [{ url: 'http://x/', maxAttempts: 1.5 }, /"maxAttempts"/],
      [{ url: 'http://x/', timeout: 'soon' }, /"timeout" must be a positive duration/],
      [{ url: 'http://x/', expiresAt: 'never' }, /"expiresAt"/],
      [{ url: 'http://x/', extra: 1 }, /unknown field "extra"/],
      [JSON.parse('{"url":"http://x/","__proto__":{}}'), /unknown field "__proto__"/],
    ];
    for (const [input, why] of table) assert.match(reason(input), why, JSON.stringify(input));
  });

  it('takes a scheduled first delivery as "deliverAt" (ISO 8601 or epoch ms) or "delay", not both, and not after "expiresAt"', () => {
    const at = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(ok({ url: 'http://x/', deliverAt: '2030-01-01T00:00:00Z' }).deliverAt, at);
    assert.equal(ok({ url: 'http://x/', deliverAt: at }).deliverAt, at);
    assert.equal(ok({ url: 'http://x/', deliverAt: String(at) }).deliverAt, at);
    assert.equal(ok({ url: 'http://x/', delay: '10m' }).delay, 600_000);
    assert.equal(scheduledAt(ok({ url: 'http://x/', deliverAt: at }), 5), at);
    assert.equal(scheduledAt(ok({ url: 'http://x/', delay: 1000 }), 5), 1005, 'a delay counts from the writing');
    assert.equal(scheduledAt(ok({ url: 'http://x/' }), 5), null);
    assert.match(reason({ url: 'http://x/', deliverAt: 'tomorrow' }), /"deliverAt" must be epoch milliseconds or an ISO 8601 date/);
    assert.match(reason({ url: 'http://x/', delay: '-5m' }), /"delay" must be a positive duration/);
    assert.match(reason({ url: 'http://x/', deliverAt: at, delay: '1m' }), /give "deliverAt" or "delay", not both/);
    assert.match(reason({ url: 'http://x/', deliverAt: at, expiresAt: at }), /"deliverAt" is not before "expiresAt"/);
    assert.equal(ok({ url: 'http://x/', deliverAt: at, expiresAt: at + 1 }).expiresAt, at + 1);
  });
});
