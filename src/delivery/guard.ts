/**
 * Which destinations a spool may send to: for spools whose producers are
 * trusted less than the host (a message could otherwise make the daemon call
 * an internal admin API or a cloud metadata service).
 *
 *   allow    if set, only hosts matching one of these patterns
 *   deny     never hosts matching one of these
 *   blockPrivate  never loopback, private, link-local, CGNAT, multicast or
 *            reserved addresses: checked on the address the name resolves to,
 *            at connect time, so a name cannot smuggle one in
 *
 * Patterns: `example.com` (that host), `*.example.com` (its subdomains),
 * `https://example.com:8443` (that origin exactly).
 */
import dns from 'node:dns';
import net from 'node:net';

export interface DestinationRules {
  allow: readonly string[];
  deny: readonly string[];
  blockPrivate: boolean;
}

export const BLOCKED_CODE = 'SPOOL_ERR_DESTINATION_BLOCKED';

const privateRanges = new net.BlockList();
for (const [net4, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) privateRanges.addSubnet(net4, bits, 'ipv4');
for (const [net6, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32], ['100::', 64]] as const) {
  privateRanges.addSubnet(net6, bits, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return privateRanges.check(address, 'ipv4');
  if (family !== 6) return false;
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return privateRanges.check(mapped[1]!, 'ipv4');
  return privateRanges.check(address, 'ipv6');
}

export function matches(url: URL, pattern: string): boolean {
  const p = pattern.trim().toLowerCase();
  if (p.includes('://')) {
    try {
      return new URL(p).origin === url.origin;
    } catch {
      return false;
    }
  }
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (p.startsWith('*.')) return host.endsWith(p.slice(1));
  return host === p;
}

/** The reason a URL may not be sent to, or null. Pure (no DNS). */
export function refusal(url: URL, rules: DestinationRules): string | null {
  if (rules.deny.some((p) => matches(url, p))) return `destination ${url.host} is denied (--deny-destinations)`;
  if (rules.allow.length > 0 && !rules.allow.some((p) => matches(url, p))) return `destination ${url.host} is not in --allow-destinations`;
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  // Names (localhost included) are checked after resolution, in guardedLookup.
  if (rules.blockPrivate && isPrivateAddress(literal)) {
    return `destination ${url.host} is a private or loopback address (--block-private)`;
  }
  return null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A dns.lookup for net.connect that refuses private addresses after
 * resolution: what is checked is what is connected to.
 */
export function guardedLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, options, (err, address, family) => {
    if (err) return callback(err, address, family);
    const addresses = Array.isArray(address) ? address.map((a) => a.address) : [address];
    const bad = addresses.find(isPrivateAddress);
    if (bad !== undefined) {
      const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${bad}, a private or loopback address (--block-private)`);
      e.code = BLOCKED_CODE;
      return callback(e, address, family);
    }
    callback(null, address, family);
  });
}
