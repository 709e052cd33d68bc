/**
 * --shared is kept only for what is tested: on a network or FUSE file system
 * (where GlusterFS and ceph-fuse took live daemons' claims) the daemon
 * refuses it before it makes anything. The FUSE file system is a real mount
 * (the one read-record.test.ts uses).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileSystemType, remoteFileSystem } from '../../src/spool/file-system.js';
import { withCloseFailsFs, SPOOLD } from './helpers.js';

const { base, mnt } = withCloseFailsFs('spoold-test-remote-');

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
