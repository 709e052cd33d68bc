import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BUCKET_MS, bucketOf, describeErrorToken, destinationTag, isTrustedTag, errorToken, formatActiveName, formatEntry, formatLineName, isValidId, keyTag, parseActiveName, parseBucketName, parseEntry, parseIncomingName, parseLineName, type Entry } from '../../src/spool/names.js';
import { newMessageId } from '../../src/producer/enqueue.js';
import { newOwnerId } from '../../src/spool/lease.js';

const idArb = fc.stringMatching(/^[A-Za-z0-9._-]{1,128}$/).filter((s) => s !== '.' && s !== '..');
const entryArb: fc.Arbitrary<Entry> = fc.record({
  id: idArb,
  time: fc.integer({ min: 0, max: 9_999_999_999_999 }),
  attempts: fc.integer({ min: 0, max: 999_999 }),
  arrival: fc.integer({ min: 0, max: 9_999_999_999_999 }),
  destination: fc.oneof(fc.constant('-'), fc.stringMatching(/^[0-9a-f]{16}$/), fc.stringMatching(/^[0-9a-f]{8}$/)),
  lastError: fc.oneof(fc.constant('-'), fc.stringMatching(/^[A-Za-z0-9-]{1,24}$/)),
});

describe('filename codec', () => {
  it('round-trips every entry', () => {
    fc.assert(fc.property(entryArb, (e) => assert.deepEqual(parseEntry(formatEntry(e)), { ...e })));
  });

  it('keeps names within 255 bytes', () => {
    fc.assert(fc.property(entryArb, (e) => formatEntry(e).length <= 255));
  });

  it('round-trips active/ names with and without an owner, within 255 bytes', () => {
    const ownerArb = fc.oneof(fc.constant(null), fc.constant(newOwnerId()), fc.stringMatching(/^[A-Za-z0-9-][A-Za-z0-9.-]{0,30}$/));
    fc.assert(
      fc.property(entryArb, ownerArb, (e, owner) => {
        const name = formatActiveName(e, owner);
        assert.ok(name.length <= 255, name);
        assert.deepEqual(parseActiveName(name), { owner, entry: { ...e } });
      }),
    );
    assert.equal(parseActiveName('bad/owner@1_1_1_-_-_x.json'), null);
    assert.throws(() => formatActiveName({ id: 'x', time: 1, attempts: 1, arrival: 1, destination: '-', lastError: '-' }, 'a'.repeat(32)), RangeError);
    assert.ok(newOwnerId().length <= 31);
  });

  it('still reads names written before 0.2 (32-bit tags, longer error tokens and owners)', () => {
    const old = `1795407522923_3_1795407520006_602889c4_${'E'.repeat(32)}_order-42.paid.json`;
    assert.deepEqual(parseEntry(old), { time: 1795407522923, attempts: 3, arrival: 1795407520006, destination: '602889c4', lastError: 'E'.repeat(32), id: 'order-42.paid' });
    assert.equal(parseActiveName(`${'h'.repeat(24)}.1234567.abcdef@${old}`)?.entry.id, 'order-42.paid');
    // Written again, a legacy name keeps to the new budget.
    assert.match(formatEntry(parseEntry(old)!), new RegExp(`_${'E'.repeat(24)}_order-42`));
  });

  it('round-trips ordering-line names, which sort by write time', () => {
    fc.assert(
      fc.property(entryArb, fc.integer({ min: 0, max: 2 ** 52 }), (e, sequence) => {
        assert.deepEqual(parseLineName(formatLineName(sequence, e)), { sequence, entry: { ...e } });
      }),
    );
    const e: Entry = { id: 'x', time: 9, attempts: 0, arrival: 9, destination: '-', lastError: '-' };
    assert.ok(formatLineName(999, e) < formatLineName(1000, e));
    assert.equal(parseLineName('12+1_1_1_-_-_x.json'), null);
    assert.match(keyTag('customer-42'), /^[0-9a-f]{32}$/);
  });

  it("the library's ids sort in the order one process made them, and are valid ids", () => {
    const ids = Array.from({ length: 5000 }, () => newMessageId());
    assert.deepEqual([...ids].sort(), ids);
    assert.ok(ids.every(isValidId));
    assert.equal(new Set(ids).size, ids.length);
  });

  it('keeps an id that itself contains underscores and dots', () => {
    const e: Entry = { id: 'a_b_c.d-e', time: 1, attempts: 2, arrival: 3, destination: '-', lastError: '503' };
    assert.equal(formatEntry(e), '1_2_3_-_503_a_b_c.d-e.json');
    assert.deepEqual(parseEntry(formatEntry(e)), e);
  });

  it('parses producer names and refuses everything else', () => {
    const table: [string, string | null][] = [
      ['order-1.json', 'order-1'],
      ['a.b_c.json', 'a.b_c'],
      ['.hidden.json', null],
      ['x.json.1234567', null], // write-file-atomic temp file
      ['.x.json.swp', null],
      ['x.json~', null],
      ['x.JSON', null],
      ['.json', null],
      ['bad name.json', null],
      ['../x.json', null],
      ['..json', null],
      [`${'a'.repeat(128)}.json`, 'a'.repeat(128)],
      [`${'a'.repeat(129)}.json`, null],
      ['é.json', null],
    ];
    for (const [name, id] of table) assert.equal(parseIncomingName(name), id, name);
  });

  it('returns null for names that are not entries', () => {
    for (const name of ['x.json', '1_2_3_-_-_.json', '1_2_3_zz_-_x.json', 'a_2_3_-_-_x.json', '1_2_3_-_-_x.json.reason', '1_2_3_-_a_b_x', '1_2_3_-_-_bad id.json']) {
      assert.equal(parseEntry(name), null, name);
    }
  });

  it('validates ids', () => {
    assert.ok(isValidId('a'));
    assert.ok(!isValidId(''));
    assert.ok(!isValidId('.'));
    assert.ok(!isValidId('..'));
    assert.ok(!isValidId('a/b'));
    fc.assert(fc.property(idArb, (id) => isValidId(id)));
  });

  it('turns statuses and error codes into name-safe tokens and back', () => {
    assert.equal(errorToken(503), '503');
    assert.equal(errorToken('UND_ERR_HEADERS_TIMEOUT'), 'UND-ERR-HEADERS-TIMEOUT');
    assert.equal(errorToken('a b/c_d'), 'abc-d');
    assert.equal(errorToken(''), 'ERROR');
    assert.equal(describeErrorToken('503'), 'HTTP 503');
    assert.equal(describeErrorToken('ECONNREFUSED'), 'ECONNREFUSED');
    assert.equal(describeErrorToken('-'), null);
    fc.assert(fc.property(fc.string(), (s) => /^[A-Za-z0-9-]{1,32}$/.test(errorToken(s))));
  });

  it('puts every time in the bucket that starts at or before it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 }), (t) => {
        const b = bucketOf(t);
        return b <= t && t < b + BUCKET_MS && parseBucketName(String(b)) === b;
      }),
    );
    assert.equal(parseBucketName('123'), null);
    assert.equal(parseBucketName('abc'), null);
  });

  it('tags destinations stably', () => {
    assert.equal(destinationTag('https://a.example'), destinationTag('https://a.example'));
    assert.notEqual(destinationTag('https://a.example'), destinationTag('https://b.example'));
    assert.match(destinationTag('http://x'), /^[0-9a-f]{16}$/);
    assert.ok(isTrustedTag(destinationTag('http://x')));
    assert.ok(!isTrustedTag('602889c4'), 'a 32-bit tag is read, never trusted');
  });
});
