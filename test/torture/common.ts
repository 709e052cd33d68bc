/** Shared pieces of the torture scenarios: results, a counting sink, queue snapshots. */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface Outcome {
  scenario: string;
  pass: boolean;
  figures: string;
}

export interface CountingSink {
  url: string;
  /** Requests per id (Idempotency-Key), and 2xx answers per id. */
  requests: Map<string, number>;
  delivered: Map<string, number>;
  /** When the last 2xx to each id was written (performance.now()). */
  answeredAt: Map<string, number>;
  inFlight: number;
  total: number;
  bodies: Map<string, string>;
  close(): Promise<void>;
}

/** A sink answering 503 to `failShare` of requests at random, 200 otherwise. */
export async function countingSink(failShare = 0, opts: { keepBodies?: boolean; delayMs?: number } = {}): Promise<CountingSink> {
  const sink: CountingSink = {
    url: '',
    requests: new Map(),
    delivered: new Map(),
    answeredAt: new Map(),
    inFlight: 0,
    total: 0,
    bodies: new Map(),
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server = http.createServer((req, res) => {
    sink.inFlight++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = () => {
        const id = String(req.headers['idempotency-key']);
        sink.total++;
        sink.requests.set(id, (sink.requests.get(id) ?? 0) + 1);
        if (opts.keepBodies) sink.bodies.set(id, Buffer.concat(chunks).toString('utf8'));
        if (Math.random() < failShare) {
          res.writeHead(503).end();
        } else {
          sink.delivered.set(id, (sink.delivered.get(id) ?? 0) + 1);
          sink.answeredAt.set(id, performance.now());
          res.writeHead(200).end();
        }
        sink.inFlight--;
      };
      if (opts.delayMs) setTimeout(answer, opts.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return sink;
}

/** Producer's drop without fsync: process kills are the subject here, not power cuts. */
export function quickDrop(spool: string, id: string, message: unknown): void {
  const tmp = path.join(spool, 'tmp', `${id}.json`);
  fs.writeFileSync(tmp, JSON.stringify(message));
  fs.renameSync(tmp, path.join(spool, 'incoming', `${id}.json`));
}

/** Every message file in the spool: id → queues it is in. */
export function snapshot(spool: string): Map<string, string[]> {
  const where = new Map<string, string[]>();
  const add = (id: string, q: string) => where.set(id, [...(where.get(id) ?? []), q]);
  for (const q of ['incoming', 'active', 'deferred', 'ordered', 'hold', 'bounced']) {
    const dir = path.join(spool, q);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[];
    } catch (err) {
      // The daemon removed a folder (an empty bucket, a finished ordering line) as we read: look again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (!fs.existsSync(dir)) continue;
      return snapshot(spool);
    }
    for (const d of entries) {
      if (!d.name.endsWith('.json') || d.name.startsWith('.')) continue;
      add(q === 'incoming' ? d.name.slice(0, -5) : d.name.replace(/^(?:[^_]*_){5}/, '').slice(0, -5), q);
    }
  }
  return where;
}

export function rssOf(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

export const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
