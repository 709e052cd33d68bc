/**
 * ordered/ on disk: each orderingKey's line (ordered/<key tag>/, names that
 * sort in arrival order) and its head record (<key tag>/.head, where the
 * key's one message out of the line is). The rules that use them are in
 * queue/ordering.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { streamDir, type Spool } from './layout.js';
import { formatLineName, parseLineName, type Entry } from './names.js';
import { readRecord, writeRecord } from './staging.js';

export interface HeadRecord {
  id: string;
  /** Where the head is, relative to the spool. */
  path: string;
}

const HEAD = '.head';

export function readHead(spool: Spool, tag: string): HeadRecord | null {
  try {
    const r = JSON.parse(readRecord(path.join(spool.lineDir(tag), HEAD))) as HeadRecord;
    return typeof r.id === 'string' && typeof r.path === 'string' ? r : null;
  } catch {
    return null;
  }
}

/**
 * Written before the head moves there: a crash in between leaves a stale
 * record, never a lost key. Fsynced: a record that came back empty after a
 * power cut would let a second head of the key go out.
 */
export function writeHead(spool: Spool, tag: string, id: string, at: string): void {
  fs.mkdirSync(spool.lineDir(tag), { recursive: true, mode: 0o700 });
  writeRecord(spool, path.join(spool.lineDir(tag), HEAD), JSON.stringify({ id, path: path.relative(spool.root, at) }) + '\n', true);
}

export function clearHead(spool: Spool, tag: string, id: string): void {
  if (readHead(spool, tag)?.id === id) fs.rmSync(path.join(spool.lineDir(tag), HEAD), { force: true });
}

export function headIsAt(spool: Spool, head: HeadRecord): boolean {
  return fs.existsSync(path.join(spool.root, head.path));
}

/** Into the key's line, by rename; returns its place there. */
export function enterLine(spool: Spool, tag: string, from: string, entry: Entry, writtenAt: number): InLine {
  const dir = spool.lineDir(tag);
  const sequence = Math.round(writtenAt * 1000);
  const name = formatLineName(sequence, entry);
  const to = path.join(dir, name);
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(from)) throw err;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.renameSync(from, to);
  }
  return { name, sequence, entry };
}

export interface InLine {
  name: string;
  sequence: number;
  entry: Entry;
}

/** File times tick coarsely (a few ms on some file systems): messages written within one tick are ordered by id. */
export function before(a: InLine, b: InLine): boolean {
  return a.sequence < b.sequence || (a.sequence === b.sequence && a.entry.id < b.entry.id);
}

/**
 * The `count` oldest messages in the key's line, oldest first, in one pass
 * (O(line)); `complete` when that is the whole line.
 */
export function oldestInLine(spool: Spool, tag: string, count: number): { oldest: InLine[]; complete: boolean } {
  const oldest: InLine[] = [];
  let seen = 0;
  for (const d of streamDir(spool.lineDir(tag))) {
    const parsed = parseLineName(d.name);
    if (!parsed) continue;
    seen++;
    const item = { name: d.name, ...parsed };
    if (oldest.length === count && !before(item, oldest[count - 1]!)) continue;
    let i = oldest.length;
    while (i > 0 && before(item, oldest[i - 1]!)) i--;
    oldest.splice(i, 0, item);
    if (oldest.length > count) oldest.pop();
  }
  return { oldest, complete: seen <= count };
}

/** Keys that have a line or a head (their tags). */
export function lineTags(spool: Spool): string[] {
  const tags: string[] = [];
  for (const d of streamDir(spool.dir('ordered'))) if (/^[0-9a-f]{32}$/.test(d.name)) tags.push(d.name);
  return tags;
}

/** After recovery moved messages out of active/: heads among them are recorded where they now are. */
export function repointHeads(spool: Spool, moved: ReadonlyMap<string, string>): void {
  if (moved.size === 0) return;
  for (const tag of lineTags(spool)) {
    const head = readHead(spool, tag);
    const now = head && moved.get(head.id);
    if (now) writeHead(spool, tag, head.id, now);
  }
}
