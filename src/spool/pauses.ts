/**
 * Paused destinations (`spoolctl pause` / `resume`; Postfix's
 * defer_transports, Convoy's paused endpoints). One file per pause, so that
 * two operators pausing at once never lose one, and a pause survives
 * restarts:
 *
 *   paused/<tag>.json                 { pattern, since }: in force
 *   paused/<tag>.<until>.over.json    { pattern, since, until }: over; kept so
 *                                     that the time a message spent paused is
 *                                     not counted in its age
 *
 * A pattern is what the config's "match" takes: a host, *.domain, or an
 * origin. While one matches, nothing is sent to the destination and its
 * messages wait in their queues, attempts and age unspent.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { matches } from '../delivery/guard.js';
import { SpoolError } from '../errors.js';
import type { Spool } from './layout.js';
import { readRecord } from './staging.js';

export interface Pause {
  pattern: string;
  since: number;
  /** When it ended; null while in force. */
  until: number | null;
}

/** A pattern as stored and compared: trimmed, lower case; throws SPOOL_ERR_BAD_PATTERN when it is not one. */
export function normalizePattern(raw: string): string {
  const p = raw.trim().toLowerCase();
  const bad = () => new SpoolError(`${JSON.stringify(raw)} is not a destination: give a host (api.example.com), *.domain or an origin (https://api.example.com:8443)`, 'SPOOL_ERR_BAD_PATTERN');
  if (p === '' || /\s/.test(p)) throw bad();
  if (p.includes('://')) {
    try {
      return new URL(p).origin;
    } catch {
      throw bad();
    }
  }
  if (!/^(\*\.)?[a-z0-9.:[\]_-]+$/.test(p)) throw bad();
  return p;
}

function tagOf(pattern: string): string {
  return createHash('sha256').update(pattern).digest('hex').slice(0, 16);
}

function activePath(spool: Spool, pattern: string): string {
  return spool.path('paused', `${tagOf(pattern)}.json`);
}

/** Every pause, in force or over; a file that cannot be read is skipped. */
export function readPauses(spool: Spool): Pause[] {
  return readPauseFiles(spool).map((f) => f.pause);
}

function readPauseFiles(spool: Spool): { name: string; pause: Pause }[] {
  let names: string[];
  try {
    names = fs.readdirSync(spool.dir('paused'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: { name: string; pause: Pause }[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    try {
      const p = JSON.parse(readRecord(path.join(spool.dir('paused'), name))) as Pause;
      if (typeof p.pattern === 'string' && typeof p.since === 'number') out.push({ name, pause: { pattern: p.pattern, since: p.since, until: typeof p.until === 'number' ? p.until : null } });
    } catch {
      /* half-written by a killed spoolctl, or not ours */
    }
  }
  return out;
}

/** Writes a record whole in tmp/, then links it in: never over another. False when the name is taken. */
function place(spool: Spool, target: string, record: Pause): boolean {
  const staged = spool.path('tmp', `.pause.${process.pid}.${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(staged, JSON.stringify(record) + '\n', { mode: 0o600 });
  try {
    fs.linkSync(staged, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(staged, { force: true });
  }
}

export function pause(spool: Spool, raw: string, now: number = Date.now()): 'paused' | 'already' {
  const pattern = normalizePattern(raw);
  fs.mkdirSync(spool.dir('paused'), { recursive: true, mode: 0o700 });
  return place(spool, activePath(spool, pattern), { pattern, since: now, until: null }) ? 'paused' : 'already';
}

/** Ends a pause: its record of what it covered is written before the pause itself goes. */
export function resume(spool: Spool, raw: string, now: number = Date.now()): 'resumed' | 'not-paused' {
  const pattern = normalizePattern(raw);
  const file = activePath(spool, pattern);
  let since: number;
  try {
    since = (JSON.parse(readRecord(file)) as Pause).since;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not-paused';
    since = now;
  }
  place(spool, spool.path('paused', `${tagOf(pattern)}.${now}.over.json`), { pattern, since, until: now });
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not-paused';
    throw err;
  }
  return 'resumed';
}

export function isPaused(pauses: readonly Pause[], url: URL): boolean {
  return pauses.some((p) => p.until === null && matches(url, p.pattern));
}

/** How long, within [from, to], a destination was paused (overlapping pauses counted once each). */
export function pausedFor(pauses: readonly Pause[], url: URL, from: number, to: number): number {
  let total = 0;
  for (const p of pauses) {
    if (!matches(url, p.pattern)) continue;
    const start = Math.max(from, p.since);
    const end = Math.min(to, p.until ?? to);
    if (end > start) total += end - start;
  }
  return total;
}

/**
 * Prunes the records of ended pauses. An ended pause is kept only so that
 * the time it covered is left out of the age of messages that arrived
 * before it ended; once every message in the spool arrived after it ended,
 * it concerns none. (Not `--max-age`: a message may carry a longer maxAge of
 * its own.) A message being renamed between queues while the walk passes
 * may be missed by one walk, so a record goes only when it ended before the
 * oldest arrival of two walks in a row.
 */
export class PauseRecords {
  private oldestBefore = -Infinity;

  /** `oldestArrival(floor)`: the spool's oldest arrival, or any one at or below floor. */
  constructor(
    private readonly spool: Spool,
    private readonly oldestArrival: (floor: number) => number,
  ) {}

  /** Removes what no message needs any more; how many. */
  prune(): number {
    const ended = readPauseFiles(this.spool).filter((f) => f.pause.until !== null);
    if (ended.length === 0) return 0;
    const oldest = this.oldestArrival(Math.min(...ended.map((f) => f.pause.until!)));
    const before = Math.min(oldest, this.oldestBefore);
    this.oldestBefore = oldest;
    let removed = 0;
    for (const { name, pause } of ended) {
      if (pause.until! >= before) continue;
      try {
        fs.unlinkSync(path.join(this.spool.dir('paused'), name));
        removed++;
      } catch (err) {
        // A peer sharing the spool pruned it first.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return removed;
  }
}
