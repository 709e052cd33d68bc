/**
 * Security defaults: destination rules enforced by the running daemon (the
 * loopback check after DNS resolution included), secrets kept out of logs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { asNobody, cleanup, drop, ensureSpoolDirs, startDaemon, startSink, tempSpool } from './helpers.js';

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
