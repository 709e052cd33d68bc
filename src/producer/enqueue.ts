/**
 * The producer's side: put a message into incoming/ so that it is complete
 * under its final name or not there at all, durable before the id is
 * returned, and never in place of another message (see staging.ts).
 *
 * Each message is written whole and fsynced under a private name in tmp/
 * (same file system: the layout guarantees it), linked into incoming/ (which
 * fails if the id is taken there, where a rename would replace), and
 * incoming/ itself is fsynced before the id is returned; without that last
 * step the new entry could vanish in a power cut.
 *
 * An id is unique in incoming/, atomically: of two producers racing with one
 * id, exactly one is told SPOOL_ERR_EXISTS, and both messages stay whole. An
 * id that has left incoming/ (claimed, deferred, held, bounced) is not looked
 * for: that would read the whole backlog per message. A message enqueued
 * again under such an id is a second message; both are delivered, with the
 * same Idempotency-Key, so a receiver that drops repeats sees it once.
 *
 * Not write-file-atomic here (it replaces files in place, as leases do): per
 * call it resolves the real path, stats the target, then opens, writes,
 * fsyncs, closes, chmods, renames and unlinks through the thread pool. On the
 * 2-core machines this is measured on, that doubled the producer's CPU per
 * message (1,643 vs 810 CPU-ms per 1,000 at 500 msgs/s) and took the p99
 * drop-to-request latency from 12 to 50 ms.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { SpoolError } from '../errors.js';
import { Spool } from '../spool/layout.js';
import { validateMessage } from '../delivery/message.js';
import { incomingName, isValidId } from '../spool/names.js';
import { fsyncFd, publish, stage } from '../spool/staging.js';

export interface MessageInput {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  maxAttempts?: number;
  expiresAt?: number | string;
  maxAge?: number | string;
  timeout?: number | string;
  /** Messages with the same key are delivered one at a time, in the order they were written. */
  orderingKey?: string;
  /** Not sent before this time: epoch ms or ISO 8601. */
  deliverAt?: number | string;
  /** Not sent before this long from now: ms or a duration ("10m"). Written as "deliverAt". */
  delay?: number | string;
  meta?: unknown;
}

export interface EnqueueOptions {
  /** Spool directory (default: $SPOOL_DIR, else ./spool). */
  spool?: string;
  /** The message id (default: a new time-ordered unique id). Also its Idempotency-Key. */
  id?: string;
}

/** The library's errors are the catalogue's (errors.ts); the name is kept for callers of 0.1. */
export { SpoolError as EnqueueError };

let lastIdTime = 0;
let idCounter = 0;

/**
 * Time-ordered, unique without coordination: ms since epoch, a counter within
 * the millisecond (so one process's ids sort in the order it made them: that
 * orders messages of one orderingKey written within one file-time tick), and
 * 48 random bits.
 */
export function newMessageId(now: number = Date.now()): string {
  idCounter = now === lastIdTime ? idCounter + 1 : 0;
  lastIdTime = now;
  return `${now.toString(36).padStart(9, '0')}-${idCounter.toString(36).padStart(3, '0')}-${randomBytes(6).toString('hex')}`;
}

/**
 * Open and close are synchronous (a few µs each on a directory); only the
 * fsync, which waits on the device, goes to the thread pool. Each thread-pool
 * round trip wakes a worker and then the event loop: at a few hundred
 * messages a second, where every enqueue() runs alone, fsp.open + sync +
 * close were three of them per message.
 */
async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Group commit of directory fsyncs: a caller waits for an fsync that started
 * after its rename, but concurrent callers share one. A hundred parallel
 * enqueues pay for a few directory fsyncs, not a hundred.
 */
const dirSyncs = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();
function syncDirectory(dir: string): Promise<void> {
  let s = dirSyncs.get(dir);
  if (!s) dirSyncs.set(dir, (s = { running: null, next: null }));
  const state = s;
  if (state.next) return state.next;
  const start = (): Promise<void> => {
    const p = fsyncDirectoryAsync(dir).finally(() => {
      if (state.running === p) state.running = null;
    });
    state.running = p;
    return p;
  };
  if (!state.running) return start();
  const next = state.running.then(
    () => {
      state.next = null;
      return start();
    },
    () => {
      state.next = null;
      return start();
    },
  );
  state.next = next;
  return next;
}

/**
 * The message as written: a delay becomes the time it ends ("deliverAt"),
 * fixed now, so the schedule does not depend on the file's mtime later.
 */
function toWrite(message: MessageInput, now: number): MessageInput {
  if (message.delay === undefined || message.deliverAt !== undefined) return message;
  const v = validateMessage(message);
  if (!v.ok || v.message.delay === undefined) return message;
  const { delay: _delay, ...rest } = message;
  return { ...rest, deliverAt: new Date(now + v.message.delay).toISOString() };
}

