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
  /** Earliest time something not yet due becomes due, if any is known. */
  nextDue: number | null;
  /** Stopped at `limit`: more may be due. */
  more: boolean;
}

function rehome(spool: Spool, from: string, entry: Entry): void {
  const dir = spool.bucketDir(bucketOf(entry.time));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    fs.renameSync(from, path.join(dir, path.basename(from)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export function scanDue(spool: Spool, now: number, limit: number, skip: (e: Entry) => boolean = () => false): DueScan {
  const result: DueScan = { due: [], nextDue: null, more: false };
  const later = (t: number) => {
    if (result.nextDue === null || t < result.nextDue) result.nextDue = t;
  };
  const buckets: number[] = [];
  for (const d of fs.readdirSync(spool.dir('deferred'), { withFileTypes: true })) {
    const start = parseBucketName(d.name);
    if (d.isDirectory() && start !== null) {
      buckets.push(start);
    } else if (d.isFile()) {
      const entry = parseEntry(d.name);
      if (entry) rehome(spool, spool.path('deferred', d.name), entry);
      if (entry) later(Math.min(entry.time, now));
    }
  }
  buckets.sort((a, b) => a - b);

  for (const start of buckets) {
    if (start > now) {
      later(start);
      break;
    }
    const dir = spool.bucketDir(start);
    let seen = 0;
    for (const d of streamDir(dir)) {
      seen++;
      const entry = parseEntry(d.name);
      if (!entry || !d.isFile()) continue;
      if (entry.time > now) {
        if (bucketOf(entry.time) !== start) rehome(spool, path.join(dir, d.name), entry);
        later(entry.time);
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
  result.due.sort((a, b) => a.entry.time - b.entry.time);
  return result;
}
