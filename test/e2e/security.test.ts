/**
 * Security defaults: destination rules enforced by the running daemon (the
 * loopback check after DNS resolution included), secrets kept out of logs.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { asNobody, cleanup, drop, ensureSpoolDirs, startDaemon, startSink, tempSpool, waitFor, type Sink } from './helpers.js';

after(cleanup);

describe('files of another owner', () => {
  it('delivers a readable file whoever owns it, and bounces one the daemon may not read', async () => {
    const sink = await startSink((_req, res) => res.end('ok'));
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const runAs = asNobody(path.dirname(spool));
    const asRoot = runAs !== undefined;
    const opts = runAs ? { runAs } : {};
    const daemon = await startDaemon(spool, [], opts);
    try {
      const put = (id: string, mode: number) => {
        const tmp = path.join(spool, 'tmp', `${id}.json`);
        fs.writeFileSync(tmp, JSON.stringify({ url: `${sink.url}/x` }), { mode });
        fs.chmodSync(tmp, mode);
        fs.renameSync(tmp, path.join(spool, 'incoming', `${id}.json`));
      };
      put('readable', 0o644);
      await daemon.waitEvent('delivered', 'readable');
      if (asRoot) {
        put('unreadable', 0o600);
        const b = await daemon.waitEvent('bounced', 'unreadable');
        assert.match(String(b.reason), /not readable by the daemon \(EACCES\)/);
        assert.equal(sink.byId('unreadable').length, 0);
      }
      // Not root: only the readable half can be shown (it needs a second user).
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});

describe('destination rules', () => {
  it('--block-private refuses loopback by address and by a name that resolves to it', async () => {
    const sink = await startSink((_req, res) => res.end('ok'));
    const port = new URL(sink.url).port;
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--block-private']);
    try {
      drop(spool, 'literal', { url: `http://127.0.0.1:${port}/x` });
      drop(spool, 'by-name', { url: `http://localhost:${port}/x` });
      drop(spool, 'v6', { url: `http://[::1]:${port}/x` });
      const literal = await daemon.waitEvent('bounced', 'literal');
      assert.match(String(literal.reason), /private or loopback address \(--block-private\)/);
      const byName = await daemon.waitEvent('bounced', 'by-name');
      assert.match(String(byName.reason), /SPOOL_ERR_DESTINATION_BLOCKED/);
      await daemon.waitEvent('bounced', 'v6');
      assert.equal(sink.received.length, 0, 'nothing reached the loopback server');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('--allow-destinations and --deny-destinations pick what may be sent', async () => {
    const sink = await startSink((_req, res) => res.end('ok'));
    const port = new URL(sink.url).port;
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--allow-destinations', '127.0.0.1,*.example.com', '--deny-destinations', 'bad.example.com']);
    try {
      drop(spool, 'allowed', { url: `http://127.0.0.1:${port}/x` });
      drop(spool, 'not-allowed', { url: `http://localhost:${port}/x` });
      drop(spool, 'denied', { url: `http://bad.example.com/x` });
      await daemon.waitEvent('delivered', 'allowed');
      assert.match(String((await daemon.waitEvent('bounced', 'not-allowed')).reason), /not in --allow-destinations/);
      assert.match(String((await daemon.waitEvent('bounced', 'denied')).reason), /denied/);
      assert.equal(sink.received.length, 1);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('never writes credentials into its log', async () => {
    const sink = await startSink((_req, res) => res.writeHead(401).end('bad token'));
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--log-level', 'debug']);
    try {
      drop(spool, 'creds', { url: `${sink.url}/x?x=1`, headers: { Authorization: 'Bearer SECRET-TOKEN-1', Cookie: 'sid=SECRET-COOKIE' } });
      await daemon.waitEvent('bounced', 'creds');
      assert.equal(sink.received[0]?.headers.authorization, 'Bearer SECRET-TOKEN-1', 'the header was sent');
      const log = JSON.stringify(daemon.lines);
      assert.ok(!log.includes('SECRET-TOKEN-1') && !log.includes('SECRET-COOKIE'));
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});

/**
 * Names written before 0.2 carry a 32-bit destination tag (8 hex digits of
 * SHA-1): two origins sharing one are found in a fraction of a second. The
 * daemon must still keep them apart: settings, credentials and the dead
 * destination's hold go by the origin the message names.
 */
