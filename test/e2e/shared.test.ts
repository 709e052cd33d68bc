/**
 * Several daemons on one spool (`spoold start --shared`): claims stay atomic
 * renames, each claim names its owner, and a daemon's claims are recovered
 * by the others only once its lease has expired.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cleanup, drop, filesIn, sleep, startDaemon, startSink, tempSpool, waitFor, type Daemon, type Sink } from './helpers.js';

afterEach(cleanup);

const SHARED = ['--shared', '--lease-ttl', '1s'];

function ownerOf(d: Daemon): string {
  const owner = d.events('started')[0]?.owner;
  assert.equal(typeof owner, 'string', 'a shared daemon names its owner id when it starts');
  return owner as string;
}

/** Claims in active/ per owner id. */
function claims(spool: string): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const name of fs.readdirSync(path.join(spool, 'active'))) {
    const at = name.indexOf('@');
    const owner = at === -1 ? '' : name.slice(0, at);
    const id = name.replace(/^(?:[^_]*_){5}/, '').slice(0, -5);
    by.set(owner, [...(by.get(owner) ?? []), id]);
  }
  return by;
}

function sentIds(sink: Sink): Map<string, number> {
  const n = new Map<string, number>();
  for (const r of sink.received) {
    const id = String(r.headers['idempotency-key']);
    n.set(id, (n.get(id) ?? 0) + 1);
  }
  return n;
}

