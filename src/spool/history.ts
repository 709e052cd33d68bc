/**
 * Delivery history: what each attempt of a message got, and, while
 * --keep-delivered says so, the delivered messages themselves. Plain files,
 * so that grep and jq work on them:
 *
 *   attempts/<id>.delayed                  its delayed notice went out (notices.ts)
 *   attempts/<id>.jsonl                    one line per attempt, while the
 *                                          message is in the spool (queued,
 *                                          held or bounced); keyed by id, so
 *                                          it follows the message through
 *                                          retries, restarts, hold and requeue
 *   delivered/<hour>/<id>.json             the delivered message (its file,
 *                                          linked there before it leaves active/)
 *   delivered/<hour>/<id>.attempts.jsonl   its attempts, the last one the 2xx
 *
 * An id delivered again within the same hour (re-enqueued, replayed) gets
 * <id>@2.json and so on: '@' is not allowed in ids, so no record is ever
 * replaced and no name is ambiguous. Hours are pruned whole once older than
 * --keep-delivered, at a cost of what expires.
 *
 * Not fsynced: history is evidence, never the message; a power cut may lose
 * its last lines. A message delivered at its first attempt with
 * --keep-delivered off costs nothing here.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { AttemptResult } from '../delivery/classify.js';
import type { Spool } from './layout.js';
import { readRecord } from './staging.js';

/** One attempt, as recorded (and as `spoolctl history --json` prints it). */
export type AttemptRecord =
  | { at: number; status: number; ms: number; excerpt?: string }
  | { at: number; error: string; ms: number; detail?: string };

export const DELIVERED_BUCKET_MS = 3_600_000;
const EXCERPT_CHARS = 200;
const ATTEMPTS_SUFFIX = '.attempts.jsonl';

export function attemptRecord(result: AttemptResult, at: number): AttemptRecord {
  const ms = Math.round(result.elapsed);
  if (result.kind === 'response') return { at, status: result.status, ms, ...(result.excerpt && { excerpt: result.excerpt.slice(0, EXCERPT_CHARS) }) };
  return { at, error: result.code, ms, ...(result.message && { detail: result.message.slice(0, EXCERPT_CHARS) }) };
}

function attemptsPath(spool: Spool, id: string): string {
  return spool.path('attempts', `${id}.jsonl`);
}

/** Appends one attempt to a queued message's history. */
export function recordAttempt(spool: Spool, id: string, record: AttemptRecord): void {
  fs.appendFileSync(attemptsPath(spool, id), JSON.stringify(record) + '\n', { mode: 0o600 });
}

/** The attempts recorded in one history file, oldest first; lines that do not parse are skipped. */
export function readAttemptsFile(file: string): AttemptRecord[] {
  let text: string;
  try {
    text = readRecord(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: AttemptRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as AttemptRecord;
      if (typeof r?.at === 'number') out.push(r);
    } catch {
      /* a torn last line after a crash */
    }
  }
  return out;
}

export function readAttempts(spool: Spool, id: string): AttemptRecord[] {
  return readAttemptsFile(attemptsPath(spool, id));
}

/** A queued message's history goes with it (delivered without keeping, deleted). */
export async function dropAttempts(spool: Spool, id: string): Promise<void> {
  await fsp.rm(attemptsPath(spool, id), { force: true });
}

export function dropAttemptsSync(spool: Spool, id: string): void {
  fs.rmSync(attemptsPath(spool, id), { force: true });
  fs.rmSync(delayedMark(spool, id), { force: true });
}

/**
 * attempts/<id>.delayed: the message's delayed notice has been written. Made
 * with O_EXCL, so the notice goes once; its removal on delivery says whether
 * a recovered notice is due.
 */
function delayedMark(spool: Spool, id: string): string {
  return spool.path('attempts', `${id}.delayed`);
}

