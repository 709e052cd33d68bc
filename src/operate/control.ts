/**
 * Operator actions on a spool, safe while the daemon runs: each changes a
 * message's state by one rename, so a killed spoolctl leaves every message
 * whole in one queue, and a message the daemon has claimed (active/) is
 * never touched: a rename from a queue the daemon also claims from succeeds
 * for exactly one of the two.
 */
import fs from 'node:fs';
import path from 'node:path';
import { moveIfPresent } from '../spool/claim.js';
import { Spool, streamDir, type Queue } from '../spool/layout.js';
import { moveToIncoming, publish, stage } from '../spool/staging.js';
import { SpoolError } from '../errors.js';
import { readPauses } from '../spool/pauses.js';
import { dropAttemptsSync, findDelivered, readAttempts, readAttemptsFile, walkDelivered, type AttemptRecord } from '../spool/history.js';
import { bucketOf, describeErrorToken, parseActiveName, parseLineName, formatEntry, incomingName, parseBucketName, parseEntry, parseIncomingName, reasonName, TOKENS, type Entry } from '../spool/names.js';

export interface Located {
  id: string;
  queue: Queue;
  name: string;
  path: string;
  /** Parsed name; null in incoming/, where names are just `<id>.json`. */
  entry: Entry | null;
}

/**
 * Told of every message a walk reads (spoolctl's progress on a terminal),
 * with the share of the queue walked when it is known: deferred/ is read
 * bucket by bucket, and the number of buckets is known from the start.
 */
let onWalk: ((queue: Queue, fraction: number | null) => void) | null = null;
let walkedShare: number | null = null;
export function reportWalks(report: ((queue: Queue, fraction: number | null) => void) | null): void {
  onWalk = report;
}

/** The messages of one queue, from names alone (deferred/ in bucket order). */
export function* walkQueue(spool: Spool, queue: Queue): Generator<Located> {
  walkedShare = null;
  for (const m of walkNames(spool, queue)) {
    onWalk?.(queue, walkedShare);
    yield m;
  }
}

function* walkNames(spool: Spool, queue: Queue): Generator<Located> {
  if (queue === 'incoming') {
    for (const d of streamDir(spool.dir('incoming'))) {
      const id = parseIncomingName(d.name);
      if (id) yield { id, queue, name: d.name, path: spool.path('incoming', d.name), entry: null };
    }
    return;
  }
  if (queue === 'deferred') {
    const buckets: number[] = [];
    for (const d of fs.readdirSync(spool.dir('deferred'), { withFileTypes: true })) {
      const start = parseBucketName(d.name);
      if (d.isDirectory() && start !== null) buckets.push(start);
      const entry = d.isFile() ? parseEntry(d.name) : null;
      if (entry) yield { id: entry.id, queue, name: d.name, path: spool.path('deferred', d.name), entry };
    }
    buckets.sort((a, b) => a - b);
    for (const [i, start] of buckets.entries()) {
      walkedShare = i / buckets.length;
      const dir = spool.bucketDir(start);
      for (const d of streamDir(dir)) {
        const entry = parseEntry(d.name);
        if (entry) yield { id: entry.id, queue, name: d.name, path: path.join(dir, d.name), entry };
      }
    }
    return;
  }
  if (queue === 'ordered') {
    // One line per ordering key; names sort in arrival order within it.
    for (const line of streamDir(spool.dir('ordered'))) {
      if (!line.isDirectory()) continue;
      const dir = path.join(spool.dir('ordered'), line.name);
      for (const d of streamDir(dir)) {
        const entry = parseLineName(d.name)?.entry;
        if (entry) yield { id: entry.id, queue, name: d.name, path: path.join(dir, d.name), entry };
      }
    }
    return;
  }
  for (const d of streamDir(spool.dir(queue))) {
    // In a shared spool, active/ names start with their owner's id.
    const entry = queue === 'active' ? (parseActiveName(d.name)?.entry ?? null) : parseEntry(d.name);
    if (entry) yield { id: entry.id, queue, name: d.name, path: spool.path(queue, d.name), entry };
  }
}

