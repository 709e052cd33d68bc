/**
 * The spool layout: one folder per queue, defined here and nowhere else.
 *
 *   incoming/  complete messages dropped by producers (by rename)
 *   active/    claimed by the daemon, a request may be in flight
 *   deferred/  waiting for their next attempt, in time buckets
 *   hold/      set aside by an operator; the daemon never touches them
 *   bounced/   permanent failures, each with a `.reason` side record
 *   ordered/   messages with an orderingKey waiting behind an older one of their
 *              key: ordered/<key tag>/<sequence>+<name>, and <key tag>/.head
 *   tmp/       producers' staging area (write here, then rename into incoming/)
 *   leases/    one heartbeat file per daemon sharing the spool (--shared)
 *   notices/   bounce notices not sent yet (see notices.ts)
 *   attempts/  the attempt history of messages still in the spool (history.ts)
 *   delivered/ delivered messages kept for --keep-delivered, in hour buckets
 *              (history.ts); not a queue: the daemon never claims from it
 *   paused/    one file per paused destination pattern (pauses.ts)
 *
 * Every state change is a rename between these folders, which is atomic only
 * within one file system: start-up refuses a spool whose folders straddle two.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, SpoolError } from '../errors.js';
import { bucketOf } from './names.js';

export const QUEUES = ['incoming', 'active', 'deferred', 'hold', 'bounced', 'ordered'] as const;
/** The queues every spool has had from the start (ordered/ came later and is made at the next daemon start). */
const CORE_QUEUES: readonly Queue[] = ['incoming', 'active', 'deferred', 'hold', 'bounced'];
export type Queue = (typeof QUEUES)[number];
export const FOLDERS = [...QUEUES, 'tmp', 'leases', 'notices', 'attempts', 'delivered', 'paused'] as const;
export type Folder = (typeof FOLDERS)[number];

export function isQueue(name: string): name is Queue {
  return (QUEUES as readonly string[]).includes(name);
}

/**
 * The entries of a directory one at a time (memory stays flat whatever its
 * size); a directory that is gone yields nothing. Closed on break too.
 */
export function* streamDir(dir: string): Generator<fs.Dirent> {
  let handle: fs.Dir;
  try {
    handle = fs.opendirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    for (let d = handle.readSync(); d !== null; d = handle.readSync()) yield d;
  } finally {
    handle.closeSync();
  }
}

/**
 * One read of a directory spread over many calls: entries come from a single
 * open directory stream until its end, so a large folder is read once per
 * pass instead of from its start at every call (one getdents per 128 names).
 * As with readdir(3), a name added during a pass may or may not be seen by
 * it; a pass that starts after the name was added always sees it.
 */
