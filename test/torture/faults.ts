/**
 * Scenario 2: endpoints that fail in every way a network can. Each message
 * must be deferred (never lost, never bounced), the error or the timeout
 * that fired named in the log, the daemon up and its memory flat.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { drop, ensureCommand, startDaemon, tempSpool, waitFor } from '../e2e/helpers.js';
import { mb, rssOf, sleep, type Outcome } from './common.js';

type Server = { url: string; close(): void };

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

async function tcp(onSocket: (s: net.Socket) => void, scheme = 'http'): Promise<Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  const port = await listen(server);
  return { url: `${scheme}://127.0.0.1:${port}`, close: () => (server.close(), sockets.forEach((s) => s.destroy())) };
}

async function httpServer(handler: http.RequestListener): Promise<Server> {
  const server = http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, close: () => (server.close(), sockets.forEach((s) => s.destroy())) };
}

function selfSignedCert(): { key: string; cert: string } {
  if (!ensureCommand('openssl', 'openssl')) throw new Error('openssl is needed to make a test certificate');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  try {
    return { key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Fault {
  id: string;
  what: string;
  server: Server;
  /** Expected outcome, and a pattern the logged error must match. */
  expect: 'deferred' | 'delivered';
  error?: RegExp;
}

export async function endpointFaults(): Promise<Outcome> {
  const tls = selfSignedCert();
  const endless = (status: number): http.RequestListener => (_req, res) => {
    res.writeHead(status);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const pump = () => {
      while (res.write(chunk)) if (res.destroyed) return;
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  };
  const refusedPort = await (async () => {
    const s = net.createServer();
    const port = await listen(s);
    s.close();
    return port;
  })();
  const tlsServer = https.createServer(tls, (_req, res) => res.end('ok'));
  const tlsPort = await listen(tlsServer);

  const faults: Fault[] = [
    { id: 'refused', what: 'connection refused', server: { url: `http://127.0.0.1:${refusedPort}`, close: () => undefined }, expect: 'deferred', error: /ECONNREFUSED/ },
    { id: 'reset', what: 'reset mid-response', server: await tcp((s) => s.once('data', () => (s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial'), setTimeout(() => s.resetAndDestroy(), 50)))), expect: 'deferred', error: /ECONNRESET|UND_ERR_SOCKET/ },
    { id: 'silent', what: 'accepted, never answered', server: await tcp(() => undefined), expect: 'deferred', error: /HEADERS_TIMEOUT/ },
    { id: 'stall', what: 'headers, then the body stalls', server: await httpServer((_q, res) => (res.writeHead(200, { 'content-length': '1000' }), res.write('half'))), expect: 'deferred', error: /BODY_TIMEOUT/ },
    { id: 'endless-503', what: 'endless body on a 503', server: await httpServer(endless(503)), expect: 'deferred', error: /^503$/ },
    { id: 'endless-200', what: 'endless body on a 200 (cut at 64 KiB: the status is the answer)', server: await httpServer(endless(200)), expect: 'delivered' },
    { id: 'garbage', what: 'bytes that are not HTTP', server: await tcp((s) => s.once('data', () => s.write('SSH-2.0-OpenSSH_9.2\r\n\0\0\0garbage\r\n\r\n'))), expect: 'deferred', error: /HTTPParserError|HPE_|UND_ERR/ },
    { id: 'tls-to-plain', what: 'TLS spoken to a plain port', server: await httpServer((_q, res) => res.end('ok')).then((s) => ({ ...s, url: s.url.replace('http:', 'https:') })), expect: 'deferred', error: /EPROTO|SSL|ECONNRESET|UND_ERR/ },
    { id: 'plain-to-tls', what: 'plain HTTP to a TLS port', server: { url: `http://127.0.0.1:${tlsPort}`, close: () => undefined }, expect: 'deferred', error: /UND_ERR|ECONNRESET|HPE_/ },
    { id: 'self-signed', what: 'TLS with an untrusted certificate', server: { url: `https://127.0.0.1:${tlsPort}`, close: () => undefined }, expect: 'deferred', error: /SELF_SIGNED|CERT/ },
    { id: 'trickle', what: 'a slow trickle', server: await httpServer((_q, res) => { res.writeHead(200); const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write('.')), 300); }), expect: 'deferred', error: /BODY_TIMEOUT/ },
  ];

  const spool = tempSpool();
  const daemon = await startDaemon(spool, ['--timeout', '2s', '--min-backoff', '1h', '--max-backoff', '1h']);
  const rss0 = rssOf(daemon.child.pid!);
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(daemon.child.pid!))), 100);
  for (const f of faults) drop(spool, f.id, { url: `${f.server.url}/hook`, body: { fault: f.id } });
  const lines: string[] = [];
  let pass = true;
  for (const f of faults) {
    try {
      const e = await waitFor(`${f.id} settled`, () => daemon.events('deferred', f.id)[0] ?? daemon.events('delivered', f.id)[0] ?? daemon.events('bounced', f.id)[0], 15_000);
      const error = String(e.error ?? e.status ?? '');
      const ok = e.event === f.expect && (!f.error || f.error.test(error));
      pass &&= ok;
      lines.push(`${f.what}: ${e.event}${error ? ` (${error}, ${String(e.ms)} ms)` : ''}${ok ? '' : ' ← unexpected'}`);
    } catch {
      pass = false;
      lines.push(`${f.what}: not settled`);
    }
  }
  // Let the endless bodies run on a while longer: memory must not follow them.
  await sleep(2000);
  clearInterval(sampler);
  const up = daemon.child.exitCode === null;
  const grew = peak - rss0;
  pass &&= up && grew < 64 * 1024 * 1024;
  await daemon.stop();
  for (const f of faults) f.server.close();
  tlsServer.close();
  return {
    scenario: '2. endpoint faults',
    pass,
    figures: `${lines.join('; ')}. Daemon up: ${up}; RSS ${mb(rss0)} → peak ${mb(peak)}`,
  };
}
