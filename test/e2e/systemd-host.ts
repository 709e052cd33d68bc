/**
 * A real systemd for the tests: systemd as PID 1 in a PID and mount
 * namespace of its own, on a copy-on-write view of this machine's root (an
 * overlay whose upper layer is a tmpfs), so that whatever it does (clean
 * /tmp, write /etc) stays in the overlay. The folders the test shares with it
 * (a spool, a config) are bound in at their own paths. It shares the network,
 * so a service reaches the test's sinks on 127.0.0.1.
 *
 * Needs root, unshare(1) and overlayfs; `available()` says why not where it
 * cannot run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir, waitFor } from './helpers.js';

const BOOT = `
set -e
T="$1"; shift
mount --make-rprivate /
mount -t tmpfs tmpfs "$T"
mkdir -p "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
R="$T/root"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
# After /tmp's tmpfs, which would hide a shared folder under /tmp.
for b in "$@"; do mkdir -p "$R$b"; mount --bind "$b" "$R$b"; done
mkdir -p "$R/run/systemd/system"
cat > "$R/run/systemd/system/spoold-test.target" <<'UNIT'
[Unit]
Description=the spoold test's world
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald.service
UNIT
export container=spoold-test
exec chroot "$R" /lib/systemd/systemd --system --unit=spoold-test.target --log-target=journal
`;

export function available(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('sh', ['-c', 'command -v unshare && command -v nsenter && test -x /lib/systemd/systemd']).status !== 0) return 'needs unshare, nsenter and systemd';
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'needs overlayfs';
  return null;
}

export interface Systemd {
  /** Runs a command inside (as root there); never throws. */
  run(cmd: string, input?: string): { status: number | null; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export async function bootSystemd(shared: string[]): Promise<Systemd> {
  const base = tempDir('spoold-systemd-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  // The project itself too: the unit runs its bin/spoold, which a clone under
  // /tmp (CI's) would have hidden below the service's tmpfs.
  const unshare: ChildProcess = spawn('unshare', ['--pid', '--fork', '--mount', 'sh', '-c', BOOT, 'boot', mnt, ROOT, ...shared], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let log = '';
  unshare.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  const init = await waitFor(
    'systemd as PID 1',
    () => {
      try {
        const child = fs.readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim().split(/\s+/)[0];
        return child && fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd' ? Number(child) : null;
      } catch {
        return null;
      }
    },
    10_000,
    20,
  ).catch(() => {
    throw new Error(`systemd did not start: ${log}`);
  });
  const run = (cmd: string, input = '') => {
    const r = spawnSync('nsenter', ['-t', String(init), '-m', '-p', '-r', '-w', '--', 'sh', '-c', cmd], { encoding: 'utf8', input, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  await waitFor('systemd up', () => /^(running|degraded)/.test(run('systemctl is-system-running').stdout), 20_000, 100).catch(() => {
    throw new Error(`systemd did not come up: ${run('systemctl is-system-running').stdout} ${log}`);
  });
  return {
    run,
    stop: async () => {
      try {
        process.kill(init, 'SIGKILL');
      } catch {
        /* gone */
      }
      if (unshare.exitCode === null) await new Promise((r) => unshare.once('exit', r));
    },
  };
}
