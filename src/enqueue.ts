/**
 * The producer's side: put a message into incoming/ so that it is complete
 * under its final name or not there at all, and durable before the id is
 * returned.
 *
 * Each message is written whole and fsynced under a private name in tmp/
 * (same file system: the layout guarantees it), renamed into incoming/, and
 * incoming/ itself is fsynced before the id is returned; without that last
 * step the new entry could vanish in a power cut.
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
import fsp from 'node:fs/promises';
import { Spool } from './layout.js';
import { validateMessage } from './message.js';
import { incomingName, isValidId } from './names.js';

export interface MessageInput {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  maxAttempts?: number;
  expiresAt?: number | string;
  maxAge?: number | string;
  timeout?: number | string;
  meta?: unknown;
}

export interface EnqueueOptions {
  /** Spool directory (default: $SPOOL_DIR, else ./spool). */
  spool?: string;
  /** The message id (default: a new time-ordered unique id). Also its Idempotency-Key. */
  id?: string;
}

export class EnqueueError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'EnqueueError';
  }
}

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

export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const fsyncFd = (fd: number) => new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));

/**
 * Writes one message durably under a private name in tmp/ and returns that
 * name, ready to be renamed into incoming/. Open, write and close are
 * synchronous (tens of µs, where a thread-pool round trip costs more); only
 * the fsync, which waits on the device, goes to the thread pool, so parallel
 * writers still overlap their fsyncs. A failed write leaves nothing behind.
 */
async function stage(spool: Spool, id: string, data: string): Promise<string> {
  const file = spool.path('tmp', `${incomingName(id)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeSync(fd, data);
    await fsyncFd(fd);
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
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

function checked(message: MessageInput, id: string | undefined, spool: Spool): { id: string; target: string } {
  const v = validateMessage(message);
  if (!v.ok) throw new EnqueueError(`invalid message: ${v.reason}`, 'SPOOL_ERR_BAD_MESSAGE');
  const mid = id ?? newMessageId();
  if (!isValidId(mid)) throw new EnqueueError(`invalid id ${JSON.stringify(mid)}: letters, digits, '-', '_', '.', at most 128`, 'SPOOL_ERR_BAD_ID');
  const target = spool.path('incoming', incomingName(mid));
  // A rename would silently replace a message still waiting under this id.
  if (fs.existsSync(target)) throw new EnqueueError(`message ${mid} is already in incoming/`, 'SPOOL_ERR_EXISTS');
  return { id: mid, target };
}

function openSpoolFor(options: EnqueueOptions): Spool {
  const spool = new Spool(options.spool ?? process.env.SPOOL_DIR ?? './spool');
  if (!fs.existsSync(spool.dir('incoming'))) throw new EnqueueError(`${spool.root} is not a spool (no incoming/)`, 'SPOOL_ERR_NOT_A_SPOOL');
  return spool;
}

/**
 * Validates the message, writes it durably into `<spool>/incoming/<id>.json`
 * and returns the id. Throws EnqueueError for an invalid message, an invalid
 * or taken id, or a missing spool; nothing is written then.
 *
 * Durable on return: the file is fsynced in tmp/, renamed into incoming/,
 * then incoming/ is fsynced (shared with concurrent calls, see syncDirectory).
 */
export async function enqueue(message: MessageInput, options: EnqueueOptions = {}): Promise<string> {
  const spool = openSpoolFor(options);
  const { id, target } = checked(message, options.id, spool);
  const staged = await stage(spool, id, JSON.stringify(message) + '\n');
  fs.renameSync(staged, target);
  await syncDirectory(spool.dir('incoming'));
  return id;
}

/**
 * Many messages at once, durability amortized: every message is checked
 * before anything is written; the files are written and fsynced in tmp/ in
 * parallel, renamed into incoming/ one by one, and incoming/ is fsynced once.
 * Returns the ids, in order, once all of them are durable. A crash half-way
 * leaves some messages in incoming/ (each complete) and stray files in tmp/,
 * never a partial message.
 */
export async function enqueueMany(items: readonly { message: MessageInput; id?: string }[], options: Omit<EnqueueOptions, 'id'> = {}): Promise<string[]> {
  const spool = openSpoolFor(options);
  const planned = items.map((item) => checked(item.message, item.id, spool));
  const seen = new Set<string>();
  for (const p of planned) {
    if (seen.has(p.id)) throw new EnqueueError(`id ${p.id} is given twice`, 'SPOOL_ERR_EXISTS');
    seen.add(p.id);
  }
  const staged = await Promise.all(planned.map((p, i) => stage(spool, p.id, JSON.stringify(items[i]!.message) + '\n')));
  for (let i = 0; i < planned.length; i++) fs.renameSync(staged[i]!, planned[i]!.target);
  await syncDirectory(spool.dir('incoming'));
  return planned.map((p) => p.id);
}