export const LIST_ORDER: readonly Queue[] = ['active', 'incoming', 'deferred', 'ordered', 'hold', 'bounced'];

/** The earliest arrival of a message in the spool (names only; Infinity: none has one), or one at or below `floor` as soon as it is seen. */
export function oldestArrival(spool: Spool, floor = -Infinity): number {
  let oldest = Infinity;
  for (const queue of LIST_ORDER) {
    for (const m of walkNames(spool, queue)) {
      if (m.entry && m.entry.arrival < oldest) oldest = m.entry.arrival;
      if (oldest <= floor) return oldest;
    }
  }
  return oldest;
}

export function locate(spool: Spool, id: string, queues: readonly Queue[] = LIST_ORDER): Located[] {
  const found: Located[] = [];
  for (const queue of queues) {
    if (queue === 'incoming') {
      const p = spool.path('incoming', incomingName(id));
      if (fs.existsSync(p)) found.push({ id, queue, name: incomingName(id), path: p, entry: null });
      continue;
    }
    for (const m of walkQueue(spool, queue)) if (m.id === id) found.push(m);
  }
  return found;
}

/** Reads a message file without following links; null when it cannot be read as one. */
export function readMessageFile(file: string, maxBytes = 16 * 1024 * 1024): Record<string, unknown> | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return null;
    const value: unknown = JSON.parse(fs.readFileSync(fd, 'utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

export function readReason(spool: Spool, m: Located): Record<string, unknown> | null {
  return m.queue === 'bounced' ? readMessageFile(spool.path('bounced', reasonName(m.name))) : null;
}

export interface Listed {
  id: string;
  queue: Queue;
  attempts: number;
  /** Epoch ms; null unless deferred. */
  nextAttemptAt: number | null;
  url: string | null;
  lastError: string | null;
  /** Epoch ms the daemon first claimed it (a scheduled message: its scheduled time); null while still in incoming/. */
  arrivedAt: number | null;
  /** Waiting for its scheduled first delivery: nextAttemptAt is that time. */
  scheduled: boolean;
}

export function describe(m: Located, message: Record<string, unknown> | null): Listed {
  const scheduled = m.entry?.lastError === TOKENS.scheduled && m.entry.attempts === 0;
  return {
    id: m.id,
    queue: m.queue,
    attempts: m.entry?.attempts ?? 0,
    nextAttemptAt: m.queue === 'deferred' && m.entry ? m.entry.time : null,
    url: typeof message?.url === 'string' ? message.url : null,
    lastError: m.entry && !scheduled ? describeErrorToken(m.entry.lastError) : null,
    arrivedAt: m.entry?.arrival ?? null,
    scheduled,
  };
}

/** What `spoolctl history` prints: where a message is (or was kept), and its attempts. */
export interface History {
  id: string;
  queue: Queue | 'delivered';
  attempts: AttemptRecord[];
}

/**
 * Every copy of an id: queued or bounced ones first (their attempts so far,
 * from attempts/), then the deliveries kept in delivered/, newest first.
 */
export function history(spool: Spool, id: string): History[] {
  const found: History[] = locate(spool, id).map((m) => ({ id, queue: m.queue, attempts: readAttempts(spool, id) }));
  for (const d of findDelivered(spool, id)) found.push({ id, queue: 'delivered', attempts: readAttemptsFile(d.attemptsPath) });
  return found;
}

/** A kept delivery as `spoolctl list --queue delivered` shows it. */
export interface ListedDelivery {
  id: string;
  queue: 'delivered';
  attempts: number;
  /** Epoch ms of the 2xx. */
  deliveredAt: number | null;
  url: string | null;
  status: number | null;
}

export function* walkDeliveries(spool: Spool): Generator<ListedDelivery> {
  for (const d of walkDelivered(spool)) {
    const attempts = readAttemptsFile(d.attemptsPath);
    const last = attempts.at(-1);
    const url = readMessageFile(d.path)?.url;
    yield { id: d.id, queue: 'delivered', attempts: attempts.length, deliveredAt: last?.at ?? null, url: typeof url === 'string' ? url : null, status: last && 'status' in last ? last.status : null };
  }
}

/** What `spoolctl replay --destination` selects: kept deliveries and bounces of one destination, in a time range. */
export interface ReplaySelection {
  /** A host, host:port or origin, as in the message's URL. */
  destination: string;
  /** Epoch ms: delivered or bounced at or after this. */
  since: number;
  until: number;
}

function ofDestination(url: unknown, destination: string): boolean {
  if (typeof url !== 'string') return false;
  try {
    const u = new URL(url);
    return destination === u.host || destination === u.hostname || destination === u.origin;
  } catch {
    return false;
  }
}

/** The ids a selection names: kept deliveries by the time of their 2xx, bounces by theirs. */
export function selectForReplay(spool: Spool, sel: ReplaySelection): string[] {
  const ids = new Set<string>();
  for (const d of walkDeliveries(spool)) {
    if (d.deliveredAt !== null && d.deliveredAt >= sel.since && d.deliveredAt < sel.until && ofDestination(d.url, sel.destination)) ids.add(d.id);
  }
  for (const m of walkQueue(spool, 'bounced')) {
    const at = m.entry?.time ?? 0;
    if (at >= sel.since && at < sel.until && ofDestination(readMessageFile(m.path)?.url, sel.destination)) ids.add(m.id);
  }
  return [...ids];
}

/**
 * Sends delivered (kept) or bounced messages again, for a fresh delivery: a
 * new attempt series under the same id (so the same Idempotency-Key: a
 * receiver that drops repeats sees it once). A kept delivery is copied into
 * incoming/ (staged and fsynced in tmp/, then linked in, never over a
 * message there), so its record and attempts stay in delivered/ as they
 * were, and the new delivery, kept too, sits beside it as <id>@2. A bounced
 * one is requeued (its attempts go on in attempts/). Refused for an id that
 * is still queued: it has not finished.
 */
export async function replay(spool: Spool, ids: readonly string[], newId: (() => string) | null = null): Promise<ReplayResult> {
  const r: ReplayResult = { ...result(), renamed: {} };
  for (const id of ids) {
    const queued = locate(spool, id, LIST_ORDER.filter((q) => q !== 'bounced'));
    if (queued.length > 0) {
      r.refused.push({ id, reason: `still queued in ${queued[0]!.queue}/: it has not finished` });
      continue;
    }
    const bounced = locate(spool, id, ['bounced'])[0];
    if (bounced && newId === null) {
      const back = requeue(spool, [id], ['bounced']);
      r.done.push(...back.done);
      r.refused.push(...back.refused);
      continue;
    }
    const source = bounced?.path ?? findDelivered(spool, id)[0]?.path;
    if (!source) {
      r.missing.push(id);
      continue;
    }
    const as = newId?.() ?? id;
    const staged = await stage(spool, as, fs.readFileSync(source));
    try {
      publish(spool, staged, as);
    } catch (err) {
      fs.rmSync(staged, { force: true });
      if (!(err instanceof SpoolError) || err.code !== 'SPOOL_ERR_EXISTS') throw err;
      r.refused.push({ id, reason: 'a message with this id arrived in incoming/ meanwhile' });
      continue;
    }
    // Its copy is in incoming/ (fsynced): the bounced original goes, so that it is not sent twice by a later requeue.
    if (bounced) remove(spool, [bounced]);
    r.done.push(id);
    if (as !== id) r.renamed[id] = as;
  }
  return r;
}

export interface ReplayResult extends ActionResult {
  /** With --new-id: the id each replayed message was given. */
  renamed: Record<string, string>;
}

export interface ActionResult {
  done: string[];
  /** Ids not found in the queues the action applies to. */
  missing: string[];
  /** Ids that could not be moved now, with the reason (e.g. being delivered). */
  refused: { id: string; reason: string }[];
}

function result(): ActionResult {
  return { done: [], missing: [], refused: [] };
}

/**
 * Makes deferred messages due now (postqueue -f): all of them, or the named
 * ones. Attempts and last error are kept.
 */
export function flush(spool: Spool, ids?: readonly string[], now: number = Date.now()): ActionResult {
  const wanted = ids ? new Set(ids) : null;
  const seen = new Set<string>();
  const targets: Located[] = [];
  for (const m of walkQueue(spool, 'deferred')) {
    if (wanted && !wanted.has(m.id)) continue;
    seen.add(m.id);
    targets.push(m);
  }
  const r = flushTargets(spool, targets, now);
  if (wanted) for (const id of wanted) if (!seen.has(id)) noteAbsent(spool, id, r, ['ordered'], WAITS_IN_LINE);
  return r;
}

/** flush, for deferred messages already found (the status page's bulk actions). */
export function flushTargets(spool: Spool, targets: readonly Located[], now: number = Date.now()): ActionResult {
  const r = result();
  const dir = spool.bucketDir(bucketOf(now));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const m of targets) {
    if (m.queue !== 'deferred' || !m.entry) {
      r.refused.push({ id: m.id, reason: `it is in ${m.queue}/: only deferred messages are flushed` });
      continue;
    }
    if (m.entry.time <= now) {
      r.done.push(m.id);
      continue;
    }
    const due: Entry = { ...m.entry, time: now };
    if (moveIfPresent(m.path, path.join(dir, formatEntry(due)))) r.done.push(m.id);
    else r.refused.push({ id: m.id, reason: 'claimed by the daemon meanwhile' });
  }
  return r;
}

/** Why a message in an ordering line is not flushed or requeued: it is not late, it waits its turn. */
const WAITS_IN_LINE = 'waits in ordered/ behind an older message of its orderingKey (it goes when that one is delivered or bounced; hold sets it aside)';

/** Removes a bounced message's reason record once the message has left. */
function dropSideRecord(spool: Spool, m: Located): void {
  if (m.queue === 'bounced') fs.rmSync(spool.path('bounced', reasonName(m.name)), { force: true });
}

/**
 * Back to incoming/ for a fresh delivery: attempts and age start again
 * (postsuper -r). From bounced/, deferred/ or hold/; never from active/.
 */
export function requeue(spool: Spool, ids: readonly string[] | 'all', queues: readonly Queue[] = ['bounced', 'deferred', 'hold']): ActionResult {
  const r = result();
  const targets: Located[] = [];
  if (ids === 'all') {
    for (const q of queues) targets.push(...walkQueue(spool, q));
  } else {
    for (const id of ids) {
      const found = locate(spool, id, queues);
      if (found.length === 0) noteAbsent(spool, id, r, ['ordered'], WAITS_IN_LINE);
      targets.push(...found);
    }
  }
  return merge(r, requeueTargets(spool, targets));
}

/** requeue, for messages already found. */
export function requeueTargets(spool: Spool, targets: readonly Located[]): ActionResult {
  const r = result();
  for (const m of targets) {
    if (m.queue !== 'bounced' && m.queue !== 'deferred' && m.queue !== 'hold') {
      r.refused.push({ id: m.id, reason: `it is in ${m.queue}/: only bounced, deferred and held messages are requeued` });
      continue;
    }
    // Never in place of a fresh message with the same id (see staging.ts).
    const moved = moveToIncoming(spool, m.path, m.id);
    if (moved === 'moved') {
      dropSideRecord(spool, m);
      r.done.push(m.id);
    } else {
      r.refused.push({ id: m.id, reason: moved === 'taken' ? 'a message with this id is already in incoming/' : 'claimed by the daemon meanwhile' });
    }
  }
  return r;
}

function merge(into: ActionResult, more: ActionResult): ActionResult {
  into.done.push(...more.done);
  into.missing.push(...more.missing);
  into.refused.push(...more.refused);
  return into;
}

/**
 * Sets messages aside in hold/, where the daemon never looks (postsuper -h).
 * From incoming/, deferred/ or an ordering line; a held message keeps its
 * attempts. Taken out of its line, a message leaves its key's order: released,
 * it joins the line again by its write time, behind whatever is out by then.
 */
export function hold(spool: Spool, ids: readonly string[], now: number = Date.now()): ActionResult {
  const r = result();
  for (const id of ids) {
    const found = locate(spool, id, ['incoming', 'deferred', 'ordered']);
    if (found.length === 0) {
      noteAbsent(spool, id, r, ['hold'], 'already held');
      continue;
    }
    merge(r, holdTargets(spool, found, now));
  }
  return r;
}

/** hold, for messages already found. */
export function holdTargets(spool: Spool, targets: readonly Located[], now: number = Date.now()): ActionResult {
  const r = result();
  for (const m of targets) {
    if (m.queue !== 'incoming' && m.queue !== 'deferred' && m.queue !== 'ordered') {
      r.refused.push({ id: m.id, reason: `it is in ${m.queue}/: only incoming, deferred and ordered messages are held` });
      continue;
    }
    const entry: Entry = m.entry ?? { id: m.id, time: now, attempts: 0, arrival: now, destination: '-', lastError: '-' };
    if (moveIfPresent(m.path, spool.path('hold', formatEntry(entry)))) r.done.push(m.id);
    else r.refused.push({ id: m.id, reason: 'claimed by the daemon meanwhile' });
  }
  return r;
}

/** Lets held messages go (postsuper -H): due now, attempts kept. */
export function release(spool: Spool, ids: readonly string[] | 'all', now: number = Date.now()): ActionResult {
  const r = result();
  const targets = ids === 'all' ? [...walkQueue(spool, 'hold')] : ids.flatMap((id) => {
    const found = locate(spool, id, ['hold']);
    if (found.length === 0) noteAbsent(spool, id, r);
    return found;
  });
  return merge(r, releaseTargets(spool, targets, now));
}

/** release, for held messages already found. */
export function releaseTargets(spool: Spool, targets: readonly Located[], now: number = Date.now()): ActionResult {
  const r = result();
  const dir = spool.bucketDir(bucketOf(now));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const m of targets) {
    if (m.queue !== 'hold' || !m.entry) {
      r.refused.push({ id: m.id, reason: `it is in ${m.queue}/: only held messages are released` });
      continue;
    }
    if (moveIfPresent(m.path, path.join(dir, formatEntry({ ...m.entry, time: now })))) r.done.push(m.id);
    else r.missing.push(m.id);
  }
  return r;
}

