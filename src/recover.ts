/**
 * Start-up recovery: whatever is in active/ was claimed by a daemon that is
 * gone (killed, crashed, power lost), so its request may or may not have
 * reached the receiver. Each such message is made due again in deferred/,
 * keeping its attempt count: delivery is at-least-once, and the receiver
 * drops the repeat by its Idempotency-Key.
 */
import fs from 'node:fs';
import { streamDir, type Spool } from './layout.js';
import type { Logger } from './log.js';
import { parseEntry, parseIncomingName, type Entry } from './names.js';
import { moveToDeferred } from './settle.js';

export function recoverActive(spool: Spool, now: number, log: Logger): number {
  let recovered = 0;
  for (const name of fs.readdirSync(spool.dir('active'))) {
    const from = spool.path('active', name);
    const parsed = parseEntry(name);
    let entry: Entry | null = parsed ? { ...parsed, time: now, lastError: 'INTERRUPTED' } : null;
    if (!entry) {
      // A producer's name placed here by hand: a fresh message.
      const id = parseIncomingName(name);
      if (id) entry = { id, time: now, attempts: 0, arrival: now, destination: '-', lastError: '-' };
    }
    if (!entry) {
      if (!name.startsWith('.')) log.warn({ event: 'unknown-file', queue: 'active', file: name }, 'not a message name; left alone');
      continue;
    }
    moveToDeferred(spool, from, entry);
    recovered++;
    log.warn({ event: 'recovered', id: entry.id, queue: 'active', attempts: entry.attempts }, 'in flight when the last daemon stopped; delivering again');
  }
  return recovered;
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
