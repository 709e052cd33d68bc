/**
 * The three ways to produce (library, spoolctl enqueue, tmp/ + rename), and
 * the operator's minimum: list --json, flush, requeue, with the daemon running.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, drop, ensureSpoolDirs, idsIn, ROOT, SPOOLCTL, spoolctl, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

after(cleanup);

const { enqueue } = (await import(path.join(ROOT, 'dist/index.js'))) as typeof import('../../src/index.js');

describe('producing', () => {
  it('delivers messages produced by the library, by spoolctl enqueue and by tmp/ + rename', async () => {
    const sink = await startSink((_req, res) => res.end('ok'));
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    try {
      const libId = await enqueue({ url: `${sink.url}/lib`, body: { from: 'library' } }, { spool });
      assert.match(libId, /^[0-9a-z]{9}-[0-9a-z]{3,}-[0-9a-f]{12}$/);
      const ownId = await enqueue({ url: `${sink.url}/lib` }, { spool, id: 'order-42.paid' });
      assert.equal(ownId, 'order-42.paid');

      const file = path.join(path.dirname(spool), 'msg.json');
      fs.writeFileSync(file, JSON.stringify({ url: `${sink.url}/cli-file`, body: 'from a file' }));
      const fromFile = spoolctl(['enqueue', file, '--spool', spool]);
      assert.equal(fromFile.status, 0, fromFile.stderr);
      const fromStdin = spoolctl(['enqueue', '-', '--id', 'stdin-1'], { input: JSON.stringify({ url: `${sink.url}/cli-stdin` }), env: { SPOOL_DIR: spool } });
      assert.equal(fromStdin.status, 0, fromStdin.stderr);
      assert.equal(fromStdin.stdout.trim(), 'stdin-1');
      const fromFlags = spoolctl(['enqueue', '--spool', spool, '--url', `${sink.url}/cli-flags`, '--method', 'PATCH', '--header', 'X-Kind: flags', '--data', 'hello']);
      assert.equal(fromFlags.status, 0, fromFlags.stderr);

      drop(spool, 'maildir-1', { url: `${sink.url}/maildir` });

      const ids = [libId, ownId, fromFile.stdout.trim(), 'stdin-1', fromFlags.stdout.trim(), 'maildir-1'];
      await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1));
      assert.equal(JSON.parse(sink.byId(libId)[0]!.body).from, 'library');
      assert.equal(sink.byId(fromFile.stdout.trim())[0]!.body, 'from a file');
      const flags = sink.byId(fromFlags.stdout.trim())[0]!;
      assert.equal(flags.method, 'PATCH');
      assert.equal(flags.headers['x-kind'], 'flags');
      assert.equal(flags.body, 'hello');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('refuses invalid messages and taken ids with a clear error, writing nothing', async () => {
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    await daemon.stop();
    await assert.rejects(enqueue({ url: 'ftp://x/' }, { spool }), /invalid message: "url" scheme ftp:/);
    await assert.rejects(enqueue({ url: 'http://127.0.0.1/' }, { spool, id: '../escape' }), /invalid id/);
    await enqueue({ url: 'http://127.0.0.1/' }, { spool, id: 'dup' });
    await assert.rejects(enqueue({ url: 'http://127.0.0.1/' }, { spool, id: 'dup' }), /already in incoming/);
    await assert.rejects(enqueue({ url: 'http://127.0.0.1/' }, { spool: path.join(spool, 'nope') }), /not a spool/);
    assert.deepEqual(fs.readdirSync(path.join(spool, 'incoming')), ['dup.json']);

    const bad = spoolctl(['enqueue', '-', '--spool', spool], { input: '{"url": 12}' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /"url" is missing or not a string/);
    const notJson = spoolctl(['enqueue', '-', '--spool', spool], { input: 'hello' });
    assert.equal(notJson.status, 2);
    assert.match(notJson.stderr, /not valid JSON/);
  });
});

describe('producing on a file system that says no', () => {
  it('a write cut short (file size limit, as a full disk does) is an error, and leaves nothing in incoming/ or tmp/', () => {
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const message = JSON.stringify({ url: 'http://127.0.0.1:1/x', body: 'x'.repeat(60_000) });
    // The kernel writes the first 4 KiB, then refuses (EFBIG): the short write a nearly full disk gives.
    const r = spawnSync('sh', ['-c', `trap "" XFSZ; ulimit -f 8; exec "$@"`, 'sh', process.execPath, SPOOLCTL, 'enqueue', '-', '--spool', spool], { input: message, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, /not written: EFBIG/);
    assert.deepEqual(fs.readdirSync(path.join(spool, 'incoming')), []);
    assert.deepEqual(fs.readdirSync(path.join(spool, 'tmp')), []);
  });

  it('delivers a message whose producer died between its link and its unlink, and puts back one a requeue left in tmp/', async () => {
    const sink = await startSink((_req, res) => res.end('ok'));
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const staged = path.join(spool, 'tmp', 'linked.json.4242.0badcafe');
    fs.writeFileSync(staged, JSON.stringify({ url: `${sink.url}/linked` }));
    fs.linkSync(staged, path.join(spool, 'incoming', 'linked.json'));
    const transit = path.join(spool, 'tmp', 'in-transit.json.transit.4242.0badcafe');
    fs.writeFileSync(transit, JSON.stringify({ url: `${sink.url}/transit` }));
    const old = Date.now() / 1000 - 3600;
    fs.utimesSync(transit, old, old);
    const daemon = await startDaemon(spool);
    try {
      await daemon.waitEvent('delivered', 'linked');
      await daemon.waitEvent('delivered', 'in-transit');
      assert.equal(daemon.events('rescued', 'in-transit').length, 1);
      assert.deepEqual(daemon.events('bounced'), []);
      assert.deepEqual(fs.readdirSync(path.join(spool, 'tmp')), []);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});

describe('spoolctl with the daemon running', () => {
  it('lists every queue as JSON, flushes deferred messages, and requeues a bounced one once fixed', async () => {
    let fixed = false;
    const sink = await startSink((req, res) => {
      if (req.url === '/later') return void res.writeHead(fixed ? 200 : 503).end();
      if (req.url === '/broken') return void res.writeHead(fixed ? 200 : 410).end('gone');
      res.end('ok');
    });
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--min-backoff', '1h', '--max-backoff', '1h', '--scan-interval', '500ms']);
    try {
      drop(spool, 'later', { url: `${sink.url}/later` });
      drop(spool, 'broken', { url: `${sink.url}/broken` });
      await daemon.waitEvent('deferred', 'later');
      await daemon.waitEvent('bounced', 'broken');

      const listed = spoolctl(['list', '--json', '--spool', spool]);
      assert.equal(listed.status, 0, listed.stderr);
      const rows = JSON.parse(listed.stdout) as Record<string, unknown>[];
      assert.ok(Array.isArray(rows));
      const later = rows.find((r) => r.id === 'later')!;
      assert.equal(later.queue, 'deferred');
      assert.equal(later.attempts, 1);
      assert.equal(later.url, `${sink.url}/later`);
      assert.equal(later.lastError, 'HTTP 503');
      assert.ok(Number(later.nextAttemptAt) > Date.now() + 40 * 60_000, 'next attempt is about an hour away');
      const broken = rows.find((r) => r.id === 'broken')!;
      assert.equal(broken.queue, 'bounced');
      assert.equal(broken.lastError, 'HTTP 410');

      const table = spoolctl(['list', '--spool', spool]);
      assert.match(table.stdout, /later\s+deferred\s+1\s+in (4[5-9]m|5[0-9]m|60m|1h)\s/);

      fixed = true;
      const flushed = spoolctl(['flush', '--spool', spool]);
      assert.equal(flushed.status, 0, flushed.stderr);
      await daemon.waitEvent('delivered', 'later', 5000);

      const requeued = spoolctl(['requeue', 'broken', '--spool', spool]);
      assert.equal(requeued.status, 0, requeued.stderr);
      await daemon.waitEvent('delivered', 'broken', 5000);
      assert.equal(sink.byId('broken').length, 2);
      assert.deepEqual(fs.readdirSync(path.join(spool, 'bounced')), [], 'the reason record left with its message');

      const missing = spoolctl(['requeue', 'no-such-id', '--spool', spool]);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /no-such-id: not found/);
      const usage = spoolctl(['requeue', '--spool', spool]);
      assert.equal(usage.status, 2);
      const unknown = spoolctl(['frobnicate']);
      assert.equal(unknown.status, 2);
      assert.doesNotMatch(unknown.stderr, /\n\s+at /);
      assert.deepEqual(idsIn(spool, 'deferred'), []);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('requeue resets attempts: a message that ran out of attempts gets a full new set', async () => {
    let calls = 0;
    const sink = await startSink((_req, res) => res.writeHead(++calls <= 2 ? 500 : calls === 3 ? 500 : 200).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--max-attempts', '2']);
    try {
      drop(spool, 'twice', { url: `${sink.url}/x` });
      await daemon.waitEvent('bounced', 'twice');
      assert.equal(spoolctl(['requeue', 'twice', '--spool', spool]).status, 0);
      await daemon.waitEvent('delivered', 'twice');
      assert.equal(calls, 4, 'two attempts, bounce, then two more after requeue');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
