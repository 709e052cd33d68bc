/**
 * The producer library on a real spool folder: an id is unique in incoming/
 * whatever the timing, and nothing is acknowledged that is not whole.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { enqueue, enqueueMany } from '../../src/producer/enqueue.js';
import { SpoolError } from '../../src/errors.js';
import { Spool } from '../../src/spool/layout.js';
import { dropStagedTwin, moveToIncoming, stage, sweepTmp, STALE_MS } from '../../src/spool/staging.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-enqueue-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;
function newSpool(): Spool {
  const spool = new Spool(path.join(base, `spool-${n++}`));
  spool.ensure();
  return spool;
}
const read = (spool: Spool, id: string) => JSON.parse(fs.readFileSync(spool.path('incoming', `${id}.json`), 'utf8'));

describe('enqueue', () => {
  it('gives SPOOL_ERR_EXISTS to exactly one of two callers racing with one id, and replaces nothing', async () => {
    const spool = newSpool();
    for (let i = 0; i < 200; i++) {
      const id = `pair-${i}`;
      // Both pass the early check before either has written: only the final step can tell them apart.
      const results = await Promise.allSettled([enqueue({ url: 'http://127.0.0.1/', meta: { writer: 1 } }, { spool: spool.root, id }), enqueue({ url: 'http://127.0.0.1/', meta: { writer: 2 } }, { spool: spool.root, id })]);
      const won = results.findIndex((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      assert.equal(lost.length, 1, `pair ${i}: exactly one caller is refused`);
      assert.ok(lost[0]!.reason instanceof SpoolError && lost[0]!.reason.code === 'SPOOL_ERR_EXISTS');
      assert.equal(read(spool, id).meta.writer, won + 1, `pair ${i}: the message acknowledged is the one in incoming/`);
    }
    assert.deepEqual(fs.readdirSync(spool.dir('tmp')), [], 'nothing left in tmp/');
  });

  it('enqueueMany publishes the rest when one id is taken meanwhile, and says which', async () => {
    const spool = newSpool();
    // Its checks run at once; another producer takes 'b' before its writes are done.
    const pending = enqueueMany(['a', 'b', 'c'].map((id) => ({ id, message: { url: 'http://127.0.0.1/', meta: { from: 'many' } } })), { spool: spool.root });
    fs.writeFileSync(spool.path('incoming', 'b.json'), JSON.stringify({ url: 'http://127.0.0.1/', meta: { from: 'one' } }));
    const [many] = await Promise.allSettled([pending]);
    assert.equal(many.status, 'rejected');
    const err = (many as PromiseRejectedResult).reason as SpoolError & { published: string[] };
    assert.equal(err.code, 'SPOOL_ERR_EXISTS');
    assert.deepEqual(err.published, ['a', 'c']);
    assert.deepEqual([read(spool, 'a').meta.from, read(spool, 'b').meta.from, read(spool, 'c').meta.from], ['many', 'one', 'many']);
    assert.deepEqual(fs.readdirSync(spool.dir('tmp')), []);
  });

  it('requeue never replaces a fresh message with the same id', () => {
    const spool = newSpool();
    const bounced = spool.path('bounced', '1_1_1_-_404_x.json');
    fs.writeFileSync(bounced, JSON.stringify({ url: 'http://127.0.0.1/old' }));
    fs.writeFileSync(spool.path('incoming', 'x.json'), JSON.stringify({ url: 'http://127.0.0.1/fresh' }));
    assert.equal(moveToIncoming(spool, bounced, 'x'), 'taken');
    assert.equal(read(spool, 'x').url, 'http://127.0.0.1/fresh');
    assert.equal(JSON.parse(fs.readFileSync(bounced, 'utf8')).url, 'http://127.0.0.1/old', 'the bounced one stays where it was');
    fs.rmSync(spool.path('incoming', 'x.json'));
    assert.equal(moveToIncoming(spool, bounced, 'x'), 'moved');
    assert.equal(read(spool, 'x').url, 'http://127.0.0.1/old');
    assert.equal(moveToIncoming(spool, bounced, 'x'), 'gone');
    assert.deepEqual(fs.readdirSync(spool.dir('tmp')), []);
  });
});

describe('what a crash leaves in tmp/', () => {
  it('a staged twin is recognised and dropped; a stranger\'s hard link is not', async () => {
    const spool = newSpool();
    const staged = await stage(spool, 'twin', '{"url":"http://127.0.0.1/"}');
    fs.linkSync(staged, spool.path('incoming', 'twin.json')); // and the producer dies here
    const st = fs.statSync(spool.path('incoming', 'twin.json'));
    assert.equal(st.nlink, 2);
    assert.equal(dropStagedTwin(spool, 'twin', st), true);
    assert.equal(fs.statSync(spool.path('incoming', 'twin.json')).nlink, 1);
    const outside = path.join(base, 'outside.json');
    fs.writeFileSync(outside, '{}');
    fs.linkSync(outside, spool.path('incoming', 'stranger.json'));
    assert.equal(dropStagedTwin(spool, 'stranger', fs.statSync(outside)), false);
    assert.equal(fs.statSync(outside).nlink, 2);
  });

  it('stages under one name per id while it is free, else under a name of its own, and finds the twin either way', async () => {
    const spool = newSpool();
    const first = await stage(spool, 'dup', '{"url":"http://127.0.0.1/1"}');
    const second = await stage(spool, 'dup', '{"url":"http://127.0.0.1/2"}');
    assert.equal(path.basename(first), 'dup.json.staged');
    assert.match(path.basename(second), /^dup\.json\.\d+\.[0-9a-f]{8}$/);
    assert.equal(JSON.parse(fs.readFileSync(first, 'utf8')).url, 'http://127.0.0.1/1', 'the first writer\'s file is untouched');
    // The second writer publishes; the first was killed before its link.
    const incoming = spool.path('incoming', 'dup.json');
    fs.linkSync(second, incoming);
    assert.equal(dropStagedTwin(spool, 'dup', fs.statSync(incoming), () => fs.statSync(incoming).nlink), true);
    assert.equal(fs.statSync(incoming).nlink, 1);
    assert.ok(fs.existsSync(first), 'a file of the same id that is not the twin stays');

    // The twin's writer unlinked it between the daemon's look at the link count and its lookup: tmp/ is not scanned.
    const third = await stage(spool, 'late', '{}');
    const fourth = await stage(spool, 'late', '{}');
    fs.linkSync(fourth, spool.path('incoming', 'late.json'));
    assert.equal(dropStagedTwin(spool, 'late', fs.statSync(fourth), () => 1), true);
    assert.ok(fs.existsSync(fourth) && fs.existsSync(third), 'told the twin is gone, nothing was looked for or removed');
  });

  it('the sweep removes stale and published staging, and puts a message in transit back', async () => {
    const spool = newSpool();
    const old = (Date.now() - STALE_MS - 1000) / 1000;
    const stale = await stage(spool, 'never-acknowledged', '{}');
    fs.utimesSync(stale, old, old);
    const fresh = await stage(spool, 'being-written', '{}');
    const published = await stage(spool, 'published', '{}');
    fs.linkSync(published, spool.path('incoming', 'published.json'));
    const handMade = spool.path('tmp', 'hand-made.json');
    fs.writeFileSync(handMade, '{}');
    fs.utimesSync(handMade, old, old);
    // A requeue killed half-way: the message is out of bounced/, not yet in incoming/.
    const transit = spool.path('tmp', 'requeued.json.transit.999999.0123abcd');
    fs.writeFileSync(transit, '{"url":"http://127.0.0.1/"}');
    fs.utimesSync(transit, old, old);
    const taken = spool.path('tmp', 'taken.json.transit.999999.0123abcd');
    fs.writeFileSync(taken, '{"url":"http://127.0.0.1/requeued"}');
    fs.utimesSync(taken, old, old);
    fs.writeFileSync(spool.path('incoming', 'taken.json'), '{"url":"http://127.0.0.1/fresh"}');

    const r = sweepTmp(spool);
    assert.equal(r.removed, 2);
    assert.equal(r.twins, 1);
    assert.deepEqual(r.rescued, [{ id: 'requeued', queue: 'incoming' }, { id: 'taken', queue: 'hold' }].sort((a, b) => (r.rescued.findIndex((x) => x.id === a.id) - r.rescued.findIndex((x) => x.id === b.id))));
    assert.deepEqual(fs.readdirSync(spool.dir('tmp')), [path.basename(fresh)]);
    assert.deepEqual(fs.readdirSync(spool.dir('incoming')).sort(), ['published.json', 'requeued.json', 'taken.json']);
    assert.equal(read(spool, 'taken').url, 'http://127.0.0.1/fresh');
    const held = fs.readdirSync(spool.dir('hold'));
    assert.equal(held.length, 1);
    assert.match(held[0]!, /_taken\.json$/);
  });
});