function checked(message: MessageInput, id: string | undefined, spool: Spool): string {
  const v = validateMessage(message);
  if (!v.ok) throw new SpoolError(`invalid message: ${v.reason}`, 'SPOOL_ERR_BAD_MESSAGE');
  if (id === undefined) return newMessageId();
  if (!isValidId(id)) throw new SpoolError(`invalid id ${JSON.stringify(id)}: letters, digits, '-', '_', '.', at most 128`, 'SPOOL_ERR_BAD_ID');
  // Early and cheap only: publish() is what makes the id unique. A new id
  // (48 random bits beside the time) is not looked for.
  if (fs.existsSync(spool.path('incoming', incomingName(id)))) throw new SpoolError(`message ${id} is already in incoming/`, 'SPOOL_ERR_EXISTS');
  return id;
}

/** The spool of the last call: a producer names the same spool each time, and resolving it again cost 16 µs a message. */
let lastSpool: { given: string; cwd: string; spool: Spool } | null = null;

function openSpoolFor(options: EnqueueOptions): Spool {
  const given = options.spool ?? process.env.SPOOL_DIR ?? './spool';
  const cwd = process.cwd();
  if (lastSpool?.given !== given || lastSpool.cwd !== cwd) lastSpool = { given, cwd, spool: new Spool(given) };
  const { spool } = lastSpool;
  if (!fs.existsSync(spool.dir('incoming'))) throw new SpoolError(`${spool.root} is not a spool (no incoming/)`, 'SPOOL_ERR_NOT_A_SPOOL');
  return spool;
}

/**
 * Validates the message, writes it durably into `<spool>/incoming/<id>.json`
 * and returns the id. Throws SpoolError for an invalid message, an invalid
 * or taken id, a missing spool, or a write the file system refused (full,
 * read-only: SPOOL_ERR_IO, the errno as its cause); nothing is written then.
 *
 * Durable on return: the file is fsynced in tmp/, linked into incoming/,
 * then incoming/ is fsynced (shared with concurrent calls, see syncDirectory).
 */
export async function enqueue(message: MessageInput, options: EnqueueOptions = {}): Promise<string> {
  const spool = openSpoolFor(options);
  message = toWrite(message, Date.now());
  const id = checked(message, options.id, spool);
  const staged = await stage(spool, id, JSON.stringify(message) + '\n');
  publish(spool, staged, id);
  await syncDirectory(spool.dir('incoming'));
  return id;
}

/**
 * Many messages at once, durability amortized: every message is checked
 * before anything is written; the files are written and fsynced in tmp/ in
 * parallel, linked into incoming/ one by one, and incoming/ is fsynced once.
 * Returns the ids, in order, once all of them are durable.
 *
 * A failure before the first link (an invalid message, a full disk) writes
 * nothing. An id taken by a concurrent producer at the last step fails that
 * message alone: the others are published and made durable, and the
 * SPOOL_ERR_EXISTS error lists them in `published`. A crash half-way leaves
 * some messages in incoming/ (each complete), never a partial one.
 */
export async function enqueueMany(items: readonly { message: MessageInput; id?: string }[], options: Omit<EnqueueOptions, 'id'> = {}): Promise<string[]> {
  const spool = openSpoolFor(options);
  const now = Date.now();
  items = items.map((item) => ({ ...item, message: toWrite(item.message, now) }));
  const ids = items.map((item) => checked(item.message, item.id, spool));
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new SpoolError(`id ${id} is given twice`, 'SPOOL_ERR_EXISTS');
    seen.add(id);
  }
  const results = await Promise.allSettled(ids.map((id, i) => stage(spool, id, JSON.stringify(items[i]!.message) + '\n')));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    for (const r of results) if (r.status === 'fulfilled') fs.rmSync(r.value, { force: true });
    throw failed.reason;
  }
  const staged = results.map((r) => (r as PromiseFulfilledResult<string>).value);
  const published: string[] = [];
  let taken: SpoolError | null = null;
  for (let i = 0; i < ids.length; i++) {
    try {
      publish(spool, staged[i]!, ids[i]!);
      published.push(ids[i]!);
    } catch (err) {
      if (!(err instanceof SpoolError) || err.code !== 'SPOOL_ERR_EXISTS') {
        for (const rest of staged.slice(i + 1)) fs.rmSync(rest, { force: true });
        if (published.length > 0) await syncDirectory(spool.dir('incoming'));
        throw Object.assign(err as Error, { published });
      }
      taken ??= err;
    }
  }
  await syncDirectory(spool.dir('incoming'));
  if (taken) throw Object.assign(taken, { published });
  return ids;
}
