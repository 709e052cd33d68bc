/**
 * One daemon per spool: a pid file created with O_EXCL.
 *
 * A lock whose process is gone (the daemon was killed with -9, the host
 * rebooted) is taken over. A pid that is alive but is not a spoold (the pid
 * was reused after a reboot) is stale too, judged from /proc where there is one.
 */
import fs from 'node:fs';
import { SpoolError } from './errors.js';

/** Whether a pid on this host is a running spoold. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('spoold');
  } catch {
    return true;
  }
}

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Pid of the live daemon holding a lock file, or null. */
export function lockHolder(file: string): number | null {
  const pid = readPid(file);
  return pid !== null && pid !== process.pid && isAlive(pid) ? pid : null;
}

export interface Lock {
  /** Pid of the stale owner whose lock was taken over, if any. */
  tookOverFrom: number | null;
  release(): void;
}

export function acquireLock(file: string): Lock {
  let tookOverFrom: number | null = null;
  for (let tries = 0; tries < 3; tries++) {
    // Written whole under another name, then linked into place: link fails
    // if the lock exists, and no one ever reads a half-written pid.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      fs.linkSync(tmp, file);
      return {
        tookOverFrom,
        release() {
          if (readPid(file) === process.pid) fs.rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    const owner = readPid(file);
    if (owner !== null && owner !== process.pid && isAlive(owner)) {
      throw new SpoolError(`another spoold (pid ${owner}) is already running on this spool (lock ${file})`, 'SPOOL_ERR_LOCKED');
    }
    tookOverFrom = owner;
    fs.rmSync(file, { force: true });
  }
  throw new SpoolError(`could not take the lock ${file}`, 'SPOOL_ERR_LOCKED');
}
