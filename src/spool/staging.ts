/**
 * Staging: how a message enters incoming/ complete, durable, and without
 * replacing another message.
 *
 *   stage    write the whole file under a private name in tmp/ and fsync it
 *            (a short write or ENOSPC fails here, and nothing is left behind)
 *   publish  link(2) it into incoming/<id>.json, then unlink the staged name:
 *            link fails with EEXIST where rename would silently replace a
 *            message waiting under the same id (the maildir way)
 *
 * A crash between link and unlink leaves the message in incoming/ with a
 * second name in tmp/: its staged twin. The daemon recognises a twin (same
 * file, a staged name for that id) and removes it, so a message with two
 * names is never taken for a hard link from outside the spool. It meets
 * twins without any crash too: the link wakes the daemon, and on a busy
 * machine the daemon often claims and opens the message before the producer
 * has run its unlink (877 of 1,000 messages at 100 msgs/s, ext4, 2 cores).
 * So the staged name is one per id (<id>.json.staged, see names.ts) when it
 * is free, and the twin is one lstat away instead of a scan of tmp/.
 *
 * requeue moves a message back to incoming/ the same way: renamed into tmp/
 * under a transit name (one atomic step out of its queue), linked into
 * incoming/, unlinked. A transit file left by a crash is never deleted: the
 * sweep puts it into incoming/ (or hold/, when its id is taken there).
 *
 * The sweep also removes what killed producers and daemons left in tmp/:
 * files not modified for STALE_MS. Such a file was never acknowledged to
 * anyone (a producer is told "durable" only after publish), so removing it
 * loses nothing.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, SpoolError } from '../errors.js';
import { streamDir, type Spool } from './layout.js';
import { formatEntry, formatStagedName, formatUniqueStagedName, incomingName, parseStagedName } from './names.js';

/** A file in tmp/ untouched for this long belongs to a writer that is gone. */
export const STALE_MS = 60 * 60_000;
/** A transit file this old was left by a killed spoolctl (a live one takes microseconds). */
const TRANSIT_STALE_MS = 60_000;

/** fsync(2) in the thread pool (the callback form: fs/promises needs a FileHandle). */
export const fsyncFd = (fd: number): Promise<void> => new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));

function ioError(what: string, err: unknown): SpoolError {
  return new SpoolError(`${what}: ${errnoOf(err) ?? (err as Error).message}`, 'SPOOL_ERR_IO', { cause: err });
}

/**
 * Writes `data` whole and fsyncs it under a private name in tmp/; returns
 * that name. Open, write and close are synchronous (tens of µs, where a
 * thread-pool round trip costs more); only the fsync, which waits on the
 * device, goes to the thread pool, so parallel writers overlap their fsyncs.
 * writeFileSync on a descriptor loops until every byte is written or throws
 * (ENOSPC, EFBIG): a short write never passes for a whole one.
 */
export async function stage(spool: Spool, id: string, data: string | Buffer): Promise<string> {
  let file = spool.path('tmp', formatStagedName(id));
  let fd: number;
  try {
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      // Another writer of this id, or one killed mid-write: a name of its own.
      file = spool.path('tmp', formatUniqueStagedName(id, false, process.pid, randomBytes(4).toString('hex')));
      fd = fs.openSync(file, 'wx', 0o600);
    }
  } catch (err) {
    throw ioError(`cannot write into ${spool.dir('tmp')}`, err);
  }
  let failure: unknown = null;
  try {
    fs.writeFileSync(fd, data);
    await fsyncFd(fd);
  } catch (err) {
    failure = err;
  }
  try {
    fs.closeSync(fd);
  } catch (err) {
    // NFS reports some write errors only at close.
    failure ??= err;
  }
  if (failure !== null) {
    fs.rmSync(file, { force: true });
    throw ioError(`message ${id} not written`, failure);
  }
  return file;
}

/**
 * Reads a small record (a lease, an ordering head, a pause, a history) whole. Through
 * its own descriptor and the Buffer path, because Node 20's utf8 fast path of
 * readFileSync(path, 'utf8') aborts the process when close(2) fails, which
 * network and FUSE file systems do (ESTALE, ENOENT for a file another client
 * just replaced). Once the bytes are read, a failed close changes nothing.
 * Throws what open or read throw.
 */
export function readRecord(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    return fs.readFileSync(fd).toString('utf8');
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      /* the bytes are read: nothing is lost with the descriptor */
    }
  }
}

/**
 * Writes a small record (a bounce reason, an ordering head, the destinations
 * state) whole under a dot-name in tmp/, optionally fsyncs it, and renames
 * it over `target`: readers see the old record or the new one, never part of
 * one. Not write-file-atomic: its synchronous path makes one write(2) and
 * ignores a short count, which a nearly full disk gives. A failure removes
 * the staged file and throws SPOOL_ERR_IO.
 */
