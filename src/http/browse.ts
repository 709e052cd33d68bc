/**
 * Reading the spool for the status page: a queue one page at a time, a
 * message by id, a filtered selection for a bulk action. Everything comes
 * from names (time, attempts, destination tag, last error, id are in them,
 * see spool/names.ts); files are opened only to learn a tag's host (once per
 * tag) and to show one message. Reads are asynchronous, so that a page over
 * a large backlog never holds up the event loop that delivers.
 *
 * What a request reads is bounded: deferred/ and delivered/ are read by time
 * bucket, from the end the order starts at, and only until the page is
 * full; one request looks through at most SCAN_LIMIT names, and says so when
 * it stopped there (`complete: false`), with a cursor to go on from.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { QUEUES, type Queue, type Spool } from '../spool/layout.js';
import { BUCKET_MS, describeErrorToken, isTrustedTag, parseActiveName, parseBucketName, parseEntry, parseIncomingName, parseLineName, type Entry } from '../spool/names.js';
import { DELIVERED_BUCKET_MS, findDelivered, readAttempts, readAttemptsFile, type AttemptRecord } from '../spool/history.js';
import { readMessageFile, readReason, redactHeaders, type Located } from '../operate/control.js';

/** The queues, and the deliveries kept by --keep-delivered. */
export type Browsable = Queue | 'delivered';
export const BROWSABLE: readonly Browsable[] = [...QUEUES, 'delivered'];
export function isBrowsable(q: string): q is Browsable {
  return (BROWSABLE as readonly string[]).includes(q);
}

/** Names one request reads at most (it finishes the group it is in). */
export const SCAN_LIMIT = 100_000;
/** Message files one request opens at most (to learn hosts it does not know). */
const OPEN_LIMIT = 2_000;
const BODY_PREVIEW = 1024;

export interface Filter {
  /** A host, host:port or origin. */
  destination?: string;
  /** Part of the last error, as shown ("HTTP 503", "ECONNREFUSED"). */
  error?: string;
  prefix?: string;
  /** Epoch ms: the row's time is at or after it. */
  since?: number;
}

export interface Query extends Filter {
  queue: Browsable;
  order: 'oldest' | 'newest';
  /** The cursor of the page before (its `next`). */
  after?: string;
  limit: number;
}

export interface Row {
  id: string;
  queue: Browsable;
  name: string;
  /** The time the queue is ordered by: next attempt (deferred), entering the queue (elsewhere), the hour delivered (delivered). */
  time: number;
  arrival: number | null;
  attempts: number;
  destination: string;
  lastError: string | null;
}

export interface Page {
  rows: Row[];
  /** Give it as `after` for the next page; null when this one reached the end. */
  next: string | null;
  /** Names read to make this page. */
  scanned: number;
  /** False when the request stopped at SCAN_LIMIT before the page was full: there may be more matches further on. */
  complete: boolean;
}

interface Item {
  id: string;
  name: string;
  path: string;
  time: number;
  entry: Entry | null;
}

/** A set of items read together: all of a bucket, or all of a flat folder. [lo, hi) bounds their times. */
interface Group {
  lo: number;
  hi: number;
  read(): Promise<Item[]>;
}

