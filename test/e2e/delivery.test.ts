/**
 * Delivery end to end: each class of answer, timing of retries, concurrency.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanup, drop, ensureSpoolDirs, filesIn, idsIn, startDaemon, startSink, tempSpool, waitFor, type Daemon, type Sink } from './helpers.js';

after(cleanup);

describe('delivery', () => {
  let sink: Sink;
  let spool: string;
  let daemon: Daemon;
  const hits = new Map<string, number>();

  before(async () => {
    sink = await startSink((req, res) => {
      const u = new URL(req.url, 'http://x');
      const key = `${u.pathname}:${String(req.headers['idempotency-key'])}`;
      const n = (hits.get(key) ?? 0) + 1;
      hits.set(key, n);
      switch (u.pathname) {
        case '/ok':
          res.writeHead(201).end('created');
          return;
        case '/not-found':
          res.writeHead(404, { 'content-type': 'text/plain' }).end('no such hook\n  here');
          return;
        case '/redirect':
          res.writeHead(301, { location: '/ok' }).end();
          return;
        case '/flaky': // 503 twice, then 200
          res.writeHead(n <= 2 ? 503 : 200).end();
          return;
        case '/timeout408':
          res.writeHead(n === 1 ? 408 : 200).end();
          return;
        case '/always500':
          res.writeHead(500).end('boom');
          return;
        case '/reset':
          if (n === 1) return void res.socket?.destroy();
          res.writeHead(200).end();
          return;
        case '/slow': // first answer arrives after the daemon's 3 s timeout
          if (n === 1) return void setTimeout(() => res.writeHead(200).end(), 4000);
          res.writeHead(200).end();
          return;
        case '/never':
          if (n === 1) return; // accepted, never answered
          res.writeHead(200).end();
          return;
        default:
          res.writeHead(400).end();
      }
    });
    spool = tempSpool();
    daemon = await startDaemon(spool, ['--max-attempts', '3']);
  });

  after(async () => {
    await daemon.stop();
    await sink.close();
  });

  it('sends method, headers, query and body as given, with an Idempotency-Key, then unlinks', async () => {
    drop(spool, 'keep-1', { url: `${sink.url}/ok?a=1&b=two`, method: 'PUT', headers: { 'X-Custom': 'v1', 'content-type': 'text/plain' }, body: 'raw text body' });
    const d = await daemon.waitEvent('delivered', 'keep-1');
    assert.equal(d.status, 201);
    const [r] = sink.byId('keep-1');
    assert.ok(r);
    assert.equal(r.method, 'PUT');
    assert.equal(r.url, '/ok?a=1&b=two');
    assert.equal(r.headers['x-custom'], 'v1');
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.body, 'raw text body');
    assert.deepEqual(idsIn(spool, 'active'), []);
    assert.ok(!idsIn(spool, 'deferred').includes('keep-1') && !idsIn(spool, 'bounced').includes('keep-1'));
  });

  it('serializes a JSON body with content-type application/json, defaults to POST, keeps a given Idempotency-Key', async () => {
    drop(spool, 'json-1', { url: `${sink.url}/ok`, body: { event: 'paid', amount: 12.5, tags: ['a'] } });
    drop(spool, 'own-key', { url: `${sink.url}/ok`, headers: { 'Idempotency-Key': 'producer-key' }, body: null });
    await daemon.waitEvent('delivered', 'json-1');
    await daemon.waitEvent('delivered', 'own-key');
    const [r] = sink.byId('json-1');
    assert.equal(r?.method, 'POST');
    assert.equal(r?.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r!.body), { event: 'paid', amount: 12.5, tags: ['a'] });
    assert.equal(sink.byId('producer-key').length, 1);
    assert.equal(sink.byId('own-key').length, 0);
  });

  it('bounces a 4xx at once, with status, body excerpt and attempts in the reason record', async () => {
    drop(spool, 'nf-1', { url: `${sink.url}/not-found` });
    await daemon.waitEvent('bounced', 'nf-1');
    assert.equal(sink.byId('nf-1').length, 1, 'a 4xx is never retried');
    const names = filesIn(spool, 'bounced').filter((n) => n.endsWith('_nf-1.json'));
    assert.equal(names.length, 1);
    const record = JSON.parse(fs.readFileSync(path.join(spool, 'bounced', names[0] + '.reason'), 'utf8'));
    assert.equal(record.lastError, 'HTTP 404');
    assert.match(record.reason, /^HTTP 404: no such hook here/);
    assert.equal(record.attempts, 1);
    assert.ok(Date.parse(record.bouncedAt) > 0);
    const original = JSON.parse(fs.readFileSync(path.join(spool, 'bounced', names[0]!), 'utf8'));
    assert.equal(original.url, `${sink.url}/not-found`, 'the message itself is kept');
  });

  it('bounces a 3xx without following the redirect', async () => {
    drop(spool, 'redir-1', { url: `${sink.url}/redirect` });
    await daemon.waitEvent('bounced', 'redir-1');
    assert.equal(sink.byId('redir-1').length, 1);
    assert.equal(sink.received.filter((r) => r.url === '/ok' && r.headers['idempotency-key'] === 'redir-1').length, 0);
  });

  it('defers 5xx and retries until a 2xx', async () => {
    drop(spool, 'flaky-1', { url: `${sink.url}/flaky` });
    await daemon.waitEvent('delivered', 'flaky-1');
    const deferrals = daemon.events('deferred', 'flaky-1');
    assert.equal(deferrals.length, 2);
    assert.equal(deferrals[0]!.status, 503);
    assert.equal(sink.byId('flaky-1').length, 3);
  });

  it('treats 408 as transient', async () => {
    drop(spool, 'r408', { url: `${sink.url}/timeout408` });
    await daemon.waitEvent('delivered', 'r408');
    assert.equal(daemon.events('deferred', 'r408')[0]?.status, 408);
  });

  it('bounces after --max-attempts requests, naming the last status', async () => {
    drop(spool, 'fail-3', { url: `${sink.url}/always500` });
    const b = await daemon.waitEvent('bounced', 'fail-3');
    assert.equal(b.reason, 'HTTP 500 after 3 attempts');
    assert.equal(sink.byId('fail-3').length, 3);
  });

  it('honours a per-message maxAttempts', async () => {
    drop(spool, 'fail-1', { url: `${sink.url}/always500`, maxAttempts: 1 });
    const b = await daemon.waitEvent('bounced', 'fail-1');
    assert.equal(b.reason, 'HTTP 500 after 1 attempt');
  });

  it('defers a reset connection, a slow answer and a request never answered, then delivers', async () => {
    drop(spool, 'reset-1', { url: `${sink.url}/reset` });
    drop(spool, 'slow-1', { url: `${sink.url}/slow` });
    drop(spool, 'never-1', { url: `${sink.url}/never` });
    await daemon.waitEvent('delivered', 'reset-1');
    await daemon.waitEvent('delivered', 'slow-1', 15_000);
    await daemon.waitEvent('delivered', 'never-1', 15_000);
    assert.match(String(daemon.events('deferred', 'reset-1')[0]?.error), /SOCKET|ECONNRESET/);
    for (const id of ['slow-1', 'never-1']) {
      const e = daemon.events('deferred', id)[0];
      assert.ok(e, `${id} was deferred`);
      assert.equal(e.error, 'HEADERS_TIMEOUT', `${id}: ${String(e.error)}`);
      assert.ok(Number(e.ms) >= 2900 && Number(e.ms) < 5000, `${id} timed out after ${String(e.ms)} ms`);
    }
  });
});

describe('retry timing', () => {
  it('honours Retry-After as a floor, and a short retry never waits behind a long one', async () => {
    const sink = await startSink((req, res) => {
      const seen = sink.byId(String(req.headers['idempotency-key'])).length;
      if (seen === 1) res.writeHead(req.url === '/long' ? 429 : 503, { 'retry-after': req.url === '/long' ? '3600' : '2' }).end();
      else res.writeHead(200).end();
    });
    const spool = tempSpool();
    // Backoff far below the Retry-Afters: only the header can explain the delays.
    const daemon = await startDaemon(spool, ['--min-backoff', '100ms', '--max-backoff', '200ms']);
    try {
      drop(spool, 'long', { url: `${sink.url}/long` });
      await daemon.waitEvent('deferred', 'long');
      drop(spool, 'short', { url: `${sink.url}/short` });
      await daemon.waitEvent('delivered', 'short', 8000);
      const [first, second] = sink.byId('short');
      const gap = second!.at - first!.at;
      assert.ok(gap >= 2000 && gap < 4000, `short retried after ${gap} ms (Retry-After: 2)`);
      assert.equal(sink.byId('long').length, 1, 'the long one is still waiting');
      const deferredLong = daemon.events('deferred', 'long')[0]!;
      assert.ok(Number(deferredLong.delayMs) >= 3_600_000, 'Retry-After above max-backoff is honoured');
      assert.ok(idsIn(spool, 'deferred').includes('long'));
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});

/** One sink, two origins: /fast answers at once; the slow origin (localhost) after `ms`. */
async function slowAndFast(ms: number): Promise<{ sink: Sink; slowOrigin: string; slowAnswered: () => number }> {
  let answered = 0;
  const sink = await startSink((req, res) => {
    if (req.url === '/fast') return void res.end('ok');
    setTimeout(() => {
      answered++;
      res.end('ok');
    }, ms);
  });
  return { sink, slowOrigin: sink.url.replace('127.0.0.1', 'localhost'), slowAnswered: () => answered };
}

