/**
 * Small spool records (leases, ordering heads, pauses, the lock) are read
 * where another client may replace them at any moment, and on network and
 * FUSE file systems close(2) can then fail. Node 20's readFileSync(path,
 * 'utf8') aborts the whole process on that; readRecord must not. The file
 * system here is a real FUSE mount whose close fails (close-fails-fs.py).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readRecord } from '../../src/spool/staging.js';
import { withCloseFailsFs } from '../e2e/helpers.js';

const { mnt } = withCloseFailsFs('spoold-test-close-');
const record = path.join(mnt, 'record');

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
