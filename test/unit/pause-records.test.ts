/** Ended pauses are pruned once no message in the spool arrived before them (spool/pauses.ts PauseRecords). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { oldestArrival } from '../../src/operate/control.js';
import { Spool } from '../../src/spool/layout.js';
import { formatEntry } from '../../src/spool/names.js';
import { PauseRecords, pause, readPauses, resume } from '../../src/spool/pauses.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

function tempSpool(): Spool {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-pauses-'));
  roots.push(root);
  const spool = new Spool(path.join(root, 'spool'));
  spool.ensure();
  return spool;
}

/** A deferred message that arrived at `arrival`, due at `time`. */
function deferred(spool: Spool, id: string, arrival: number, time = arrival + 60_000): string {
  const file = spool.deferredPath(time, formatEntry({ id, time, attempts: 1, arrival, destination: 'ab12cd34ef567890', lastError: '503' }));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '{"url":"http://127.0.0.1:9/x"}');
  return file;
}

const T = Date.UTC(2026, 0, 1);

describe('pause records', () => {
  it('finds the oldest arrival across the queues, names only', () => {
    const spool = tempSpool();
    assert.equal(oldestArrival(spool), Infinity);
    deferred(spool, 'a', T + 5000);
    deferred(spool, 'b', T + 1000);
    fs.writeFileSync(spool.path('hold', formatEntry({ id: 'c', time: T, attempts: 0, arrival: T + 3000, destination: '-', lastError: '-' })), '{}');
    assert.equal(oldestArrival(spool), T + 1000);
    assert.ok(oldestArrival(spool, T + 4000) <= T + 4000, 'stops at the first at or below the floor');
  });

  it('keeps an ended pause while a message arrived before it ended, and prunes it after two walks agree', () => {
    const spool = tempSpool();
    pause(spool, 'old.example', T);
    resume(spool, 'old.example', T + 10_000);
    pause(spool, 'recent.example', T + 20_000);
    resume(spool, 'recent.example', T + 30_000);
    pause(spool, 'still.example', T);
    const early = deferred(spool, 'early', T + 5000);
    deferred(spool, 'later', T + 25_000);
    const records = new PauseRecords(spool, (floor) => oldestArrival(spool, floor));

    assert.equal(records.prune(), 0, 'a message arrived during the first pause');
    fs.rmSync(early);
    assert.equal(records.prune(), 0, 'the walk before still saw it: one walk may miss a message being renamed');
    assert.equal(records.prune(), 1, 'two walks in a row found nothing older than the first pause');
    const left = readPauses(spool).map((p) => `${p.pattern} ${p.until === null ? 'in force' : 'over'}`).sort();
    assert.deepEqual(left, ['recent.example over', 'still.example in force'], 'the pause in force is never pruned');
    assert.equal(records.prune(), 0);
  });

  it('prunes every ended pause of an empty spool, and none in force', () => {
    const spool = tempSpool();
    pause(spool, 'a.example', T);
    resume(spool, 'a.example', T + 1);
    pause(spool, 'b.example', T);
    const records = new PauseRecords(spool, (floor) => oldestArrival(spool, floor));
    assert.equal(records.prune(), 0, 'the first walk has none before it to agree with');
    assert.equal(records.prune(), 1);
    assert.deepEqual(readPauses(spool).map((p) => p.pattern), ['b.example']);
  });
});