export class DirectoryPass {
  private handle: fs.Dir | null;
  private pushedBack: fs.Dirent | null = null;
  /**
   * @param startedAt when the pass begins (monotonic ms): it sees every name
   *   present then and still there at its end.
   */
  constructor(
    dir: string,
    readonly startedAt: number = performance.now(),
  ) {
    try {
      this.handle = fs.opendirSync(dir, { bufferSize: 128 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.handle = null;
    }
  }

  /** The next entry, or null at the end (the pass is then closed). */
  read(): fs.Dirent | null {
    const kept = this.pushedBack;
    if (kept) {
      this.pushedBack = null;
      return kept;
    }
    const d = this.handle?.readSync() ?? null;
    if (d === null) this.close();
    return d;
  }

  /** Gives an entry back, to be read first next time. */
  unread(d: fs.Dirent): void {
    this.pushedBack = d;
  }

  close(): void {
    this.handle?.closeSync();
    this.handle = null;
  }
}

export class Spool {
  readonly root: string;
  /**
   * Each folder's path with its separator: a message's path is built several
   * times per delivery, and path.join re-normalises the whole string each
   * time. Names are single path components (the codec's, or read from the
   * folder), so joining by concatenation is the same path.
   */
  private readonly prefixes: Readonly<Record<Folder, string>>;
  private readonly dirs: Readonly<Record<Folder, string>>;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.dirs = Object.fromEntries(FOLDERS.map((f) => [f, path.join(this.root, f)])) as Record<Folder, string>;
    this.prefixes = Object.fromEntries(FOLDERS.map((f) => [f, this.dirs[f] + path.sep])) as Record<Folder, string>;
  }

  dir(folder: Folder): string {
    return this.dirs[folder];
  }

  /** Path of a file directly in a queue (deferred/ files live in buckets: use deferredPath). */
  path(folder: Folder, name: string): string {
    return this.prefixes[folder] + name;
  }

  bucketDir(bucketStart: number): string {
    return path.join(this.root, 'deferred', String(bucketStart));
  }

  /** Where a deferred message with this next-attempt time lives. */
  deferredPath(nextAttempt: number, name: string): string {
    return path.join(this.bucketDir(bucketOf(nextAttempt)), name);
  }

  /** The line of one ordering key (see ordering.ts). */
  lineDir(keyTag: string): string {
    return path.join(this.root, 'ordered', keyTag);
  }

  /** The heartbeat file of one daemon sharing the spool. */
  leasePath(owner: string): string {
    return path.join(this.root, 'leases', owner);
  }

  /** Destinations the daemon found dead, written by it for spoolctl (JSON). */
  get destinationStatePath(): string {
    return path.join(this.root, 'destinations.json');
  }

  /**
   * Creates missing folders (0700: messages carry credentials) and checks that
   * all of them are on one file system, so every move is an atomic rename.
   */
  ensure(): void {
    const problem = (what: string, err: unknown): SpoolError => {
      const code = errnoOf(err);
      const why: Record<string, string> = { ENOTDIR: 'a part of the path is a file, not a folder', EEXIST: 'it is a file, not a folder', EROFS: 'the file system is read-only', EACCES: 'permission denied', EPERM: 'permission denied', ENOSPC: 'the file system is full' };
      return new SpoolError(`cannot use ${what} as a spool: ${(code && why[code]) ?? (err as Error).message}${code ? ` (${code})` : ''}`, 'SPOOL_ERR_LAYOUT', { cause: err });
    };
    let rootSt: fs.Stats;
    try {
      fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
      rootSt = fs.statSync(this.root);
    } catch (err) {
      throw problem(this.root, err);
    }
    if (!rootSt.isDirectory()) throw problem(this.root, Object.assign(new Error('not a directory'), { code: 'EEXIST' }));
    // Files a daemon makes are its user's: one running as another user than
    // the spool's (root, say) would leave files the service cannot read.
    const uid = process.getuid?.();
    if (uid !== undefined && rootSt.uid !== uid) {
      throw new SpoolError(`the spool ${this.root} belongs to uid ${rootSt.uid}, not to this user (uid ${uid}): run the daemon as its owner, or chown the spool`, 'SPOOL_ERR_LAYOUT');
    }
    for (const folder of FOLDERS) {
      const dir = this.dir(folder);
      let st: fs.Stats;
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        st = fs.statSync(dir);
        // Writable now, or the first move would fail later: a read-only mount, a folder the daemon may not write.
        fs.accessSync(dir, fs.constants.W_OK);
      } catch (err) {
        throw problem(dir, err);
      }
      if (!st.isDirectory()) throw new SpoolError(`${dir} is not a directory`, 'SPOOL_ERR_LAYOUT');
      if (st.dev !== rootSt.dev) {
        throw new SpoolError(
          `${dir} is on another file system than ${this.root}: moves between queues must be atomic renames`,
          'SPOOL_ERR_LAYOUT',
        );
      }
    }
  }

  /** Throws a clear error when this is not a spool (for spoolctl, which must not create one). */
  check(): void {
    for (const folder of CORE_QUEUES) {
      if (!fs.existsSync(this.dir(folder))) {
        throw new SpoolError(`${this.root} is not a spool (no ${folder}/); start spoold on it once, or check --spool`, 'SPOOL_ERR_NOT_A_SPOOL');
      }
    }
  }
}