describe('concurrency', () => {
  it('finds a fresh message for another destination behind a backlog larger than the set, without its file event', async () => {
    const { sink, slowOrigin, slowAnswered } = await slowAndFast(2000);
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    // Waiting before the daemon starts: no file event will name them.
    for (let i = 0; i < 60; i++) drop(spool, `slow-${i}`, { url: `${slowOrigin}/slow` });
    drop(spool, 'fresh', { url: `${sink.url}/fast` });
    const daemon = await startDaemon(spool, ['--active-limit', '20', '--concurrency', '4', '--per-destination', '2']);
    try {
      await daemon.waitEvent('delivered', 'fresh', 10_000);
      assert.equal(slowAnswered(), 0, 'the fresh message went out before any slow one was answered');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('takes a fresh message for another destination when a slow one fills the active set', async () => {
    const { sink, slowOrigin, slowAnswered } = await slowAndFast(1500);
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--active-limit', '20', '--concurrency', '4', '--per-destination', '2']);
    try {
      // A backlog twice the set's size, for a receiver taking 1.5 s per answer.
      for (let i = 0; i < 40; i++) drop(spool, `slow-${i}`, { url: `${slowOrigin}/slow` });
      await waitFor('the active set full of slow messages', () => filesIn(spool, 'active').length >= 20);
      drop(spool, 'fresh', { url: `${sink.url}/fast` });
      await waitFor('the fresh message delivered', () => daemon.events('delivered', 'fresh').length === 1, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}; active/ ${filesIn(spool, 'active').length}, incoming/ ${filesIn(spool, 'incoming').length}; log: ${daemon.lines.slice(-12).map((l) => `${l.event} ${l.id ?? ''}`).join(', ')}`);
      });
      assert.equal(slowAnswered(), 0, 'the fresh message went out before any slow one was answered');
      assert.ok(filesIn(spool, 'active').length <= 20 + 4, 'the set went past its limit by at most the reserve (--concurrency)');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('caps requests per destination, so a slow endpoint leaves room for others', async () => {
    let slowInFlight = 0;
    let slowPeak = 0;
    const sink = await startSink((req, res) => {
      if (req.url === '/fast') return void res.end('ok');
      slowInFlight++;
      slowPeak = Math.max(slowPeak, slowInFlight);
      setTimeout(() => {
        slowInFlight--;
        res.end('ok');
      }, 600);
    });
    // A second origin for the slow endpoint: 127.0.0.1 and localhost differ.
    const slowOrigin = sink.url.replace('127.0.0.1', 'localhost');
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--concurrency', '4', '--per-destination', '2']);
    try {
      for (let i = 0; i < 12; i++) drop(spool, `slow-${i}`, { url: `${slowOrigin}/slow` });
      await waitFor('slow requests in flight', () => slowInFlight === 2);
      const t0 = Date.now();
      for (let i = 0; i < 12; i++) drop(spool, `fast-${i}`, { url: `${sink.url}/fast` });
      await waitFor('fast ones delivered', () => Array.from({ length: 12 }, (_, i) => daemon.events('delivered', `fast-${i}`).length).every((n) => n === 1), 10_000);
      const fastDone = Date.now() - t0;
      const slowDone = Array.from({ length: 12 }, (_, i) => daemon.events('delivered', `slow-${i}`).length).filter((n) => n > 0).length;
      assert.ok(slowDone < 12, `fast messages finished (${fastDone} ms) while slow ones were still queued (${slowDone}/12 done)`);
      await waitFor('slow ones delivered', () => Array.from({ length: 12 }, (_, i) => daemon.events('delivered', `slow-${i}`).length).every((n) => n === 1), 15_000);
      assert.equal(slowPeak, 2, 'never more than --per-destination requests to one origin');
      assert.deepEqual(idsIn(spool, 'deferred'), []);
      assert.deepEqual(idsIn(spool, 'active'), []);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