/** True the first time only. */
export function markDelayed(spool: Spool, id: string): boolean {
  try {
    fs.closeSync(fs.openSync(delayedMark(spool, id), 'wx', 0o600));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Removes the mark; true when there was one (the message had been announced as delayed). */
export function clearDelayed(spool: Spool, id: string): boolean {
  try {
    fs.unlinkSync(delayedMark(spool, id));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function deliveredDir(spool: Spool, bucket: number): string {
  return path.join(spool.dir('delivered'), String(bucket));
}

function recordBase(id: string, n: number): string {
  return n === 1 ? id : `${id}@${n}`;
}

/**
 * Keeps a delivered message: links its file into delivered/<hour>/ (a link
 * never replaces: a repeat of the id takes the next free name), then writes
 * its attempts beside it. The caller then unlinks it from active/; a crash
 * before that sends it once more, as it would have without keeping.
 */
export async function keepDelivered(spool: Spool, activePath: string, id: string, final: AttemptRecord): Promise<string> {
  const dir = deliveredDir(spool, Math.floor(final.at / DELIVERED_BUCKET_MS) * DELIVERED_BUCKET_MS);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  for (let n = 1; ; n++) {
    const base = path.join(dir, recordBase(id, n));
    try {
      await fsp.link(activePath, `${base}.json`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && n < 1000) continue;
      throw err;
    }
    const earlier = attemptsPath(spool, id);
    await fsp.appendFile(earlier, JSON.stringify(final) + '\n', { mode: 0o600 });
    await fsp.rename(earlier, `${base}${ATTEMPTS_SUFFIX}`);
    return `${base}.json`;
  }
}

/**
 * A message in the queues whose second name is its own kept copy in
 * delivered/: a daemon was killed between keepDelivered's link and the
 * unlink from active/. The keep is undone (the copy unlinked, its attempts
 * put back if they had moved), so the message is sent once more and kept
 * then, as the comment on keepDelivered promises; true when it was. A crash
 * in this very step leaves the same state to be undone again.
 */
export function dropUnfinishedKeep(spool: Spool, id: string, st: fs.Stats): boolean {
  let hours: string[];
  try {
    hours = fs.readdirSync(spool.dir('delivered')).filter((h) => deliveredBucket(h) !== null);
  } catch {
    return false;
  }
  let dropped = false;
  for (const hour of hours) {
    for (let n = 1; n < 1000; n++) {
      const base = path.join(spool.dir('delivered'), hour, recordBase(id, n));
      let t: fs.Stats;
      try {
        t = fs.lstatSync(`${base}.json`);
      } catch {
        break;
      }
      if (t.ino !== st.ino || t.dev !== st.dev) continue;
      try {
        // Attempts first: once the copy is gone, nothing points at them.
        if (!fs.existsSync(attemptsPath(spool, id))) fs.renameSync(`${base}${ATTEMPTS_SUFFIX}`, attemptsPath(spool, id));
      } catch {
        /* not moved yet: they are still in attempts/ */
      }
      try {
        fs.unlinkSync(`${base}.json`);
        dropped = true;
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return dropped;
}

/** Hours of delivered/ whose newest record is older than `keepMs`; each removed whole. Returns how many. */
export async function pruneDelivered(spool: Spool, keepMs: number, now: number): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(spool.dir('delivered'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let pruned = 0;
  for (const name of names) {
    const start = deliveredBucket(name);
    if (start === null || start + DELIVERED_BUCKET_MS + keepMs > now) continue;
    await fsp.rm(path.join(spool.dir('delivered'), name), { recursive: true, force: true });
    pruned++;
  }
  return pruned;
}

function deliveredBucket(name: string): number | null {
  if (!/^\d{1,15}$/.test(name)) return null;
  const start = Number(name);
  return start % DELIVERED_BUCKET_MS === 0 ? start : null;
}

export interface DeliveredRecord {
  id: string;
  /** The message file, as it was sent. */
  path: string;
  attemptsPath: string;
}

/** delivered/'s hours, newest first. */
function bucketsNewestFirst(spool: Spool): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(spool.dir('delivered'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map(deliveredBucket)
    .filter((b): b is number => b !== null)
    .sort((a, b) => b - a);
}

/** The kept deliveries of one id, newest first; by names, one stat per hour kept. */
export function findDelivered(spool: Spool, id: string): DeliveredRecord[] {
  const found: DeliveredRecord[] = [];
  for (const bucket of bucketsNewestFirst(spool)) {
    const here: DeliveredRecord[] = [];
    for (let n = 1; ; n++) {
      const base = path.join(deliveredDir(spool, bucket), recordBase(id, n));
      if (!fs.existsSync(`${base}.json`)) break;
      here.push({ id, path: `${base}.json`, attemptsPath: `${base}${ATTEMPTS_SUFFIX}` });
    }
    found.push(...here.reverse());
  }
  return found;
}

/** Every kept delivery, newest hour first. */
export function* walkDelivered(spool: Spool): Generator<DeliveredRecord> {
  for (const bucket of bucketsNewestFirst(spool)) {
    const dir = deliveredDir(spool, bucket);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const base = name.slice(0, -'.json'.length);
      yield { id: base.replace(/@\d+$/, ''), path: path.join(dir, name), attemptsPath: path.join(dir, base + ATTEMPTS_SUFFIX) };
    }
  }
}