/** Removes messages for good (postsuper -d); never one the daemon has claimed. */
export function remove(spool: Spool, targets: readonly Located[]): ActionResult {
  const r = result();
  for (const m of targets) {
    if (m.queue === 'active') {
      r.refused.push({ id: m.id, reason: 'being delivered right now (active/)' });
      continue;
    }
    try {
      // rm, not unlink: a directory bounced because it was named like a message goes too.
      if (!fs.existsSync(m.path) && !isLink(m.path)) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      fs.rmSync(m.path, { recursive: true });
      dropSideRecord(spool, m);
      // Its history goes with it.
      dropAttemptsSync(spool, m.id);
      r.done.push(m.id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      r.refused.push({ id: m.id, reason: 'claimed by the daemon meanwhile' });
    }
  }
  return r;
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Sorts an id not found where wanted into "in flight", "elsewhere" or "missing". */
function noteAbsent(spool: Spool, id: string, r: ActionResult, elsewhere: readonly Queue[] = [], why = ''): void {
  if (locate(spool, id, ['active']).length > 0) r.refused.push({ id, reason: 'being delivered right now (active/)' });
  else if (elsewhere.length > 0 && locate(spool, id, elsewhere).length > 0) r.refused.push({ id, reason: why });
  else {
    // Not where this action looks, but in the spool: say where, and what moves it from there.
    const found = locate(spool, id)[0];
    if (found) r.refused.push({ id, reason: `it is in ${found.queue}/${ELSEWHERE_HINT[found.queue]}` });
    else r.missing.push(id);
  }
}

const ELSEWHERE_HINT: Record<Queue, string> = {
  incoming: ', not yet claimed: the daemon takes it at once',
  active: ', being delivered right now',
  deferred: ', waiting for its next attempt (flush makes it due now)',
  hold: ' (release lets it go)',
  bounced: ' (requeue sends it again)',
  ordered: ': it waits behind an older message of its orderingKey',
};

/**
 * Names carry a destination tag, not the origin: the origin is read from one
 * message file per tag, so listing and shaping 100,000 messages opens a
 * handful of files, not 100,000.
 */
export class Destinations {
  private readonly origins = new Map<string, string>();

  of(m: Located): string {
    const tag = m.entry?.destination ?? '-';
    const known = tag === '-' ? undefined : this.origins.get(tag);
    if (known !== undefined) return known;
    const url = readMessageFile(m.path)?.url;
    let origin = '-';
    try {
      if (typeof url === 'string') origin = new URL(url).host;
    } catch {
      /* not a URL: shown as "-" */
    }
    if (tag !== '-') this.origins.set(tag, origin);
    return origin;
  }
}

/** qshape's buckets: minutes of age, doubling. */
export const AGE_BUCKETS_MIN = [5, 10, 20, 40, 80, 160, 320];

export interface Shape {
  queue: Queue;
  buckets: string[];
  /** Destination → count per age bucket (the last one is "older"). */
  rows: { destination: string; total: number; counts: number[] }[];
}

/** One row of the daemon's destination table, as it wrote it (see queue/queue-manager.ts DestinationReport). */
export interface DestinationState {
  origin: string;
  state: string;
  window: number;
  limit: number;
  inFlight: number;
  waiting: number;
  failures: number;
  until: string | null;
  lastError: string | null;
}

export interface Stats {
  counts: Record<Queue, number>;
  shapes: Shape[];
  /** The destinations the running daemon holds work or state for: window, in flight, waiting. */
  destinations: DestinationState[];
  /** Those it holds back (dead, or being probed); every other one is ok. */
  dead: DestinationState[];
  /** Destination patterns paused by an operator (spoolctl pause), with since when (epoch ms). */
  paused: { pattern: string; since: number }[];
}

/** What the running daemon last wrote about its destinations (see service/daemon.ts); none when it wrote nothing. */
export function destinationStates(spool: Spool): DestinationState[] {
  const state = readMessageFile(spool.destinationStatePath);
  return Array.isArray(state?.destinations) ? (state.destinations as DestinationState[]) : [];
}

export function stats(spool: Spool, now: number = Date.now()): Stats {
  const counts = Object.fromEntries(LIST_ORDER.map((q) => [q, 0])) as Record<Queue, number>;
  const destinations = new Destinations();
  const shapes: Shape[] = [];
  const labels = [...AGE_BUCKETS_MIN.map((m) => `${m}m`), `${AGE_BUCKETS_MIN.at(-1)}m+`];
  for (const queue of LIST_ORDER) {
    const byDest = new Map<string, number[]>();
    for (const m of walkQueue(spool, queue)) {
      counts[queue]++;
      if (queue !== 'deferred' && queue !== 'bounced') continue;
      const ageMin = (now - m.entry!.arrival) / 60_000;
      let b = AGE_BUCKETS_MIN.findIndex((limit) => ageMin < limit);
      if (b < 0) b = AGE_BUCKETS_MIN.length;
      const dest = destinations.of(m);
      const row = byDest.get(dest) ?? new Array<number>(labels.length).fill(0);
      row[b]!++;
      byDest.set(dest, row);
    }
    if (queue === 'deferred' || queue === 'bounced') {
      const rows = [...byDest].map(([destination, c]) => ({ destination, total: c.reduce((a, b) => a + b, 0), counts: c }));
      rows.sort((a, b) => b.total - a.total || a.destination.localeCompare(b.destination));
      shapes.push({ queue, buckets: labels, rows });
    }
  }
  const held = destinationStates(spool);
  const paused = readPauses(spool)
    .filter((p) => p.until === null)
    .map(({ pattern, since }) => ({ pattern, since }));
  return { counts, shapes, destinations: held, dead: held.filter((d) => d.state === 'dead' || d.state === 'probing'), paused };
}

/** Header names whose values are credentials: hidden unless asked for. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie)$|api[-_]?key|token|secret|password|signature|session|auth/i;

export function redactHeaders(message: Record<string, unknown>): Record<string, unknown> {
  const headers = message.headers;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return message;
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) safe[k] = CREDENTIAL_HEADER.test(k) ? '[redacted]' : v;
  return { ...message, headers: safe };
}

export function openSpool(dir: string): Spool {
  const spool = new Spool(dir);
  spool.check();
  return spool;
}