export function writeRecord(spool: Spool, target: string, data: string, fsync: boolean): void {
  const file = spool.path('tmp', `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, 'wx', 0o600);
    fs.writeFileSync(fd, data);
    if (fsync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(file, target);
  } catch (err) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        /* the write's own error is the one to report */
      }
    }
    fs.rmSync(file, { force: true });
    throw ioError(`cannot write ${target}`, err);
  }
}

/**
 * Links a staged file into incoming/<id>.json, then removes the staged name.
 * Throws SPOOL_ERR_EXISTS (and removes the staged file) when the id is taken.
 */
export function publish(spool: Spool, staged: string, id: string): void {
  try {
    fs.linkSync(staged, spool.path('incoming', incomingName(id)));
  } catch (err) {
    fs.rmSync(staged, { force: true });
    if (errnoOf(err) === 'EEXIST') throw new SpoolError(`message ${id} is already in incoming/`, 'SPOOL_ERR_EXISTS');
    throw ioError(`message ${id} not put into incoming/`, err);
  }
  // The message is in incoming/ now, whatever happens to its staged name:
  // the daemon may have removed it as a twin already, and the sweep gets it otherwise.
  try {
    fs.unlinkSync(staged);
  } catch {
    /* see above */
  }
}

/**
 * Moves a message from another queue back into incoming/<id>.json without
 * replacing one there. 'moved'; 'gone' when `from` vanished (the daemon
 * claimed it); 'taken' when incoming/ holds the id (the message stays in its
 * queue).
 */
export function moveToIncoming(spool: Spool, from: string, id: string): 'moved' | 'gone' | 'taken' {
  const transit = spool.path('tmp', formatUniqueStagedName(id, true, process.pid, randomBytes(4).toString('hex')));
  try {
    fs.renameSync(from, transit);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' && !fs.existsSync(from)) return 'gone';
    throw err;
  }
  try {
    fs.linkSync(transit, spool.path('incoming', incomingName(id)));
  } catch (err) {
    // Back where it was (a name no one else can have made meanwhile).
    fs.linkSync(transit, from);
    fs.unlinkSync(transit);
    if (errnoOf(err) === 'EEXIST') return 'taken';
    throw err;
  }
  fs.rmSync(transit, { force: true });
  return 'moved';
}

/**
 * A message with a second name: if that name is its staged twin in tmp/
 * (a producer or a requeue stopped between link and unlink), removes it and
 * says true. Anything else (a hard link from elsewhere) stays as it is.
 * `links` gives the message's link count now: when the twin's writer has
 * removed it meanwhile, tmp/ is not scanned for it.
 */
export function dropStagedTwin(spool: Spool, id: string, st: fs.Stats, links: () => number = () => st.nlink): boolean {
  if (dropIfTwin(spool.path('tmp', formatStagedName(id)), st)) return true;
  if (links() <= 1) return true;
  // Staged under a name of its own, or in transit: look for it by prefix.
  const prefix = `${incomingName(id)}.`;
  let dropped = false;
  for (const d of streamDir(spool.dir('tmp'))) {
    if (!d.name.startsWith(prefix) || parseStagedName(d.name)?.id !== id) continue;
    if (dropIfTwin(spool.path('tmp', d.name), st)) dropped = true;
  }
  return dropped;
}

function dropIfTwin(twin: string, st: fs.Stats): boolean {
  try {
    const t = fs.lstatSync(twin, { throwIfNoEntry: false });
    if (t === undefined || t.ino !== st.ino || t.dev !== st.dev) return false;
    fs.unlinkSync(twin);
    return true;
  } catch {
    /* gone meanwhile: its writer removed it */
    return false;
  }
}

export interface SweepReport {
  /** Stale files removed (never acknowledged to anyone). */
  removed: number;
  /** Staged twins of published messages removed. */
  twins: number;
  /** Messages found in transit and put back into incoming/ or hold/. */
  rescued: { id: string; queue: 'incoming' | 'hold' }[];
}

/** Cleans tmp/ of what killed writers left (see the header). O(files in tmp/). */
export function sweepTmp(spool: Spool, now: number = Date.now()): SweepReport {
  const report: SweepReport = { removed: 0, twins: 0, rescued: [] };
  for (const d of streamDir(spool.dir('tmp'))) {
    const file = spool.path('tmp', d.name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      continue;
    }
    const staged = parseStagedName(d.name);
    const age = now - st.mtimeMs;
    try {
      if (staged && st.isFile() && st.nlink > 1) {
        // Published already: its other name is in incoming/ (or claimed from there).
        fs.unlinkSync(file);
        report.twins++;
      } else if (staged?.transit && st.isFile()) {
        if (age < TRANSIT_STALE_MS) continue;
        report.rescued.push({ id: staged.id, queue: rescue(spool, file, staged.id, now) });
      } else if (age >= STALE_MS) {
        fs.rmSync(file, { recursive: true, force: true });
        report.removed++;
      }
    } catch {
      /* the next sweep tries again */
    }
  }
  return report;
}

function rescue(spool: Spool, file: string, id: string, now: number): 'incoming' | 'hold' {
  try {
    fs.linkSync(file, spool.path('incoming', incomingName(id)));
    fs.unlinkSync(file);
    return 'incoming';
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  // Its id is taken in incoming/: set aside where an operator sees it.
  fs.linkSync(file, path.join(spool.dir('hold'), formatEntry({ id, time: now, attempts: 0, arrival: now, destination: '-', lastError: '-' })));
  fs.unlinkSync(file);
  return 'hold';
}
