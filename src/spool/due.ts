/**
 * Finding what is due in deferred/, from names alone.
 *
 * deferred/ holds one folder per time bucket (named by its start, epoch ms).
 * A scan lists the bucket names, opens only buckets that have started, and
 * walks each with a directory stream, collecting at most `limit` due entries.
 * Its cost is O(buckets + entries in started buckets), never O(backlog), and
 * memory holds `limit` names, not the queue. Buckets not started yet tell when
 * the next scan is needed.
 *
 * A scan also keeps the earliest `keep` entries that are not due yet, and says
 * up to when that list is complete (every not-yet-due name earlier than
 * `completeUntil` is in it): a caller can claim them straight from the list
 * as they come due, without reading the bucket again for each one.
 *
 * Self-healing: a message file found directly in deferred/ or in a bucket
 * that does not match its time is renamed into its bucket; past buckets left
 * empty are removed (rmdir never removes a file, so a racing rename is safe).
 */
import fs from 'node:fs';
import path from 'node:path';
import { streamDir, type Spool } from './layout.js';
import { BUCKET_MS, bucketOf, parseBucketName, parseEntry, type Entry } from './names.js';

export interface DueEntry {
  entry: Entry;
  path: string;
}

export interface DueScan {
  due: DueEntry[];
  /** The earliest entries not due yet, earliest first (at most `keep`). */
  upcoming: DueEntry[];
  /** `upcoming` holds every entry not due yet whose time is before this (wall ms; Infinity: all of them). */
  completeUntil: number;
  /** Stopped at `limit`: more may be due. */
  more: boolean;
}

const byTime = (a: DueEntry, b: DueEntry) => a.entry.time - b.entry.time;

function rehome(spool: Spool, from: string, entry: Entry): void {
  const dir = spool.bucketDir(bucketOf(entry.time));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    fs.renameSync(from, path.join(dir, path.basename(from)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export function scanDue(spool: Spool, now: number, limit: number, skip: (e: Entry) => boolean = () => false, keep = 0): DueScan {
  const result: DueScan = { due: [], upcoming: [], completeUntil: Infinity, more: false };
  // Kept as a buffer trimmed to `keep` whenever it doubles: O(n log keep), memory 2 × keep.
  const trim = () => {
    result.upcoming.sort(byTime);
    const dropped = result.upcoming.splice(keep);
    if (dropped.length > 0) result.completeUntil = Math.min(result.completeUntil, dropped[0]!.entry.time);
  };
  const later = (entry: Entry, at: string) => {
    result.upcoming.push({ entry, path: at });
    if (result.upcoming.length >= 2 * keep) trim();
  };
  const buckets: number[] = [];
  for (const d of fs.readdirSync(spool.dir('deferred'), { withFileTypes: true })) {
    const start = parseBucketName(d.name);
    if (d.isDirectory() && start !== null) {
      buckets.push(start);
    } else if (d.isFile()) {
      const entry = parseEntry(d.name);
      if (!entry) continue;
      rehome(spool, spool.path('deferred', d.name), entry);
      // Into a bucket this scan may have passed: the next scan, due by then, finds it.
      result.completeUntil = Math.min(result.completeUntil, entry.time);
    }
  }
  buckets.sort((a, b) => a - b);

  for (const start of buckets) {
    if (start > now) {
      result.completeUntil = Math.min(result.completeUntil, start);
      break;
    }
    const dir = spool.bucketDir(start);
    let seen = 0;
    for (const d of streamDir(dir)) {
      seen++;
      const entry = parseEntry(d.name);
      if (!entry || !d.isFile()) continue;
      if (entry.time > now) {
        const at = path.join(dir, d.name);
        if (bucketOf(entry.time) === start) later(entry, at);
        else {
          rehome(spool, at, entry);
          result.completeUntil = Math.min(result.completeUntil, entry.time);
        }
        continue;
      }
      if (result.due.length >= limit) {
        result.more = true;
        break;
      }
      // Asked only of entries that would be taken, so `skip` may count what it lets through.
      if (skip(entry)) continue;
      result.due.push({ entry, path: path.join(dir, d.name) });
    }
    if (seen === 0 && start + BUCKET_MS <= now) {
      try {
        fs.rmdirSync(dir);
      } catch {
        /* not empty after all, or gone: either is fine */
      }
    }
    if (result.more) break;
  }
  // Stopped early: names not read yet may be due before anything kept.
  if (result.more) result.completeUntil = Math.min(result.completeUntil, now);
  trim();
  result.due.sort(byTime);
  return result;
}
