/**
 * The partition of incoming/ among daemons sharing a spool, and the incoming
 * scan that honours it, over a real folder: a pass claims this daemon's part
 * and skips the others'; once its own part has run out it takes every name
 * at once, so a stalled or busy peer's part is still delivered.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Clock } from '../../src/queue/clock.js';
import { IncomingScan } from '../../src/queue/incoming-scan.js';
import { Partition } from '../../src/queue/partition.js';
import { Spool } from '../../src/spool/layout.js';
import { incomingName } from '../../src/spool/names.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-partition-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;

const ids = Array.from({ length: 3000 }, (_, i) => `order-${i}`);

describe('partition', () => {
  it('gives every id to exactly one of the live owners, in about equal parts, whatever order they are named in', () => {
    const owners = ['host.10.aaaaaa', 'host.11.bbbbbb', 'host.12.cccccc'];
    const parts = owners.map((o) => {
      const p = new Partition(o);
      p.peers([...owners].reverse());
      return p;
    });
    assert.deepEqual(parts.map((p) => p.parts), [3, 3, 3]);
    const counts = [0, 0, 0];
    for (const id of ids) {
      const mine = parts.map((p) => p.mine(id));
      assert.equal(mine.filter(Boolean).length, 1, `${id} has exactly one first claimant`);
      counts[mine.indexOf(true)]!++;
    }
    for (const c of counts) assert.ok(c > 800 && c < 1200, `parts of 3,000: ${counts.join(', ')}`);
  });

  it('takes every id alone, and when the peers named do not include it yet', () => {
    const alone = new Partition(null);
    alone.peers(['host.1.aaaaaa', 'host.2.bbbbbb']);
    assert.ok(ids.every((id) => alone.mine(id)));
    const first = new Partition('host.1.aaaaaa');
    assert.ok(ids.every((id) => first.mine(id)), 'before its first beat a daemon claims all');
    first.peers([]);
    assert.equal(first.parts, 1);
    first.peers(['host.2.bbbbbb']);
    assert.equal(first.parts, 2, 'its own id counts though the lease list lacked it');
  });
});

describe('incoming scan, partitioned', () => {
  const clock: Clock = { wall: () => Date.now(), mono: () => performance.now(), setTimeout, clearTimeout };

  function setUp(count: number, mine: (id: string) => boolean) {
    const spool = new Spool(path.join(base, `s${n++}`));
    fs.mkdirSync(spool.dir('incoming'), { recursive: true });
    for (let i = 0; i < count; i++) fs.writeFileSync(spool.path('incoming', incomingName(`m-${i}`)), '{}');
    const claimed: string[] = [];
    let readsEnded = 0;
    const scan = new IncomingScan(spool, clock, {
      isHeld: () => false,
      claim: (id) => {
        fs.unlinkSync(spool.path('incoming', incomingName(id)));
        claimed.push(id);
        return true;
      },
      mine,
      backlogChanged: () => undefined,
      readEnded: () => readsEnded++,
    });
    return { scan, claimed, readsEnded: () => readsEnded };
  }
  const even = (id: string) => Number(id.slice(2)) % 2 === 0;

  it('claims its own part first, a slice at a time, and skipped names make no complete read', () => {
    const { scan, claimed, readsEnded } = setUp(40, even);
    assert.equal(scan.fill(8), 8);
    assert.ok(claimed.every(even), 'only its own part while that lasts');
    assert.equal(scan.fill(100), 20 - 8 + 20, 'the rest of its part, then, its part run out, every other name at once');
    assert.deepEqual(claimed.slice(0, 20).filter((id) => !even(id)), [], 'its own part came first');
    assert.equal(new Set(claimed).size, 40);
    assert.equal(readsEnded(), 1, 'only the pass that took every name proves incoming/ was read to its end');
    assert.equal(scan.fill(100), 0, 'nothing left');
  });

  it('takes a stalled peer\'s part in the same fill that finds none of its own', () => {
    const { scan, claimed } = setUp(10, () => false);
    assert.equal(scan.fill(4), 4, 'a slice of the peer\'s part');
    assert.equal(scan.fill(100), 6);
    assert.equal(claimed.length, 10);
  });

  it('alone (every id its own) claims in one pass, each read complete', () => {
    const { scan, claimed, readsEnded } = setUp(30, () => true);
    assert.equal(scan.fill(100), 30);
    assert.equal(claimed.length, 30);
    assert.equal(readsEnded(), 1);
  });
});
