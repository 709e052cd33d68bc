/**
 * One daemon per spool, without kernel locks (Node has no flock): lock
 * files created with link(2), which fails if the name exists, numbered by
 * generation so that taking over a dead daemon's lock is itself exclusive.
 *
 *   spoold.lock.<n>   "<pid> <start time>\n" of the daemon holding
 *                     generation n; the highest n is the lock
 *
 * To lock: read the highest generation n. If its holder lives, the spool is
 * taken. Otherwise create generation n+1 by link(2): of every process that
 * judged n dead at once, exactly one creates n+1; the others get EEXIST, read
 * n+1, find its holder alive and give up. A process that was slow enough to
 * create a generation below the highest (one removed as old meanwhile) sees
 * the higher one and gives way. Removing a lock never opens a race: a
 * released generation stays, marked released, until the next holder removes
 * it with the older ones.
 *
 * Alive means the pid exists *and* started when the lock says (from
 * /proc/<pid>/stat), so a pid reused after a reboot is not taken for the
 * daemon. A `spoold.pid` left by spoold 0.1 is honoured while its process
 * lives.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, SpoolError } from '../errors.js';
import { readRecord } from './staging.js';

const PREFIX = 'spoold.lock.';
const GENERATION = /^spoold\.lock\.(\d{1,15})$/;
/** The lock file of spoold 0.1: a pid. */
const LEGACY = 'spoold.pid';

/** When a process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); null where unknown. */
export function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

interface Holder {
  pid: number;
  /** null: not known (no /proc where it was written). */
  start: string | null;
  released: boolean;
}

function readHolder(file: string): Holder | null {
  let text: string;
  try {
    text = readRecord(file);
  } catch {
    return null;
  }
  const m = /^(released )?(\d+)(?: (\d+))?\s*$/.exec(text);
  return m ? { pid: Number(m[2]), start: m[3] ?? null, released: m[1] !== undefined } : null;
}

/** Whether a pid on this host is the process that wrote a lock. */
export function isAlive(pid: number, start: string | null = null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, under another user.
    if (errnoOf(err) !== 'EPERM') return false;
  }
  const now = startTimeOf(pid);
  if (start !== null && now !== null) return now === start;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('spoold');
  } catch {
    return true;
  }
}

function generations(root: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync(root)) {
    const m = GENERATION.exec(name);
    if (m) found.push(Number(m[1]));
  }
  return found.sort((a, b) => a - b);
}

function holderAlive(h: Holder | null): boolean {
  return h !== null && !h.released && h.pid !== process.pid && isAlive(h.pid, h.start);
}

function legacyHolder(root: string): number | null {
  const pid = Number.parseInt(fs.readFileSync(path.join(root, LEGACY), { encoding: 'utf8', flag: 'r' }).trim(), 10);
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid) ? pid : null;
}

/** Pid of the live daemon holding the spool's lock, or null. */
export function lockHolder(root: string): number | null {
  try {
    const legacy = legacyHolder(root);
    if (legacy !== null) return legacy;
  } catch {
    /* no legacy lock */
  }
  const top = generations(root).at(-1);
  const h = top === undefined ? null : readHolder(path.join(root, PREFIX + top));
  return h && holderAlive(h) ? h.pid : null;
}

export interface Lock {
  /** Pid of the daemon that died holding the lock this one took over, if any. */
  tookOverFrom: number | null;
  release(): void;
}

function taken(root: string, pid: number): SpoolError {
  return new SpoolError(`another spoold (pid ${pid}) is already running on this spool (${root})`, 'SPOOL_ERR_LOCKED');
}

/** `staging`: a folder on the spool's file system for the file that is linked into place. */
export function acquireLock(root: string, staging: string): Lock {
  const start = startTimeOf(process.pid);
  const mine = `${process.pid}${start === null ? '' : ` ${start}`}\n`;
  let legacy: number | null = null;
  try {
    legacy = legacyHolder(root);
  } catch {
    /* none */
  }
  if (legacy !== null) throw taken(root, legacy);
  for (let tries = 0; tries < 100; tries++) {
    const top = generations(root).at(-1) ?? 0;
    const holder = top > 0 ? readHolder(path.join(root, PREFIX + top)) : null;
    if (holder && holderAlive(holder)) throw taken(root, holder.pid);
    const n = top + 1;
    const file = path.join(root, PREFIX + n);
    const tmp = path.join(staging, `.${PREFIX}${process.pid}.${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(tmp, mine, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(tmp, file);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      continue; // someone took generation n first: look again
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    // A generation above ours exists: we were slow, and n had been removed as old. Give way.
    if ((generations(root).at(-1) ?? 0) > n) {
      fs.rmSync(file, { force: true });
      continue;
    }
    for (const old of generations(root)) if (old < n) fs.rmSync(path.join(root, PREFIX + old), { force: true });
    fs.rmSync(path.join(root, LEGACY), { force: true });
    return {
      tookOverFrom: holder && !holder.released ? holder.pid : null,
      release() {
        // Marked, not removed: a lock file that vanished would let a slow racer
        // create a lower generation than one still held (see the header).
        const h = readHolder(file);
        if (h?.pid === process.pid && !h.released) {
          const tmpRelease = path.join(staging, `.${PREFIX}${process.pid}.released`);
          fs.writeFileSync(tmpRelease, `released ${mine}`, { mode: 0o600 });
          fs.renameSync(tmpRelease, file);
        }
      },
    };
  }
  throw new SpoolError(`could not take the lock of ${root}: too much contention`, 'SPOOL_ERR_LOCKED');
}
