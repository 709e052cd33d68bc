/**
 * Recovery: whatever is in active/ and owned by no running daemon was claimed
 * by one that is gone (killed, crashed, power lost), so its request may or
 * may not have reached the receiver. Each such message is made due again in deferred/,
 * keeping its attempt count: delivery is at-least-once, and the receiver
 * drops the repeat by its Idempotency-Key.
 */
import fs from 'node:fs';
import { streamDir, type Spool } from './layout.js';
import type { Logger } from '../service/log.js';
import { leaseOwners, type Leases } from './lease.js';
import { repointHeads } from './lines.js';
import { parseActiveName, parseEntry, parseIncomingName, REASON_SUFFIX, TOKENS, type Entry } from './names.js';
import { moveToDeferred } from './moves.js';

/**
 * Makes due again the claims in active/ whose owner `recover` accepts
 * (owner null: a single daemon's claims). Returns how many were moved.
 */
export function recoverActive(spool: Spool, now: number, log: Logger, recover: (owner: string | null) => boolean = () => true): number {
  const moved = new Map<string, string>();
  let recovered = 0;
  for (const d of streamDir(spool.dir('active'))) {
    const name = d.name;
    const from = spool.path('active', name);
    const parsed = parseActiveName(name);
    if (parsed && !recover(parsed.owner)) continue;
    let entry: Entry | null = parsed ? { ...parsed.entry, time: now, lastError: afterInterruption(parsed.entry.lastError) } : null;
    if (!entry) {
      // A producer's name placed here by hand: a fresh message.
      const id = parseIncomingName(name);
      if (id && recover(null)) entry = { id, time: now, attempts: 0, arrival: now, destination: '-', lastError: '-' };
      else if (id) continue;
    }
    if (!entry) {
      if (!name.startsWith('.')) log.warn({ event: 'unknown-file', queue: 'active', file: name }, 'not a message name; left alone');
      continue;
    }
    // A peer recovering the same claim at the same moment wins the rename; this one finds nothing.
    const to = moveToDeferred(spool, from, entry);
    if (to === null) continue;
    moved.set(entry.id, to);
    recovered++;
    const owner = parsed?.owner ?? undefined;
    log.warn({ event: 'recovered', id: entry.id, queue: 'active', attempts: entry.attempts, ...(owner && { owner }) }, owner ? `claimed by ${owner}, whose lease expired; delivering again` : 'in flight when the last daemon stopped; delivering again');
  }
  // An ordering key's head among them: its record follows it (see ordering.ts).
  repointHeads(spool, moved);
  return recovered;
}

/**
 * The last error a recovered claim carries. A message never tried keeps its
 * token, because the claim's read decides by it whether to look at the
 * message's schedule: '-' and INCOMPLETE (not yet looked at: a kill between
 * the claim and the move into deferred/ must not send it early) and SCHEDULED
 * (its time had come, or a flush asked for now: not scheduled again).
 */
function afterInterruption(lastError: string): string {
  return lastError === '-' || lastError === TOKENS.incomplete || lastError === TOKENS.scheduled ? lastError : TOKENS.interrupted;
}

/**
 * In a shared spool: recovers the claims of peers whose lease expired, then
 * removes their leases. Run on every heartbeat. Returns how many claims were
 * recovered, and the owners of the leases still live (this daemon's among them).
 */
export function recoverPeers(spool: Spool, leases: Leases, now: number, log: Logger): { recovered: number; live: string[] } {
  const leased = leaseOwners(spool);
  const owners = new Set(leased);
  for (const d of streamDir(spool.dir('active'))) {
    const owner = parseActiveName(d.name)?.owner;
    if (owner) owners.add(owner);
  }
  const dead = new Set(leases.dead(owners));
  const live = leased.filter((owner) => !dead.has(owner));
  if (dead.size === 0) return { recovered: 0, live };
  const recovered = recoverActive(spool, now, log, (owner) => owner !== null && dead.has(owner));
  for (const owner of dead) {
    leases.bury(owner);
    log.warn({ event: 'peer-dead', owner }, `daemon ${owner} stopped renewing its lease; its claims are delivered by the others`);
  }
  return { recovered, live };
}

/**
 * Reason records whose message is gone from bounced/: a delete or requeue
 * (or a bounce) was killed between its two steps. Removed; O(bounced), so at
 * start only. Returns how many.
 */
export function dropOrphanReasons(spool: Spool): number {
  let dropped = 0;
  for (const d of streamDir(spool.dir('bounced'))) {
    if (!d.name.endsWith(REASON_SUFFIX)) continue;
    const message = spool.path('bounced', d.name.slice(0, -REASON_SUFFIX.length));
    if (fs.existsSync(message)) continue;
    fs.rmSync(spool.path('bounced', d.name), { force: true });
    dropped++;
  }
  return dropped;
}

/** Messages per queue, counted from names (for the start-up summary). */
export function countQueues(spool: Spool): Record<string, number> {
  const count = (dir: string, accept: (name: string) => boolean): number => {
    let n = 0;
    for (const d of streamDir(dir)) if (accept(d.name)) n++;
    return n;
  };
  let deferred = 0;
  for (const d of fs.readdirSync(spool.dir('deferred'), { withFileTypes: true })) {
    if (d.isDirectory()) deferred += count(spool.path('deferred', d.name), (n) => parseEntry(n) !== null);
  }
  return {
    incoming: count(spool.dir('incoming'), (n) => parseIncomingName(n) !== null),
    deferred,
    hold: count(spool.dir('hold'), (n) => parseEntry(n) !== null),
    bounced: count(spool.dir('bounced'), (n) => parseEntry(n) !== null),
  };
}
