/**
 * The benchmark's sink: a node:http server on 127.0.0.1 in its own process
 * (so its CPU is not counted against any contender). Answers 200, or 503 to a
 * given share of first attempts; reports over IPC.
 *
 * Messages carry `t` (epoch ms when the producer finished writing them) in
 * their JSON body; the sink records drop-to-request latency from it.
 *
 * SINK_CAPACITY=n and SINK_SERVICE_MS=ms make a weak receiver: each request
 * takes that long, and one arriving while n are being served gets a 503.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const failShare = Number(process.env.SINK_FAIL_SHARE ?? '0');
const capacity = Number(process.env.SINK_CAPACITY ?? '0');
const serviceMs = Number(process.env.SINK_SERVICE_MS ?? '0');
let serving = 0;
let refused = 0;
let received = 0;
let ok = 0;
let firstAttempts = 0;
const seen = new Set<string>();
let latencies: number[] = [];
/** When each of those messages was produced (epoch ms), in the same order. */
let producedAt: number[] = [];
let firstAt = 0;
let lastAt = 0;

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    received++;
    if (firstAt === 0) firstAt = now;
    lastAt = now;
    const key = String(req.headers['idempotency-key'] ?? req.headers['x-id'] ?? '');
    const first = !seen.has(key);
    if (first) {
      seen.add(key);
      firstAttempts++;
    }
    if (first && failShare > 0 && Math.random() < failShare) {
      res.writeHead(503).end();
      return;
    }
    if (capacity > 0 && serving >= capacity) {
      refused++;
      res.writeHead(503).end();
      return;
    }
    try {
      const t = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { t?: number }).t;
      if (typeof t === 'number' && first) {
        latencies.push(now - t);
        producedAt.push(t);
      }
    } catch {
      /* not ours */
    }
    ok++;
    if (serviceMs > 0) {
      serving++;
      setTimeout(() => {
        serving--;
        res.writeHead(200).end('ok');
      }, serviceMs);
    } else res.writeHead(200).end('ok');
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.send!({ port: (server.address() as AddressInfo).port });
});

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'stats') process.send!({ received, ok, refused, firstAttempts, unique: seen.size, latencies, producedAt, firstAt, lastAt });
  if (m.cmd === 'reset') {
    received = ok = firstAttempts = 0;
    seen.clear();
    latencies = [];
    producedAt = [];
    firstAt = lastAt = 0;
    process.send!({ reset: true });
  }
  if (m.cmd === 'exit') server.close(() => process.exit(0));
});