function legacyTag(origin: string): string {
  return createHash('sha1').update(origin).digest('hex').slice(0, 8);
}

/** Pairs [A, B] of origins with one legacy tag: A on 127.0.0.2 (nothing listens: refused), B a port of 127.0.0.1 a sink can bind. */
function* collidingOrigins(): Generator<[string, string]> {
  const byTag = new Map<string, string>();
  for (let port = 20_000; port < 60_000; port++) byTag.set(legacyTag(`http://127.0.0.1:${port}`), `http://127.0.0.1:${port}`);
  for (let i = 0; ; i++) {
    const a = `http://127.0.0.${2 + (i % 250)}:${1024 + Math.floor(i / 250)}`;
    const b = byTag.get(legacyTag(a));
    if (b) yield [a, b];
  }
}

describe('destinations are told apart by their full origin', () => {
  it('never sends one origin\'s credentials to another with the same tag, and a dead one holds back only itself', async () => {
    const secretText = `whsec_${randomBytes(32).toString('base64')}`;
    let found: { a: string; b: string; sink: Sink } | null = null;
    for (const [a, b] of collidingOrigins()) {
      assert.equal(legacyTag(a), legacyTag(b), 'the test found a collision');
      try {
        found = { a, b, sink: await startSink((_req, res) => res.end('ok'), Number(new URL(b).port)) };
        break;
      } catch {
        /* that port is taken here: the next collision */
      }
    }
    const { a, b, sink } = found!;
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const config = path.join(path.dirname(spool), 'spoold.json');
    fs.writeFileSync(config, JSON.stringify({ destinations: [{ match: a, headers: { Authorization: 'Bearer secret-of-A' }, signingSecret: secretText }] }));
    // As a spool written by an older spoold would hold them: A's and B's messages due at once, one tag for both.
    const tag = legacyTag(a);
    const now = Date.now();
    const put = (id: string, url: string, due: number) => {
      const dir = path.join(spool, 'deferred', String(Math.floor(due / 60_000) * 60_000));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${due}_1_${now}_${tag}_503_${id}.json`), JSON.stringify({ url: `${url}/hook` }));
    };
    for (let i = 0; i < 6; i++) put(`a-${i}`, a, now - 2000 + i);
    for (let i = 0; i < 10; i++) put(`b-${i}`, b, now - 1000 + i);
    // B's second wave comes due while A is dead.
    for (let i = 0; i < 10; i++) put(`late-b-${i}`, b, now + 1500 + i);
    const daemon = await startDaemon(spool, ['--config', config, '--dead-after', '3', '--per-destination', '2', '--dead-cool-off', '1m', '--dead-max-cool-off', '2m', '--min-backoff', '100ms']);
    try {
      const died = await daemon.waitEvent('destination-dead', undefined, 5000);
      assert.equal(died.destination, a);
      const noCredentials = () => {
        for (const r of sink.received) {
          assert.equal(r.headers.authorization, undefined, 'A\'s header never goes to B');
          assert.equal(r.headers['webhook-signature'], undefined, 'nor A\'s signature');
        }
      };
      await waitFor('B\'s first wave delivered', () => sink.received.length >= 10, 8000);
      noCredentials();
      const late = Array.from({ length: 10 }, (_, i) => `late-b-${i}`);
      await waitFor('B\'s second wave delivered while A is dead', () => late.every((id) => daemon.events('delivered', id).length === 1), 8000);
      assert.deepEqual(daemon.events('destination-reopened'), [], 'A is still dead: B was not held back by A\'s hold');
      assert.equal(sink.received.length, 20);
      noCredentials();
      // A's messages, re-deferred, now carry a 64-bit tag.
      const names = fs.readdirSync(path.join(spool, 'deferred'), { recursive: true }).map(String).filter((n) => n.includes('_a-'));
      assert.ok(names.length > 0 && names.every((n) => /_[0-9a-f]{16}_[^_]+_a-\d\.json$/.test(path.basename(n))), names.join(' '));
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