describe('shared spool', () => {
  it('two daemons deliver every message exactly once between them, and leave no lease behind', async () => {
    const sink = await startSink((_req, res) => setTimeout(() => res.end('ok'), 5));
    const spool = tempSpool();
    // A long lease: this test is about sharing, not expiry, and a loaded CI
    // machine may stall a daemon's timers for a second.
    const a = await startDaemon(spool, ['--shared', '--lease-ttl', '10s', '--concurrency', '16']);
    const b = await startDaemon(spool, ['--shared', '--lease-ttl', '10s', '--concurrency', '16']);
    assert.notEqual(ownerOf(a), ownerOf(b));
    assert.deepEqual(filesIn(spool, 'leases').sort(), [ownerOf(a), ownerOf(b)].sort());

    const ids = Array.from({ length: 600 }, (_, i) => `both-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook`, method: 'POST', body: id });
    await waitFor('all delivered', () => a.events('delivered').length + b.events('delivered').length >= ids.length, 30_000);

    const sent = sentIds(sink);
    assert.equal(sent.size, ids.length);
    assert.deepEqual([...sent.values()].filter((n) => n !== 1), [], 'no message was sent twice');
    assert.ok(a.events('delivered').length > 0 && b.events('delivered').length > 0, `both delivered (${a.events('delivered').length} / ${b.events('delivered').length})`);
    for (const q of ['incoming', 'active', 'deferred', 'bounced']) assert.deepEqual(filesIn(spool, q), [], `${q}/ is empty`);
    assert.equal(a.events('recovered').length + b.events('recovered').length, 0, 'no live daemon had its claims taken');

    assert.equal((await a.stop()).code, 0);
    assert.equal((await b.stop()).code, 0);
    assert.deepEqual(filesIn(spool, 'leases'), []);
  });

  it('splits incoming/ between two daemons, and one delivers a stopped peer\'s part long before its lease expires', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    // b first: a finds b's lease as it starts, and splits incoming/ at once.
    const b = await startDaemon(spool, ['--shared', '--lease-ttl', '120s']);
    const a = await startDaemon(spool, ['--shared', '--lease-ttl', '120s', '--scan-interval', '500ms']);
    assert.equal((await a.waitEvent('partition')).parts, 2);
    b.child.kill('SIGSTOP');
    try {
      const ids = Array.from({ length: 60 }, (_, i) => `split-${i}`);
      for (const id of ids) drop(spool, id, { url: `${sink.url}/hook` });
      // Half of them are b's part, which a does not claim on their file events;
      // b's lease lives for two minutes, so only a's scans can deliver them.
      await waitFor('all delivered by a', () => ids.every((id) => a.events('delivered', id).length === 1), 30_000, 100);
      assert.equal(a.events('peer-dead').length, 0, 'b was never judged dead');
      assert.equal(sink.received.length, ids.length, 'each sent once');
    } finally {
      b.child.kill('SIGCONT');
    }
    assert.equal((await a.stop()).code, 0);
    assert.deepEqual(a.events('stopped')[0]!.claimsMissed, { incoming: 0, deferred: 0 }, 'b, stopped, took nothing a tried to claim');
    assert.equal((await b.stop()).code, 0);
  });

  it('a daemon splits incoming/ with a peer that starts after it, and takes it back when the peer stops, without waiting for its next beat', async () => {
    const spool = tempSpool();
    // Beats every 200 s: whatever a learns within this test, it learns from the lease files appearing and going.
    const a = await startDaemon(spool, ['--shared', '--lease-ttl', '10m']);
    assert.equal(a.events('partition').length, 0, 'a starts alone: incoming/ is not split');
    const b = await startDaemon(spool, ['--shared', '--lease-ttl', '10m']);
    await waitFor('a splits incoming/ with b', () => a.events('partition').some((l) => l.parts === 2), 15_000);
    assert.equal((await b.stop()).code, 0);
    await waitFor('a alone again', () => a.events('partition').at(-1)?.parts === 1, 15_000);
    assert.equal((await a.stop()).code, 0);
  });

  it('never takes a live daemon\'s claims, however long its requests take; a killed one\'s are delivered by the survivor', async () => {
    // Every request takes 2.5 lease times: a lease must be told apart from
    // the age of the claims it covers.
    const sink = await startSink((_req, res) => setTimeout(() => res.end('ok'), 2500));
    const spool = tempSpool();
    const a = await startDaemon(spool, [...SHARED, '--concurrency', '8']);
    const b = await startDaemon(spool, [...SHARED, '--concurrency', '8']);
    const ids = Array.from({ length: 24 }, (_, i) => `slow-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook` });

    const owners = [ownerOf(a), ownerOf(b)];
    await waitFor('both daemons hold claims', () => owners.every((o) => (claims(spool).get(o)?.length ?? 0) > 0));
    await sleep(2000); // two lease times with requests in flight
    assert.deepEqual([...sentIds(sink).values()].filter((n) => n !== 1), [], 'nothing sent twice while its owner lives');
    assert.equal(a.events('peer-dead').length + b.events('peer-dead').length, 0);

    const killedClaims = new Set(claims(spool).get(owners[0]!) ?? []);
    assert.ok(killedClaims.size > 0);
    await a.stop('SIGKILL');
    const dead = await b.waitEvent('peer-dead', undefined, 10_000);
    assert.equal(dead.owner, owners[0]);

    await waitFor('every message delivered', () => ids.every((id) => b.events('delivered', id).length + a.events('delivered', id).length === 1), 40_000, 100);
    for (const q of ['incoming', 'active', 'deferred', 'bounced']) assert.deepEqual(filesIn(spool, q), [], `${q}/ is empty`);
    const recovered = new Set(b.events('recovered').map((l) => l.id));
    assert.deepEqual([...recovered].sort(), [...killedClaims].sort(), 'exactly the killed daemon\'s claims were recovered');
    const twice = [...sentIds(sink)].filter(([, n]) => n > 1).map(([id]) => id);
    assert.ok(twice.every((id) => killedClaims.has(id)), `only the killed daemon's claims may be sent twice: ${twice.join(', ')}`);
    assert.deepEqual(filesIn(spool, 'leases'), [owners[1]], 'the dead lease is removed');
    assert.equal((await b.stop()).code, 0);
  });

  it('a paused daemon whose lease expired learns it, and nothing is lost', async () => {
    const sink = await startSink((_req, res) => setTimeout(() => res.end('ok'), 1500));
    const spool = tempSpool();
    const a = await startDaemon(spool, [...SHARED, '--concurrency', '4']);
    const b = await startDaemon(spool, [...SHARED, '--concurrency', '4']);
    const ids = Array.from({ length: 16 }, (_, i) => `pause-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook` });
    // Stopped with requests in flight: their answers reach it only after its claims were recovered.
    const inFlight = await waitFor('a has requests in flight', () => {
      const mine = (claims(spool).get(ownerOf(a)) ?? []).filter((id) => sink.byId(id).length > 0);
      return mine.length > 0 && mine;
    });
    a.child.kill('SIGSTOP');
    await b.waitEvent('peer-dead', undefined, 10_000);
    a.child.kill('SIGCONT');
    await a.waitEvent('lease-lost', undefined, 10_000);
    await waitFor('every message delivered', () => ids.every((id) => a.events('delivered', id).length + b.events('delivered', id).length >= 1), 30_000, 100);
    // Even where its own lease is seen through a cache, the daemon learns it from each claim it settles.
    await waitFor('a claim-lost line for each', () => inFlight.every((id) => a.events('claim-lost', id).length === 1), 10_000);
    for (const id of inFlight) assert.equal(a.events('claim-lost', id)[0]!.to, 'delivered');
    await waitFor('queues empty', () => ['incoming', 'active', 'deferred'].every((q) => filesIn(spool, q).length === 0), 10_000);
    assert.deepEqual(filesIn(spool, 'bounced'), []);
    assert.equal((await a.stop()).code, 0);
    assert.equal((await b.stop()).code, 0);
  });

  it('one key\'s messages go one at a time even while its head is held by the other daemon', async () => {
    const open: import('node:http').ServerResponse[] = [];
    let concurrent = 0;
    let worst = 0;
    const sink = await startSink((_req, res) => {
      worst = Math.max(worst, ++concurrent);
      open.push(res);
    });
    const spool = tempSpool();
    const a = await startDaemon(spool, SHARED);
    const b = await startDaemon(spool, SHARED);
    drop(spool, 'k-00', { url: `${sink.url}/hook`, orderingKey: 'customer-1' });
    await waitFor('the head is in flight', () => open.length === 1);
    // The rest of the key, claimed by either daemon: the one not holding the head must not elect another.
    for (let i = 1; i < 20; i++) drop(spool, `k-${String(i).padStart(2, '0')}`, { url: `${sink.url}/hook`, orderingKey: 'customer-1' });
    await sleep(1500);
    assert.equal(open.length, 1, 'nothing else of the key went out while its head was in flight');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      await waitFor(`message ${i} of the key`, () => open.length > 0, 10_000);
      const res = open.shift()!;
      ids.push(String(res.req.headers['idempotency-key']));
      concurrent--;
      res.end('ok');
    }
    assert.equal(worst, 1, 'one at a time');
    assert.equal(ids[0], 'k-00');
    // Arrival order across two daemons is not promised (see the README): the
    // key's messages are claimed by both, and an election sees only what has
    // reached the line.
    assert.deepEqual([...ids].sort(), Array.from({ length: 20 }, (_, i) => `k-${String(i).padStart(2, '0')}`), 'each once');
    await a.stop();
    await b.stop();
  });

  it('a claim taken from under the daemon is not moved, counted or logged as its own', async () => {
    const spool = tempSpool();
    const taken = path.join(path.dirname(spool), `${path.basename(spool)}-taken`);
    fs.mkdirSync(taken);
    // Another process takes the claim while the request is in flight (as a peer's recovery does), then the receiver answers 503.
    const sink = await startSink((req, res) => {
      for (const name of fs.readdirSync(path.join(spool, 'active'))) fs.renameSync(path.join(spool, 'active', name), path.join(taken, name));
      res.writeHead(req.url.endsWith('/refuse') ? 422 : 503).end('no');
    });
    const d = await startDaemon(spool);
    try {
      drop(spool, 'retry', { url: `${sink.url}/hook` });
      drop(spool, 'refused', { url: `${sink.url}/refuse` });
      await d.waitEvent('claim-lost', 'retry');
      await d.waitEvent('claim-lost', 'refused');
      assert.equal(d.events('claim-lost', 'retry')[0]!.to, 'deferred');
      assert.equal(d.events('claim-lost', 'refused')[0]!.to, 'bounced');
      assert.deepEqual(d.events('deferred'), []);
      assert.deepEqual(d.events('bounced'), []);
      assert.deepEqual(filesIn(spool, 'deferred'), []);
      assert.deepEqual(fs.readdirSync(path.join(spool, 'bounced')), [], 'no orphan reason record');
      assert.equal(fs.readdirSync(taken).length, 2, 'the messages are where the other process put them');
    } finally {
      await d.stop();
      await sink.close();
      fs.rmSync(taken, { recursive: true, force: true });
    }
  });

  it('a single daemon and shared ones refuse each other', async () => {
    const spool = tempSpool();
    const alone = await startDaemon(spool);
    const shared = await startDaemon(spool, SHARED, { ready: false });
    assert.equal((await shared.exited).code, 1);
    assert.match(shared.stderr, /without --shared .* holds this spool/);
    assert.equal((await alone.stop()).code, 0);

    const peer = await startDaemon(spool, SHARED);
    const single = await startDaemon(spool, [], { ready: false });
    assert.equal((await single.exited).code, 1);
    assert.match(single.stderr, /daemons sharing this spool are running .*--shared/);
    assert.equal((await peer.stop()).code, 0);
    // Once the shared daemons are gone, a single one starts.
    const again = await startDaemon(spool);
    assert.equal((await again.stop()).code, 0);
  });
});
