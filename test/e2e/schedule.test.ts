/**
 * Scheduled first delivery ("deliverAt", "delay"): the time waits in the
 * message's name in deferred/, like a retry, so it crosses restarts, a short
 * schedule never waits behind a long one, and attempts stay unspent.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, drop, ensureSpoolDirs, filesIn, idsIn, ROOT, spoolctl, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

after(cleanup);

const { enqueue, enqueueMany } = (await import(path.join(ROOT, 'dist/index.js'))) as typeof import('../../src/index.js');

/** The deferred/ name of a message: <time>_<attempts>_<arrival>_<tag>_<last error>_<id>.json */
function deferredName(spool: string, id: string): { time: number; attempts: number; token: string } | null {
  const name = filesIn(spool, 'deferred').find((n) => n.endsWith(`_${id}.json`));
  if (!name) return null;
  const [time, attempts, , , token] = name.split('_');
  return { time: Number(time), attempts: Number(attempts), token: token! };
}

describe('scheduled delivery', () => {
  it('is not sent before its time, across a restart, with its attempts unspent and its age counted from then', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    let daemon = await startDaemon(spool);
    try {
      const soon = Date.now() + 3_000;
      // maxAge 1s: counted from arrival, it would have expired before its time.
      await enqueue({ url: `${sink.url}/soon`, deliverAt: new Date(soon).toISOString(), maxAge: '1s' }, { spool, id: 'soon' });
      const [later] = await enqueueMany([{ message: { url: `${sink.url}/later`, delay: '1d' }, id: 'later' }], { spool });
      assert.equal(later, 'later');
      await daemon.waitEvent('scheduled', 'soon');
      await daemon.waitEvent('scheduled', 'later');
      const scheduled = deferredName(spool, 'soon')!;
      assert.deepEqual(scheduled, { time: soon, attempts: 0, token: 'SCHEDULED' });
      assert.ok(Math.abs(deferredName(spool, 'later')!.time - (Date.now() + 86_400_000)) < 60_000, 'a delay is fixed at enqueue');

      assert.equal((await daemon.stop()).code, 0);
      daemon = await startDaemon(spool);
      const delivered = await daemon.waitEvent('delivered', 'soon', 15_000);
      assert.equal(delivered.attempt, 1);
      const [request] = sink.byId('soon');
      assert.ok(request!.at >= soon, `sent ${soon - request!.at} ms early`);
      assert.equal(sink.byId('soon').length, 1);
      // The day-long schedule is still waiting; the short one did not wait behind it.
      assert.deepEqual(idsIn(spool, 'deferred'), ['later']);
      assert.equal(sink.byId('later').length, 0);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('shows as scheduled in spoolctl list; flush sends it now; a hand-written "delay" counts from the file', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    try {
      drop(spool, 'by-hand', { url: `${sink.url}/x`, delay: '1h' });
      await daemon.waitEvent('scheduled', 'by-hand');
      const { time } = deferredName(spool, 'by-hand')!;
      assert.ok(Math.abs(time - (Date.now() + 3_600_000)) < 30_000, 'an hour from the file');
      const table = spoolctl(['list', '--queue', 'deferred', '--spool', spool]).stdout;
      assert.match(table, /by-hand\s+deferred\s+0\s+in (59|60)m\s+127\.0\.0\.1:\d+\s+-\s+scheduled$/m);
      const [listed] = JSON.parse(spoolctl(['list', '--json', '--queue', 'deferred', '--spool', spool]).stdout) as { scheduled: boolean; lastError: string | null; nextAttemptAt: number }[];
      assert.equal(listed!.scheduled, true);
      assert.equal(listed!.lastError, null);
      assert.equal(listed!.nextAttemptAt, time);
      const shown = spoolctl(['show', 'by-hand', '--spool', spool]).stdout;
      assert.match(shown, /^scheduled for: \S+ \(in (59|60)m\)$/m);
      assert.doesNotMatch(shown, /^arrived:/m, 'it has not arrived yet: its age counts from its time');

      assert.equal(spoolctl(['flush', 'by-hand', '--spool', spool]).status, 0);
      const delivered = await daemon.waitEvent('delivered', 'by-hand');
      assert.equal(delivered.attempt, 1);
      assert.equal(daemon.events('scheduled', 'by-hand').length, 1, 'a flushed schedule is not scheduled again');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('spoolctl enqueue --in and --at; a schedule after expiresAt is refused at enqueue and bounced when met', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    try {
      const inTen = spoolctl(['enqueue', '--spool', spool, '--id', 'in-ten', '--in', '10m', '--url', `${sink.url}/x`]);
      assert.equal(inTen.status, 0, inTen.stderr);
      const at = Date.now() + 7_200_000;
      const atTwo = spoolctl(['enqueue', '--spool', spool, '--id', 'at-two', '--at', new Date(at).toISOString(), '--url', `${sink.url}/x`]);
      assert.equal(atTwo.status, 0, atTwo.stderr);
      await daemon.waitEvent('scheduled', 'in-ten');
      await daemon.waitEvent('scheduled', 'at-two');
      assert.ok(Math.abs(deferredName(spool, 'in-ten')!.time - (Date.now() + 600_000)) < 30_000);
      assert.equal(deferredName(spool, 'at-two')!.time, at);

      const refused = spoolctl(['enqueue', '--spool', spool, '--at', new Date(at).toISOString(), '-'], { input: JSON.stringify({ url: `${sink.url}/x`, expiresAt: new Date(at - 60_000).toISOString() }) });
      assert.equal(refused.status, 2);
      assert.equal(refused.stderr, 'spoolctl: invalid message: "deliverAt" is not before "expiresAt": it would expire before its first attempt\n');
      await assert.rejects(enqueue({ url: `${sink.url}/x`, delay: '1h', expiresAt: Date.now() + 60_000 }, { spool }), /"deliverAt" is not before "expiresAt"/);
      const both = spoolctl(['enqueue', '--spool', spool, '--at', '1m', '--in', '1m', '--url', `${sink.url}/x`]);
      assert.equal(both.status, 2);
      assert.match(both.stderr, /give --at or --in, not both/);

      // Written by hand, the delay is only known to the daemon: it bounces it.
      drop(spool, 'too-late', { url: `${sink.url}/x`, delay: '1h', expiresAt: Date.now() + 60_000 });
      const bounced = await daemon.waitEvent('bounced', 'too-late');
      assert.equal(bounced.reason, 'scheduled after its expiresAt: it would expire before its first attempt');
      assert.equal(sink.received.length, 0);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it("counts a scheduled message's delivery latency from its scheduled time, not from its writing", async () => {
    const sink = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0']);
    try {
      const address = String((await daemon.waitEvent('metrics-listening')).address);
      await enqueue({ url: `${sink.url}/x`, delay: '2s' }, { spool, id: 'timed' });
      await daemon.waitEvent('delivered', 'timed', 15_000);
      const text = await (await fetch(`http://${address}/metrics`)).text();
      const sample = (name: string) => Number(new RegExp(`^${name.replace(/[{}"+.]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
      assert.equal(sample('spoold_delivery_latency_seconds_count'), 1);
      // Counted from its writing it would be over 2 s; from its time, well under 1.
      assert.equal(sample('spoold_delivery_latency_seconds_bucket{le="1"}'), 1);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('a kill between the claim and the move into deferred/ sends it neither early nor, once flushed, late', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const now = Date.now();
    const soon = now + 2_500;
    const message = JSON.stringify({ url: `${sink.url}/x`, deliverAt: soon });
    // As a SIGKILL leaves them in active/: one claimed from incoming/ before its schedule was looked at,
    // one flushed (SCHEDULED, due now) and claimed.
    fs.writeFileSync(path.join(spool, 'active', `${now}_1_${now}_-_-_claimed.json`), message);
    fs.writeFileSync(path.join(spool, 'active', `${now}_1_${soon}_-_SCHEDULED_flushed.json`), message);
    const daemon = await startDaemon(spool);
    try {
      await daemon.waitEvent('recovered', 'claimed');
      await daemon.waitEvent('scheduled', 'claimed');
      await daemon.waitEvent('delivered', 'flushed');
      assert.ok(sink.byId('flushed')[0]!.at < soon, 'the flush still holds');
      await daemon.waitEvent('delivered', 'claimed', 10_000);
      const [request] = sink.byId('claimed');
      assert.ok(request!.at >= soon, `sent ${soon - request!.at} ms early`);
      assert.equal(daemon.events('scheduled', 'flushed').length, 0);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
