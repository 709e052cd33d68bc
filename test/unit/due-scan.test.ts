/**
 * The due scan and its upcoming list, on an injected clock (node:test mock
 * timers) over a real spool folder: what comes due between scans is taken
 * from the list, on time, without reading deferred/ again; what the list
 * cannot know is found by the scan.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { Clock } from '../../src/queue/clock.js';
import { DueScan, UPCOMING } from '../../src/queue/due-scan.js';
import { Spool } from '../../src/spool/layout.js';
import { formatEntry, type Entry } from '../../src/spool/names.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-due-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;

const START = 1_800_000_000_000; // a bucket's start (a multiple of 60 s)
const clock: Clock = {
  wall: () => Date.now(),
  mono: () => Date.now() - START,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};
const never = () => false;

function setup() {
  const spool = new Spool(path.join(base, `spool-${n++}`));
  spool.ensure();
  const put = (id: string, time: number): { entry: Entry; path: string } => {
    const entry: Entry = { id, time, attempts: 1, arrival: START, destination: '-', lastError: '503' };
    const to = spool.deferredPath(time, formatEntry(entry));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.writeFileSync(to, '{}');
    return { entry, path: to };
  };
  return { spool, put, due: new DueScan(spool, clock) };
}

/** Takes what is due, as the queue manager does: from the list, and by a scan when one is wanted. */
function claimDue(due: DueScan, taken: Map<string, number>, scans: { n: number }) {
  const take = (list: { entry: Entry; path: string }[]) => {
    for (const { entry, path: at } of list) {
      assert.ok(!taken.has(entry.id), `${entry.id} taken twice`);
      taken.set(entry.id, clock.wall() - entry.time);
      fs.rmSync(at);
    }
  };
  if (due.listDue()) take(due.take(Infinity, never));
  if (due.ready()) {
    scans.n++;
    take(due.scan(Infinity, never));
  }
}

describe('due scan', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: START }));
  afterEach(() => mock.timers.reset());

  it('takes each of 3,000 retries in one bucket when it is due, with a scan per 1,024 of them, not one each', () => {
    const { put, due } = setup();
    for (let i = 0; i < 3000; i++) put(`m-${i}`, START + 20 + i * 15); // all within the bucket
    const taken = new Map<string, number>();
    const scans = { n: 0 };
    claimDue(due, taken, scans);
    assert.equal(scans.n, 1);
    assert.equal(taken.size, 0, 'nothing is due yet');
    for (let t = 0; t < 46_000; t += 5) {
      mock.timers.tick(5);
      due.rescanEvery(Infinity);
      claimDue(due, taken, scans);
    }
    assert.equal(taken.size, 3000);
    assert.ok(Math.max(...taken.values()) < 5, `at most one step late: ${Math.max(...taken.values())} ms`);
    // One scan to start, then one each time the list ran out of what it was complete for.
    assert.equal(scans.n, 1 + Math.floor(3000 / UPCOMING));
  });

  it('holds what the daemon itself defers, and leaves to the scan what lies beyond the list', () => {
    const { put, due } = setup();
    for (let i = 0; i < UPCOMING + 10; i++) put(`old-${i}`, START + 10_000 + i);
    const taken = new Map<string, number>();
    const scans = { n: 0 };
    claimDue(due, taken, scans);
    // Earlier than anything listed: goes out from the list at its time.
    const soon = put('soon', START + 500);
    due.added(soon.entry, soon.path);
    // Past the end of the list: written, but only a scan finds it.
    const late = put('late', START + 50_000);
    due.added(late.entry, late.path);
    mock.timers.tick(500);
    due.rescanEvery(Infinity);
    claimDue(due, taken, scans);
    assert.deepEqual([...taken.keys()], ['soon']);
    assert.equal(scans.n, 1, 'taken from the list');
    for (let t = 500; t < 51_000; t++) {
      mock.timers.tick(1);
      due.rescanEvery(Infinity);
      claimDue(due, taken, scans);
    }
    assert.equal(taken.size, UPCOMING + 12);
    // The one the list let go for `soon`, and `late`, each found by the scan at the end of the list, on time.
    assert.deepEqual([...taken].filter(([, late]) => late > 0), []);
  });

  it('finds names others put in deferred/ by the scan every interval, and only then', () => {
    const { put, due } = setup();
    put('listed', START + 30_000);
    const taken = new Map<string, number>();
    const scans = { n: 0 };
    claimDue(due, taken, scans);
    put('flushed', START + 100); // an operator's flush: the daemon was not told
    mock.timers.tick(1000);
    due.rescanEvery(2000);
    claimDue(due, taken, scans);
    assert.equal(taken.size, 0, 'the list does not know it');
    assert.equal(due.wakeAt(2000), 2000, 'the next look is at the interval');
    mock.timers.tick(1000);
    due.rescanEvery(2000);
    claimDue(due, taken, scans);
    assert.deepEqual([...taken.keys()], ['flushed']);
  });

  it('stops at the next bucket: what is in it is read when it starts', () => {
    const { put, due } = setup();
    put('now', START + 1000);
    put('next-bucket', START + 60_000 + 5);
    const taken = new Map<string, number>();
    const scans = { n: 0 };
    claimDue(due, taken, scans);
    assert.equal(due.wakeAt(Infinity), 1000, 'woken for the listed one');
    mock.timers.tick(1000);
    claimDue(due, taken, scans);
    assert.equal(due.wakeAt(Infinity), 60_000, 'then for the next bucket');
    mock.timers.tick(59_005);
    claimDue(due, taken, scans);
    assert.deepEqual([...taken.keys()], ['now', 'next-bucket']);
    assert.equal(scans.n, 2);
  });

  it('a message passed over leaves the list, and the next scan looks at it again', () => {
    const { put, due } = setup();
    put('busy', START + 100);
    due.scan(Infinity, never);
    mock.timers.tick(100);
    assert.deepEqual(due.take(Infinity, () => true), []);
    assert.ok(due.ready(), 'a scan is wanted');
    assert.deepEqual(due.scan(Infinity, never).map((d) => d.entry.id), ['busy']);
  });
});
