/**
 * Prometheus metrics scraped from the real daemon during a real run, checked
 * against what the sink saw.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cleanup, drop, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

afterEach(cleanup);

/** Sample values by metric name and labels: `name{a="b"}` → value. */
async function scrape(address: string): Promise<Map<string, number>> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('metrics', () => {
  it('counts outcomes by destination, queue sizes, latencies and attempts, as they happen', async () => {
    let flaky = 0;
    const sink = await startSink((req, res) => {
      if (req.url === '/gone') return res.writeHead(404).end();
      if (req.url === '/flaky' && flaky++ < 2) return res.writeHead(503).end();
      if (req.url === '/slow') return setTimeout(() => res.end('ok'), 1500);
      res.end('ok');
    });
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0', '--min-backoff', '100ms', '--max-backoff', '100ms']);
    const address = String((await daemon.waitEvent('metrics-listening')).address);
    const host = new URL(sink.url).host;

    for (let i = 0; i < 5; i++) drop(spool, `ok-${i}`, { url: `${sink.url}/ok` });
    drop(spool, 'flaky', { url: `${sink.url}/flaky` });
    drop(spool, 'gone', { url: `${sink.url}/gone` });
    await waitFor('settled', () => daemon.events('delivered').length === 6 && daemon.events('bounced').length === 1, 10_000);

    // One structured line per event, with what an operator looks for.
    const received = daemon.events('received', 'ok-0')[0]!;
    assert.equal(received.destination, new URL(sink.url).origin);
    assert.equal(received.queue, 'active');
    const deferred = daemon.events('deferred', 'flaky')[0]!;
    assert.equal(deferred.status, 503);
    assert.equal(deferred.attempt, 1);
    assert.equal(typeof deferred.ms, 'number');
    assert.equal(daemon.events('delivered', 'flaky')[0]!.attempt, 3);

    drop(spool, 'slow', { url: `${sink.url}/slow` });
    await waitFor('in flight', () => sink.received.some((r) => r.url === '/slow'));
    let m = await scrape(address);
    assert.equal(m.get('spoold_requests_in_flight'), 1);
    assert.equal(m.get(`spoold_messages_total{outcome="delivered",destination="${host}"}`), 6);
    assert.equal(m.get(`spoold_messages_total{outcome="deferred",destination="${host}"}`), 2);
    assert.equal(m.get(`spoold_messages_total{outcome="bounced",destination="${host}"}`), 1);
    assert.equal(m.get('spoold_queue_messages{queue="bounced"}'), 1);
    assert.equal(m.get('spoold_queue_messages{queue="active"}'), 1);
    assert.equal(m.get('spoold_queue_messages{queue="deferred"}'), 0);
    assert.equal(m.get(`spoold_request_duration_seconds_count{destination="${host}"}`), 9, 'one observation per request');
    assert.equal(m.get('spoold_delivery_latency_seconds_count'), 6);
    assert.equal(m.get('spoold_attempts_count'), 6);
    assert.equal(m.get('spoold_attempts_sum'), 5 + 3, 'five at the first attempt, one at the third');
    assert.equal(m.get('spoold_attempts_bucket{le="1"}'), 5);

    await daemon.waitEvent('delivered', 'slow', 5000);
    m = await scrape(address);
    assert.equal(m.get('spoold_requests_in_flight'), 0);
    assert.equal(m.get('spoold_queue_messages{queue="active"}'), 0);
    assert.equal(m.get('spoold_oldest_due_seconds'), 0);
    assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0, 'process metrics too, under their standard names');

    assert.equal((await daemon.stop()).code, 0);
  });

  it('answers 500 when the spool fails a status page view (a queue folder replaced by a file), and goes on delivering', async () => {
    const sink = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0']);
    const address = String((await daemon.waitEvent('metrics-listening')).address);
    const deferred = path.join(spool, 'deferred');
    fs.renameSync(deferred, `${deferred}.away`);
    fs.writeFileSync(deferred, 'not a folder');
    try {
      // Each of the status page's views that reads deferred/: the queue, a search by id.
      for (const view of ['/api/queue?queue=deferred', '/api/queue?queue=deferred&order=newest', '/api/message?id=nowhere']) {
        const status = await fetch(`http://${address}${view}`, { headers: { host: address } });
        assert.equal(status.status, 500, view);
        assert.match(await status.text(), /ENOTDIR/, view);
        await daemon.waitEvent('http-error');
      }
      assert.equal((await fetch(`http://${address}/api/status`)).status, 200, 'the overview reads what the daemon holds');
      const page = await fetch(`http://${address}/metrics`);
      assert.ok([200, 500].includes(page.status));
      await page.text();
      assert.equal(daemon.child.exitCode, null, 'the daemon is still up');
    } finally {
      fs.rmSync(deferred);
      fs.renameSync(`${deferred}.away`, deferred);
    }
    drop(spool, 'after', { url: `${sink.url}/x` });
    await daemon.waitEvent('delivered', 'after');
    assert.equal((await daemon.stop()).code, 0);
  });

  it('refuses a bad address before touching the spool', async () => {
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', 'nowhere'], { ready: false });
    assert.equal((await daemon.exited).code, 2);
    assert.match(daemon.stderr, /--metrics: "nowhere" is not host:port/);
  });
});
