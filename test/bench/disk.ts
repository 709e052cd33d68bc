/**
 * The file system the bench calls "disk": ext4 as mkfs.ext4 makes it, with
 * its journal (what Debian's and Ubuntu's installers create), on a loop
 * device over a sparse file on this machine's disk, mounted for the run and
 * removed after it. A flush of the loop device fsyncs the file beneath it,
 * so a message is on the machine's disk when its fsync returns.
 *
 * Not the machine's own root: that is ext4 without a journal, where every
 * file creation probes each inode of its group freed in the last 30 s
 * (ext4's find_inode_bit and recently_deleted, which a journal makes
 * unnecessary). A spool frees an inode per message delivered, so there the
 * producers' creations pay for the daemon's deliveries: 43% of a producer's
 * CPU at 500 msgs/s (perf, 2026-12-07), and 1,189-1,718 system CPU-ms per
 * 1,000 messages against 331 on the journaled ext4 here. One rate row still
 * runs on the machine's root to show it.
 *
 * `--disk DIR` runs the disk rows in DIR instead; without root, mkfs.ext4 or
 * loop devices, they run in the OS's temporary folder, and the run says so.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface BenchDisk {
  dir: string;
  /** How the run describes it. */
  label: string;
  /** true: the journaled ext4 made for the run, so the OS's temporary folder is another file system. */
  made: boolean;
  close(): void;
}

const IMAGE_BYTES = 8 * 2 ** 30;

/**
 * `inodes`: at least this many files. mkfs.ext4 gives an image of this size
 * one inode per 16 KiB (about 524,000), which a spool on a disk of a real
 * size never runs out of; a bench that makes more files asks for them.
 */
export function benchDisk(given: string | undefined, opts: { inodes?: number } = {}): BenchDisk {
  if (given) return { dir: given, label: given, made: false, close: () => undefined };
  const fallback = (why: string): BenchDisk => ({ dir: os.tmpdir(), label: `${os.tmpdir()} (${why})`, made: false, close: () => undefined });
  if (process.getuid?.() !== 0) return fallback('no journaled ext4: mounting one needs root');
  if (spawnSync('sh', ['-c', 'command -v mkfs.ext4 && test -e /dev/loop-control'], { stdio: 'ignore' }).status !== 0) return fallback('no journaled ext4: needs mkfs.ext4 and loop devices');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-disk-'));
  const image = path.join(base, 'ext4.img');
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, IMAGE_BYTES);
  let mounted = false;
  const close = () => {
    if (mounted) {
      // Lazy: a process the bench could not stop must not keep the image.
      spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
      mounted = false;
    }
    fs.rmSync(base, { recursive: true, force: true });
  };
  const made = spawnSync('mkfs.ext4', ['-q', '-F', ...(opts.inodes ? ['-N', String(opts.inodes)] : []), image], { encoding: 'utf8' });
  const mount = made.status === 0 ? spawnSync('mount', ['-o', 'loop', image, dir], { encoding: 'utf8' }) : made;
  if (mount.status !== 0) {
    close();
    return fallback(`no journaled ext4: ${(mount.stderr || mount.error?.message || 'mkfs.ext4 or mount failed').trim().split('\n')[0]}`);
  }
  mounted = true;
  process.once('exit', close);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
  return { dir, label: `ext4 with its journal on a loop device over a file in ${os.tmpdir()}`, made: true, close };
}