async function names(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

const fromEntry = (dir: string) => (name: string, entry: Entry | null | undefined): Item | null => (entry ? { id: entry.id, name, path: path.join(dir, name), time: entry.time, entry } : null);
const present = <T>(x: T | null): x is T => x !== null;

/** The queue's groups, in the order asked for. */
async function groups(spool: Spool, queue: Browsable, order: 'oldest' | 'newest', keep: (name: string) => boolean = () => true): Promise<Group[]> {
  const sorted = (gs: Group[]) => gs.sort((a, b) => (order === 'oldest' ? a.lo - b.lo : b.lo - a.lo));
  if (queue === 'deferred') {
    const root = spool.dir('deferred');
    const starts = (await subdirs(root)).map(parseBucketName).filter((b): b is number => b !== null);
    const gs: Group[] = starts.map((start) => {
      const dir = spool.bucketDir(start);
      return { lo: start, hi: start + BUCKET_MS, read: async () => (await names(dir)).filter(keep).map((n) => fromEntry(dir)(n, parseEntry(n))).filter(present) };
    });
    // Names directly in deferred/ (written before buckets): any time.
    gs.push({ lo: -Infinity, hi: Infinity, read: async () => (await names(root)).filter(keep).map((n) => fromEntry(root)(n, parseEntry(n))).filter(present) });
    return sorted(gs);
  }
  if (queue === 'delivered') {
    const root = spool.dir('delivered');
    const hours = (await subdirs(root)).filter((n) => /^\d{1,15}$/.test(n)).map(Number);
    return sorted(
      hours.map((start) => {
        const dir = path.join(root, String(start));
        const read = async () =>
          (await names(dir)).filter(keep)
            .filter((n) => n.endsWith('.json'))
            .map((n) => ({ id: n.slice(0, -'.json'.length).replace(/@\d+$/, ''), name: n, path: path.join(dir, n), time: start, entry: null }));
        return { lo: start, hi: start + DELIVERED_BUCKET_MS, read };
      }),
    );
  }
  if (queue === 'ordered') {
    const root = spool.dir('ordered');
    const read = async () => {
      const items: Item[] = [];
      for (const line of await subdirs(root)) {
        const dir = path.join(root, line);
        for (const n of (await names(dir)).filter(keep)) {
          const item = fromEntry(dir)(n, parseLineName(n)?.entry);
          if (item) items.push(item);
        }
      }
      return items;
    };
    return [{ lo: -Infinity, hi: Infinity, read }];
  }
  const dir = spool.dir(queue);
  const read = async (): Promise<Item[]> => {
    const all = (await names(dir)).filter(keep);
    if (queue === 'incoming') {
      // No times in these names: the time is the file's (one stat per name shown, see page()).
      return all.map((n) => parseIncomingName(n)).filter((id): id is string => id !== null).map((id) => ({ id, name: `${id}.json`, path: path.join(dir, `${id}.json`), time: 0, entry: null }));
    }
    return all.map((n) => fromEntry(dir)(n, queue === 'active' ? parseActiveName(n)?.entry : parseEntry(n))).filter(present);
  };
  return [{ lo: -Infinity, hi: Infinity, read }];
}

function parseCursor(c: string | undefined): { time: number; name: string } | null {
  if (!c) return null;
  const i = c.indexOf('~');
  const time = Number(c.slice(0, i));
  return i > 0 && Number.isFinite(time) ? { time, name: c.slice(i + 1) } : null;
}

const cursorOf = (x: { time: number; name: string }) => `${x.time}~${x.name}`;

/**
 * Which host each destination tag stands for, learnt by opening one message
 * file per tag (names carry the tag, not the origin). Legacy 32-bit tags can
 * collide, so they are never remembered: each such message is opened.
 */
export class Hosts {
  private readonly known = new Map<string, string>();

  /** `budget`: what one request may still open (OPEN_LIMIT each); beyond it the host shows as "?". */
  of(item: { path: string; entry: Entry | null }, budget: { left: number }): string {
    const tag = item.entry?.destination ?? '-';
    const known = this.known.get(tag);
    if (known !== undefined) return known;
    if (budget.left <= 0) return '?';
    budget.left--;
    // Without following links, as every reader of message files (control.ts).
    const host = hostOfUrl(readMessageFile(item.path)?.url);
    if (tag !== '-' && isTrustedTag(tag)) {
      if (this.known.size > 10_000) this.known.clear();
      this.known.set(tag, host);
    }
    return host;
  }
}

function hostOfUrl(url: unknown): string {
  try {
    return typeof url === 'string' ? new URL(url).host : '-';
  } catch {
    return '-';
  }
}

/** Whether a destination filter names this host: host, host:port or origin, as spoolctl replay takes them. */
export function destinationMatches(wanted: string, host: string): boolean {
  const w = wanted.trim().toLowerCase();
  if (w === '') return true;
  const h = host.toLowerCase();
  if (w === h || w === h.replace(/:\d+$/, '')) return true;
  try {
    return new URL(w).host === h;
  } catch {
    return false;
  }
}

/** Walks a queue in order, calling `take` with each item that passes the filter, until it returns false or the scan limit is hit. */
async function walk(spool: Spool, q: Omit<Query, 'limit'>, hosts: Hosts, take: (item: Item, row: Row) => boolean): Promise<{ scanned: number; stoppedAt: Item | null; limited: boolean }> {
  const after = parseCursor(q.after);
  const sign = q.order === 'oldest' ? 1 : -1;
  const cmp = (a: { time: number; name: string }, b: { time: number; name: string }) => sign * (a.time - b.time || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const error = q.error?.trim().toLowerCase();
  const prefix = q.prefix?.trim();
  let scanned = 0;
  const budget = { left: OPEN_LIMIT };
  for (const g of await groups(spool, q.queue, q.order)) {
    // A group wholly on the far side of the cursor has nothing for this page.
    if (after && (sign > 0 ? g.hi <= after.time : g.lo > after.time)) continue;
    const items = await g.read();
    if (q.queue === 'incoming') await Promise.all(items.map(async (i) => (i.time = (await fsp.lstat(i.path).catch(() => null))?.mtimeMs ?? 0)));
    items.sort(cmp);
    // Every name of a group is read, those before the cursor too: that is the cost.
    scanned += items.length;
    for (const item of items) {
      if (after && cmp(item, after) <= 0) continue;
      if (prefix && !item.id.startsWith(prefix)) continue;
      if (q.since !== undefined && item.time < q.since) continue;
      const lastError = item.entry ? describeErrorToken(item.entry.lastError) : null;
      if (error && !(lastError ?? '').toLowerCase().includes(error) && !(item.entry?.lastError ?? '').toLowerCase().includes(error)) continue;
      const destination = hosts.of(item, budget);
      if (q.destination && !destinationMatches(q.destination, destination)) continue;
      const row: Row = { id: item.id, queue: q.queue, name: item.name, time: item.time, arrival: item.entry?.arrival ?? null, attempts: item.entry?.attempts ?? 0, destination, lastError };
      if (!take(item, row)) return { scanned, stoppedAt: item, limited: false };
    }
    if (scanned >= SCAN_LIMIT && items.length > 0) return { scanned, stoppedAt: items.at(-1)!, limited: true };
  }
  return { scanned, stoppedAt: null, limited: false };
}

/** One page of a queue. */
export async function page(spool: Spool, q: Query, hosts: Hosts = new Hosts()): Promise<Page> {
  const rows: Row[] = [];
  const limit = Math.max(1, Math.min(500, q.limit));
  const r = await walk(spool, q, hosts, (_item, row) => {
    rows.push(row);
    return rows.length < limit;
  });
  if (q.queue === 'delivered') {
    // The hour is in the folder; the time of the 2xx is in the record, read for the rows shown only.
    for (const row of rows) {
      const at = attemptsOfDelivery(spool, row).at(-1)?.at;
      if (at !== undefined) row.time = at;
    }
  }
  return { rows, next: r.stoppedAt ? cursorOf(r.stoppedAt) : null, scanned: r.scanned, complete: !r.limited };
}

function attemptsOfDelivery(spool: Spool, row: Row): AttemptRecord[] {
  const base = row.name.slice(0, -'.json'.length);
  const hour = Math.floor(row.time / DELIVERED_BUCKET_MS) * DELIVERED_BUCKET_MS;
  return readAttemptsFile(path.join(spool.dir('delivered'), String(hour), `${base}.attempts.jsonl`));
}

/** The messages a bulk action would act on (at most `max`), as control.ts's actions take them. */
export async function select(spool: Spool, queue: Queue, filter: Filter, max: number): Promise<{ targets: Located[]; complete: boolean }> {
  const targets: Located[] = [];
  let complete = true;
  let after: string | undefined;
  for (;;) {
    const r = await walk(spool, { queue, order: 'oldest', ...filter, after }, new Hosts(), (item) => {
      targets.push({ id: item.id, queue, name: item.name, path: item.path, entry: item.entry });
      return targets.length < max;
    });
    if (!r.limited) {
      if (r.stoppedAt) complete = false;
      return { targets, complete };
    }
    after = cursorOf(r.stoppedAt!);
  }
}

/**
 * Where an id is: each queue looked through by name (deferred/ bucket by
 * bucket), incoming/ by its one possible name, delivered/ by the names a
 * delivery of it can have. No index: on a large deferred/ this reads its
 * names once (see the README's view timings).
 */
export async function find(spool: Spool, id: string): Promise<Located[]> {
  const found: Located[] = [];
  const suffix = `_${id}.json`;
  for (const queue of QUEUES) {
    if (queue === 'incoming') {
      const p = spool.path('incoming', `${id}.json`);
      if (await fsp.lstat(p).then(() => true, () => false)) found.push({ id, queue, name: `${id}.json`, path: p, entry: null });
      continue;
    }
    // Only the names that end with the id are parsed.
    for (const g of await groups(spool, queue, 'oldest', (n) => n.endsWith(suffix))) {
      for (const item of await g.read()) if (item.id === id) found.push({ id, queue, name: item.name, path: item.path, entry: item.entry });
    }
  }
  return found;
}

export interface MessageView {
  id: string;
  queue: Browsable;
  name: string;
  entry: Entry | null;
  destination: string;
  url: string | null;
  method: string;
  headers: Record<string, unknown>;
  /** The body's first KiB, as sent (JSON bodies as JSON text). */
  body: string | null;
  bodyBytes: number;
  /** Why it bounced (bounced/ only). */
  reason: string | null;
  lastError: string | null;
  actions: string[];
}

/** What can be done to a message from where it is. */
export const ACTIONS_BY_QUEUE: Record<Browsable, readonly string[]> = {
  incoming: ['hold', 'delete'],
  active: [],
  deferred: ['flush', 'hold', 'requeue', 'delete'],
  hold: ['release', 'requeue', 'delete'],
  bounced: ['requeue', 'delete'],
  ordered: ['hold'],
  delivered: ['replay'],
};

/** One message as the page shows it: credentials redacted, the body cut at 1 KiB. */
export function view(spool: Spool, m: { id: string; queue: Browsable; name: string; path: string; entry: Entry | null }): MessageView | null {
  const message = readMessageFile(m.path);
  if (!message) return null;
  const safe = redactHeaders(message);
  const raw = message.body === undefined || message.body === null ? null : typeof message.body === 'string' ? message.body : JSON.stringify(message.body);
  const reason = m.queue === 'bounced' ? readReason(spool, { ...m, queue: 'bounced' })?.reason : null;
  return {
    id: m.id,
    queue: m.queue,
    name: m.name,
    entry: m.entry,
    destination: hostOfUrl(message.url),
    url: typeof message.url === 'string' ? message.url : null,
    method: typeof message.method === 'string' ? message.method.toUpperCase() : raw === null ? 'GET' : 'POST',
    headers: (safe.headers as Record<string, unknown> | undefined) ?? {},
    body: raw === null ? null : raw.slice(0, BODY_PREVIEW),
    bodyBytes: raw === null ? 0 : Buffer.byteLength(raw),
    reason: typeof reason === 'string' ? reason : null,
    lastError: m.entry ? describeErrorToken(m.entry.lastError) : null,
    actions: [...ACTIONS_BY_QUEUE[m.queue]],
  };
}

/** Everything the message page shows of an id: each copy in the spool, each kept delivery, and the attempts. */
export async function message(spool: Spool, id: string): Promise<{ id: string; copies: MessageView[]; attempts: AttemptRecord[]; deliveries: { view: MessageView; attempts: AttemptRecord[] }[] }> {
  const copies = (await find(spool, id)).map((m) => view(spool, m)).filter((v): v is MessageView => v !== null);
  const deliveries = findDelivered(spool, id).map((d) => ({ view: view(spool, { id, queue: 'delivered', name: path.basename(d.path), path: d.path, entry: null }), attempts: readAttemptsFile(d.attemptsPath) }));
  return { id, copies, attempts: readAttempts(spool, id), deliveries: deliveries.filter((d): d is { view: MessageView; attempts: AttemptRecord[] } => d.view !== null) };
}
