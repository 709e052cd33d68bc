/**
 * --shared is kept only for what is tested: on a network or FUSE file system
 * (where GlusterFS and ceph-fuse took live daemons' claims) the daemon
 * refuses it before it makes anything. The FUSE file system is a real mount
 * (the one read-record.test.ts uses).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fileSystemType, remoteFileSystem } from '../../src/spool/file-system.js';
import { aptInstall, SPOOLD, waitFor } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const FS_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../unit/close-fails-fs.py');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-test-remote-'));
const mnt = path.join(base, 'mnt');
let fuse: ChildProcess | null = null;

const mounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
const hasPyfuse3 = () => spawnSync(PYTHON, ['-c', 'import pyfuse3, trio'], { stdio: 'ignore' }).status === 0;

before(async () => {
  // Needs root and /dev/fuse, which this project's machines and CI have: missing, it fails, never skips.
  assert.equal(process.getuid?.(), 0, 'mounting a FUSE file system needs root');
  if (!hasPyfuse3()) aptInstall(['python3-pyfuse3', 'fuse3']);
  assert.ok(hasPyfuse3(), 'python3-pyfuse3 could not be installed');
  fs.mkdirSync(mnt);
  fuse = spawn(PYTHON, [FS_SCRIPT, mnt], { stdio: 'ignore' });
  await waitFor('the FUSE file system mounted', mounted, 10_000, 20);
});

after(async () => {
  spawnSync('umount', ['-l', mnt]);
  if (fuse && fuse.exitCode === null) await new Promise((r) => (fuse!.once('exit', r), fuse!.kill('SIGKILL')));
  fs.rmSync(base, { recursive: true, force: true });
});

describe('--shared on a file system it is not tested on', () => {
  it('the file system is told apart by statfs, for a spool that is still to be made too', () => {
    assert.equal(remoteFileSystem(fileSystemType(path.join(mnt, 'spool', 'not-yet'))!), 'FUSE');
    assert.equal(remoteFileSystem(fileSystemType(base)!), null, `${base} is local`);
    assert.equal(remoteFileSystem(0x6969), 'NFS');
    assert.equal(remoteFileSystem(0x01021994), null, 'tmpfs');
    assert.equal(remoteFileSystem(0xef53), null, 'ext2/3/4');
  });

  it('spoold start --shared refuses with one line and exit 2, and makes nothing', () => {
    const before = fs.readdirSync(mnt);
    const r = spawnSync(process.execPath, [SPOOLD, 'start', '--spool', path.join(mnt, 'spool'), '--shared'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, /^spoold: --shared is not supported on FUSE \(.*\): it is tested only on local file systems/);
    assert.deepEqual(fs.readdirSync(mnt), before);
  });
});
