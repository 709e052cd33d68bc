/**
 * The queue manager's scheduling on an injected clock (node:test mock
 * timers), over a real spool folder, with a sender that answers as scripted:
 * no real time passes and no request leaves the process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach, describe, it, mock } from 'node:test';
import { pino } from 'pino';
import type { AttemptResult } from '../../src/delivery/classify.js';
import type { Message } from '../../src/delivery/message.js';
import type { Sender } from '../../src/delivery/send.js';
import type { Clock } from '../../src/queue/clock.js';
import { QueueManager } from '../../src/queue/queue-manager.js';
import { resolveConfig } from '../../src/service/config.js';
import { Spool } from '../../src/spool/layout.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-qm-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;

/** Answers every request with `answer(id)`; records what was sent. */
class ScriptedSender {
  sent: string[] = [];
  constructor(private readonly answer: (id: string) => AttemptResult) {}
  send(_message: Message, opts: { id: string }): Promise<AttemptResult> {
    this.sent.push(opts.id);
    return Promise.resolve(this.answer(opts.id));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  retire(): Promise<void> {
    return Promise.resolve();
  }
}

const ok: AttemptResult = { kind: 'response', status: 200, excerpt: '', elapsed: 1 };
const unavailable: AttemptResult = { kind: 'response', status: 503, excerpt: '', elapsed: 1 };
/** Lets the manager's promises and immediates run (they are real; the timers are not). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

describe('queue manager scheduling', () => {
  let wallOffset = 0;
  const clock: Clock = {
    wall: () => Date.now() + wallOffset,
    mono: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (t) => clearTimeout(t),
  };
  beforeEach(() => {
    wallOffset = 0;
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
  });
  afterEach(() => mock.timers.reset());

  function setup(answer: (id: string) => AttemptResult, flags: Record<string, string> = {}) {
    const spool = new Spool(path.join(base, `spool-${n++}`));
    spool.ensure();
    const config = resolveConfig({ spool: spool.root, minBackoff: '1000', maxBackoff: '1000', scanInterval: '2000', ...flags }, {});
    const sender = new ScriptedSender(answer);
    const qm = new QueueManager(spool, config, sender as unknown as Sender, pino({ level: 'silent' }), null, clock);
    const drop = (id: string) => fs.writeFileSync(spool.path('incoming', `${id}.json`), JSON.stringify({ url: 'http://127.0.0.1:1/x' }));
    return { spool, qm, sender, drop };
  }

  it('retries on time after the wall clock is stepped back an hour (spacing runs on the monotonic clock)', async () => {
    const { qm, sender, drop } = setup((id) => (sender.sent.filter((s) => s === id).length < 2 ? unavailable : ok));
    drop('before-step');
    qm.start();
    await settle();
    assert.deepEqual(sender.sent, ['before-step']);
    wallOffset = -3_600_000;
    drop('after-step');
    qm.noticeIncoming('after-step.json');
    await settle();
    assert.deepEqual(sender.sent, ['before-step', 'after-step']);
    // The fresh failure is due 0.75 to 1.25 s later by the new clock: it is retried then.
    for (let t = 0; t < 1500; t += 100) {
      mock.timers.tick(100);
      await settle();
    }
    assert.deepEqual(sender.sent, ['before-step', 'after-step', 'after-step']);
    // The one written before the step waits the hour the clock went back, as documented.
    mock.timers.tick(60_000);
    await settle();
    assert.equal(sender.sent.filter((s) => s === 'before-step').length, 1);
    await qm.stop(0);
  });

  it('a message made due now by an operator is found at the next tick, whatever the clock did', async () => {
    const { spool, qm, sender } = setup(() => ok);
    qm.start();
    await settle();
    wallOffset = -3_600_000;
    const now = clock.wall();
    const dir = spool.bucketDir(Math.floor(now / 60_000) * 60_000);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${now}_1_${now}_-_503_flushed.json`), JSON.stringify({ url: 'http://127.0.0.1:1/x' }));
    mock.timers.tick(2100);
    await settle();
    assert.deepEqual(sender.sent, ['flushed']);
    await qm.stop(0);
  });

  it('claims no more than the active limit, and claims again as the set empties', async () => {
    let release: (() => void)[] = [];
    const { qm, sender, drop } = setup(() => ok, { activeLimit: '10', perDestination: '2', concurrency: '2' });
    (sender as unknown as { send: (m: Message, o: { id: string }) => Promise<AttemptResult> }).send = (_m, o) => {
      sender.sent.push(o.id);
      return new Promise((r) => release.push(() => r(ok)));
    };
    for (let i = 0; i < 30; i++) drop(`m-${i}`);
    qm.start();
    await settle();
    assert.equal(qm.activeCount, 10, 'the active set is full');
    assert.equal(sender.sent.length, 2, 'two in flight: the window would allow more, the concurrency does not');
    for (let round = 0; round < 20 && sender.sent.length < 30; round++) {
      const now = release;
      release = [];
      for (const r of now) r();
      await settle();
      // A delivered id is held until its file is gone, through the real thread pool.
      await qm.removals();
      mock.timers.tick(100);
      await settle();
      assert.ok(qm.activeCount <= 10, `active ${qm.activeCount}`);
    }
    assert.equal(sender.sent.length, 30, 'every message went out');
    for (const r of release) r();
    await settle();
    await qm.removals();
    assert.equal(qm.activeCount, 0);
    await qm.stop(0);
  });

  it('stops claiming while 256 delivered messages wait for the disk, and claims again once their files are gone', async () => {
    const { spool, qm, sender, drop } = setup(() => ok, { keepDelivered: '1h' });
    // A disk slower than the receiver: every thread of the pool (4, libuv's
    // default) waits in open(2) on a FIFO with no writer, so each delivered
    // message's keep (through the pool) waits behind them.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const fifos = Array.from({ length: threads }, (_, i) => path.join(spool.root, `stall-${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const stalls = fifos.map((f) => fs.promises.open(f, 'r'));
    let unblocked = false;
    const unblock = async () => {
      if (unblocked) return;
      unblocked = true;
      for (const f of fifos) fs.closeSync(fs.openSync(f, 'w'));
      for (const h of await Promise.all(stalls)) await h.close();
    };
    for (let i = 0; i < 1000; i++) drop(`m-${i}`);
    // Whatever fails, the pool must not stay stalled nor the manager run on: the process would never end.
    try {
      qm.start();
      let seen = -1;
      for (let round = 0; round < 200 && sender.sent.length !== seen; round++) {
        seen = sender.sent.length;
        mock.timers.tick(100);
        await settle();
      }
      // Claims stopped at the bound; what was already claimed went out.
      assert.ok(sender.sent.length >= 256 && sender.sent.length <= 256 + 2 * 64 + 64, `sent ${sender.sent.length}`);
      assert.equal(qm.activeCount, sender.sent.length, 'every one sent is still held: its file is in active/');
      assert.equal(fs.readdirSync(spool.dir('active')).length, sender.sent.length);
      // The disk catches up: a writer for each FIFO lets its open end.
      await unblock();
      for (let round = 0; round < 2000 && (sender.sent.length < 1000 || qm.activeCount > 0); round++) {
        await qm.removals();
        mock.timers.tick(100);
        await settle();
      }
      assert.equal(sender.sent.length, 1000, 'every message went out');
      assert.equal(new Set(sender.sent).size, 1000, 'each once');
      assert.equal(qm.activeCount, 0);
      assert.deepEqual(fs.readdirSync(spool.dir('active')), []);
    } finally {
      await unblock();
      await qm.stop(0);
    }
  });

  it('waits, not spins, while delivered messages waiting for the disk hold what the slots need', async () => {
    const { spool, qm, sender, drop } = setup(() => ok, { keepDelivered: '1h' });
    const fifos = Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, (_, i) => path.join(spool.root, `stall-${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const stalls = fifos.map((f) => fs.promises.open(f, 'r'));
    // Timers of 0 ms are counted; past 10,000 they are dropped, so a spin fails here instead of hanging the mocked tick.
    let immediate = 0;
    const real = clock.setTimeout;
    clock.setTimeout = (fn, ms) => (ms > 0 ? real(fn, ms) : ++immediate > 10_000 ? real(() => undefined, 2 ** 31 - 1) : real(fn, ms));
    // More than twice the concurrency: once all are delivered, the slots need no claims.
    for (let i = 0; i < 200; i++) drop(`m-${i}`);
    try {
      qm.start();
      for (let round = 0; round < 30; round++) {
        mock.timers.tick(100);
        await settle();
      }
      assert.equal(sender.sent.length, 200);
      assert.equal(qm.activeCount, 200, 'all held until their files are gone');
      assert.ok(immediate < 50, `${immediate} timers of 0 ms in 3 s`);
    } finally {
      clock.setTimeout = real;
      for (const f of fifos) fs.closeSync(fs.openSync(f, 'w'));
      for (const h of await Promise.all(stalls)) await h.close();
      await qm.removals();
      await qm.stop(0);
    }
  });

  it('sends retries and scheduled messages at their time, each once, while thousands wait in the same bucket', async () => {
    const { spool, qm, sender } = setup((id) => (id.startsWith('r-') && sender.sent.filter((s) => s === id).length < 2 ? unavailable : ok), { scanInterval: '10s' });
    const sentAt = new Map<string, number[]>();
    const inner = sender.send.bind(sender);
    sender.send = (m, o) => {
      sentAt.set(o.id, [...(sentAt.get(o.id) ?? []), clock.wall()]);
      return inner(m, o);
    };
    // Scheduled over the next 40 s (all in this minute's bucket), and retries among them.
    const start = clock.wall();
    const wanted = new Map<string, number>();
    for (let i = 0; i < 1500; i++) {
      const at = start + 2000 + i * 25;
      wanted.set(`s-${i}`, at);
      fs.writeFileSync(spool.path('incoming', `s-${i}.json`), JSON.stringify({ url: 'http://127.0.0.1:1/x', deliverAt: new Date(at).toISOString() }));
    }
    for (let i = 0; i < 20; i++) fs.writeFileSync(spool.path('incoming', `r-${i}.json`), JSON.stringify({ url: 'http://127.0.0.1:1/x' }));
    qm.start();
    for (let t = 0; t < 45_000; t += 5) {
      mock.timers.tick(5);
      await settle();
      if (t % 500 === 0) await qm.removals();
    }
    await qm.removals();
    for (const [id, at] of wanted) {
      const times = sentAt.get(id) ?? [];
      assert.equal(times.length, 1, `${id} sent ${times.length} times`);
      assert.ok(times[0]! >= at && times[0]! - at <= 5, `${id} sent ${times[0]! - at} ms after its time`);
    }
    for (let i = 0; i < 20; i++) {
      const [first, second] = sentAt.get(`r-${i}`) ?? [];
      // --min-backoff = --max-backoff = 1 s, with jitter of a quarter either way.
      assert.ok(second !== undefined && second - first! >= 750 && second - first! <= 1255, `r-${i} retried ${second! - first!} ms later`);
    }
    await qm.stop(0);
  });

  it('counts a claim that finds its message taken first, and tells the observer', async () => {
    const { spool, qm, drop } = setup(() => ok);
    const missed: string[] = [];
    qm.observer = { moved: () => undefined, outcome: () => undefined, received: () => undefined, putBack: () => undefined, claimMissed: (from) => missed.push(from) };
    qm.start();
    await settle();
    drop('taken');
    // Another daemon (or an operator) takes the file between its event and our claim.
    fs.rmSync(spool.path('incoming', 'taken.json'));
    qm.noticeIncoming('taken.json');
    await settle();
    assert.deepEqual(qm.claimsMissed, { incoming: 1, deferred: 0 });
    assert.deepEqual(missed, ['incoming']);
    await qm.stop(0);
  });
});
