import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { guardedLookup, isPrivateAddress, refusal } from '../../src/delivery/guard.js';

const rules = (over: Partial<{ allow: string[]; deny: string[]; blockPrivate: boolean }> = {}) => ({ allow: [], deny: [], blockPrivate: false, ...over });

describe('destination rules', () => {
  it('knows private, loopback, link-local and reserved addresses', () => {
    const table: [string, boolean][] = [
      ['127.0.0.1', true], ['127.255.1.2', true], ['10.1.2.3', true], ['172.16.0.1', true], ['172.31.255.255', true], ['172.32.0.1', false],
      ['192.168.1.1', true], ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['224.0.0.1', true], ['255.255.255.255', true],
      ['8.8.8.8', false], ['93.184.216.34', false],
      ['::1', true], ['::', true], ['fe80::1', true], ['fd00::1', true], ['ff02::1', true], ['::ffff:127.0.0.1', true], ['::ffff:10.0.0.1', true],
      ['2606:4700:4700::1111', false], ['::ffff:8.8.8.8', false], ['example.com', false],
    ];
    for (const [address, expected] of table) assert.equal(isPrivateAddress(address), expected, address);
  });

  it('applies allow and deny patterns by host, subdomain and origin', () => {
    const u = (s: string) => new URL(s);
    assert.equal(refusal(u('https://a.example.com/x'), rules()), null);
    assert.match(String(refusal(u('https://a.example.com/x'), rules({ deny: ['*.example.com'] }))), /denied/);
    assert.equal(refusal(u('https://example.com/x'), rules({ deny: ['*.example.com'] })), null, '*.x does not match x itself');
    assert.equal(refusal(u('https://hooks.partner.io/x'), rules({ allow: ['hooks.partner.io'] })), null);
    assert.match(String(refusal(u('https://evil.io/x'), rules({ allow: ['hooks.partner.io'] }))), /not in --allow-destinations/);
    assert.equal(refusal(u('https://api.io:8443/x'), rules({ allow: ['https://api.io:8443'] })), null);
    assert.match(String(refusal(u('https://api.io/x'), rules({ allow: ['https://api.io:8443'] }))), /not in/);
    assert.match(String(refusal(u('http://api.io/x'), rules({ allow: ['*.api.io', 'api.io'], deny: ['api.io'] }))), /denied/, 'deny wins');
  });

  it('refuses private address literals at once and names only after resolution', async () => {
    const block = rules({ blockPrivate: true });
    assert.match(String(refusal(new URL('http://127.0.0.1:8080/'), block)), /private or loopback/);
    assert.match(String(refusal(new URL('http://[::1]/'), block)), /private or loopback/);
    assert.match(String(refusal(new URL('http://169.254.169.254/latest/meta-data'), block)), /private/);
    assert.equal(refusal(new URL('http://localhost/'), block), null, 'a name is checked when it is resolved');
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => guardedLookup('localhost', {}, (e) => resolve(e)));
    assert.equal(err?.code, 'SPOOL_ERR_DESTINATION_BLOCKED');
  });
});
