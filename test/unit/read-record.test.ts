/**
 * Small spool records (leases, ordering heads, pauses, the lock) are read
 * where another client may replace them at any moment, and on network and
 * FUSE file systems close(2) can then fail. Node 20's readFileSync(path,
 * 'utf8') aborts the whole process on that; readRecord must not. The file
 * system here is a real FUSE mount whose close fails (close-fails-fs.py).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readRecord } from '../../src/spool/staging.js';
import { aptInstall, waitFor } from '../e2e/helpers.js';

const PYTHON = '/usr/bin/python3';
const FS_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'close-fails-fs.py');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-test-close-'));
const mnt = path.join(base, 'mnt');
const record = path.join(mnt, 'record');
let fuse: ChildProcess | null = null;

const mounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
const hasPyfuse3 = () => spawnSync(PYTHON, ['-c', 'import pyfuse3, trio'], { stdio: 'ignore' }).status === 0;

before(async () => {
  // Needs root and /dev/fuse, which this project's machines and CI have: missing, it fails, never skips.
  assert.equal(process.getuid?.(), 0, 'mounting a FUSE file system needs root');
  assert.ok(fs.existsSync('/dev/fuse'), 'no /dev/fuse');
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

describe('reading a record on a file system whose close fails', () => {
  it('close(2) really fails there', () => {
    const fd = fs.openSync(record, 'r');
    assert.throws(() => fs.closeSync(fd), (err: NodeJS.ErrnoException) => err.code === 'ESTALE' || err.errno === -116);
    // What readRecord avoids: on Node 20, readFileSync(path, 'utf8') aborts the process here.
    if (process.versions.node.startsWith('20.')) {
      const r = spawnSync(process.execPath, ['-e', `require('node:fs').readFileSync(${JSON.stringify(record)}, 'utf8')`], { encoding: 'utf8' });
      assert.equal(r.signal, 'SIGABRT', `expected an abort, got status ${r.status}: ${r.stderr.slice(0, 200)}`);
    }
  });

  it('readRecord returns the bytes read and the process goes on', () => {
    assert.equal(readRecord(record), '{"owner":"peer","beat":7}\n');
    assert.deepEqual(JSON.parse(readRecord(record)), { owner: 'peer', beat: 7 });
  });

});
