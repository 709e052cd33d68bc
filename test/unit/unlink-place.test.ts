/**
 * Where a delivered message's file is unlinked: on the event loop while
 * unlinks are quick, in the thread pool while the disk makes them wait, and
 * back on the loop once it is quick again. Either way the file is gone.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { completeSomewhere, SLOW_UNLINK_US, UNLINK_SAMPLE_EVERY, UnlinkPlace } from '../../src/spool/moves.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-test-unlink-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
function file(): string {
  const p = path.join(root, `m-${n++}.json`);
  fs.writeFileSync(p, '{}');
  return p;
}

/** A clock whose unlinks on the loop take `us` microseconds each. */
function takes(us: () => number): () => number {
  let t = 0;
  let start = true;
  return () => {
    if (!start) t += us() / 1000;
    start = !start;
    return t;
  };
}

describe('unlinking delivered files', () => {
  it('stays on the event loop while unlinks are quick', async () => {
    const place = new UnlinkPlace();
    const now = takes(() => 10);
    for (let i = 0; i < 50; i++) {
      assert.equal(place.onLoop(), true);
      place.timed(10);
    }
    const p = file();
    await completeSomewhere(p, place, now);
    assert.equal(fs.existsSync(p), false);
    assert.equal(place.slow, false);
  });

  it('moves to the thread pool after slow unlinks, samples one in UNLINK_SAMPLE_EVERY on the loop, and comes back when they are quick', async () => {
    const place = new UnlinkPlace();
    let cost = 700;
    const now = takes(() => cost);
    // One unlink waiting 0.7 ms for a journal commit is enough to move.
    await completeSomewhere(file(), place, now);
    assert.equal(place.slow, true);
    let timings = 0;
    const counted = () => (timings++, now());
    for (let i = 0; i < UNLINK_SAMPLE_EVERY * 4; i++) await completeSomewhere(file(), place, counted);
    assert.equal(timings / 2, 4, 'one sample on the loop in each UNLINK_SAMPLE_EVERY');
    assert.equal(place.slow, true);
    // The disk is quick again: a few samples bring the unlinks back to the loop.
    cost = 8;
    timings = 0;
    let unlinks = 0;
    while (place.slow && unlinks < UNLINK_SAMPLE_EVERY * 20) {
      await completeSomewhere(file(), place, counted);
      unlinks++;
    }
    assert.equal(place.slow, false, 'back on the loop');
    const samples = timings / 2;
    assert.ok(samples >= 1 && samples <= 12, `${samples} samples to come back`);
    assert.ok(unlinks <= samples * UNLINK_SAMPLE_EVERY);
    assert.deepEqual(fs.readdirSync(root).filter((f) => f.startsWith('m-')), [], 'every file unlinked, wherever');
    assert.ok(SLOW_UNLINK_US < 700 && SLOW_UNLINK_US > 8);
  });

  it('in the thread pool, removes the file and takes a vanished one for removed', async () => {
    const place = new UnlinkPlace();
    place.timed(10_000);
    assert.equal(place.slow, true);
    const p = file();
    await completeSomewhere(p, place, takes(() => 0));
    assert.equal(fs.existsSync(p), false);
    await completeSomewhere(path.join(root, 'gone.json'), place, takes(() => 0));
    await completeSomewhere(path.join(root, 'gone.json'), new UnlinkPlace(), takes(() => 0));
  });

  it('rejects for any other error, on the loop and in the pool, and leaves the file', async () => {
    const dir = path.join(root, 'not-a-file');
    fs.mkdirSync(path.join(dir, 'inside'), { recursive: true });
    await assert.rejects(completeSomewhere(dir, new UnlinkPlace(), takes(() => 5)), (err: NodeJS.ErrnoException) => err.code === 'EISDIR' || err.code === 'EPERM');
    const pool = new UnlinkPlace();
    pool.timed(10_000);
    await assert.rejects(completeSomewhere(dir, pool, takes(() => 5)), (err: NodeJS.ErrnoException) => err.code === 'EISDIR' || err.code === 'EPERM');
    assert.equal(fs.statSync(dir).isDirectory(), true);
  });
});
