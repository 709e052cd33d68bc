import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DELIVERED_BUCKET_MS, dropUnfinishedKeep, findDelivered, keepDelivered, pruneDelivered, readAttemptsFile, recordAttempt } from '../../src/spool/history.js';
import { readMessage } from '../../src/spool/read.js';
import { Spool } from '../../src/spool/layout.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-history-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));

function freshSpool(name: string): Spool {
  const spool = new Spool(path.join(base, name));
  spool.ensure();
  return spool;
}

function inActive(spool: Spool, name: string): string {
  const p = spool.path('active', name);
  fs.writeFileSync(p, JSON.stringify({ url: 'http://127.0.0.1:1/x' }));
  return p;
}

describe('delivery history', () => {
  it('keeps a repeat delivery of one id beside the first, never over it', async () => {
    const spool = freshSpool('repeat');
    const at = 5 * DELIVERED_BUCKET_MS + 1000;
    recordAttempt(spool, 'order-1', { at: at - 500, status: 503, ms: 3 });
    const first = await keepDelivered(spool, inActive(spool, 'a'), 'order-1', { at, status: 200, ms: 2 });
    const second = await keepDelivered(spool, inActive(spool, 'b'), 'order-1', { at: at + 10, status: 201, ms: 2 });
    assert.notEqual(first, second);
    assert.match(path.basename(second), /^order-1@2\.json$/);
    const found = findDelivered(spool, 'order-1');
    assert.deepEqual(found.map((f) => readAttemptsFile(f.attemptsPath).map((a) => ('status' in a ? a.status : a.error))), [[201], [503, 200]]);
    // An id that is a prefix of another is not mistaken for it.
    assert.deepEqual(findDelivered(spool, 'order'), []);
  });

  it('undoes a keep that a kill interrupted before the unlink from active/, so the message is read and sent again, not bounced', async () => {
    const spool = freshSpool('interrupted');
    const at = 7 * DELIVERED_BUCKET_MS + 1000;
    const earlier = inActive(spool, 'earlier');
    await keepDelivered(spool, earlier, 'order-2', { at, status: 200, ms: 2 });
    fs.unlinkSync(earlier);
    recordAttempt(spool, 'order-2', { at: at + 5, status: 503, ms: 3 });
    const active = inActive(spool, 'again');
    await keepDelivered(spool, active, 'order-2', { at: at + 10, status: 200, ms: 2 });
    // Killed here: the message has two names, active/ and delivered/.
    assert.equal(fs.statSync(active).nlink, 2);
    assert.equal(readMessage(active, 1 << 20, Date.now() + 10_000).kind, 'invalid', 'a second name from elsewhere is never read');
    const read = readMessage(active, 1 << 20, Date.now() + 10_000, (st) => dropUnfinishedKeep(spool, 'order-2', st));
    assert.equal(read.kind, 'message');
    assert.equal(fs.statSync(active).nlink, 1);
    const kept = findDelivered(spool, 'order-2');
    assert.equal(kept.length, 1, 'the finished keep stays');
    assert.deepEqual(readAttemptsFile(kept[0]!.attemptsPath).map((a) => ('status' in a ? a.status : a.error)), [200]);
    assert.deepEqual(readAttemptsFile(spool.path('attempts', 'order-2.jsonl')).map((a) => ('status' in a ? a.status : a.error)), [503, 200], 'the undone keep\'s attempts are back with the message');
    const other = inActive(spool, 'unrelated');
    fs.linkSync(other, path.join(base, 'outside'));
    assert.equal(dropUnfinishedKeep(spool, 'order-2', fs.statSync(other)), false, 'a link from elsewhere is left alone');
  });

  it('prunes whole hours older than the keep time, and nothing else', async () => {
    const spool = freshSpool('prune');
    const hour = DELIVERED_BUCKET_MS;
    for (const h of [1, 2, 3, 4]) await keepDelivered(spool, inActive(spool, `m${h}`), `m${h}`, { at: h * hour + 5, status: 200, ms: 1 });
    fs.writeFileSync(spool.path('incoming', 'queued.json'), '{}');
    // At 5 h 30 min, keeping 2 h: the hours that ended before 3 h 30 min go (1 and 2).
    assert.equal(await pruneDelivered(spool, 2 * hour, 5.5 * hour), 2);
    assert.deepEqual(fs.readdirSync(spool.dir('delivered')).sort(), [String(3 * hour), String(4 * hour)]);
    assert.ok(fs.existsSync(spool.path('incoming', 'queued.json')));
    assert.equal(await pruneDelivered(spool, 2 * hour, 5.5 * hour), 0);
  });

  it('skips a torn last line', () => {
    const file = path.join(base, 'torn.jsonl');
    fs.writeFileSync(file, '{"at":1,"status":503,"ms":2}\n{"at":2,"sta');
    assert.deepEqual(readAttemptsFile(file), [{ at: 1, status: 503, ms: 2 }]);
  });
});
