/**
 * Prometheus metrics (prom-client), served on the opt-in `--metrics` address.
 *
 * Queue sizes are kept current without reading the backlog on every scrape:
 * a background recount walks the queues with an asynchronous directory
 * stream (at most every RECOUNT_MIN_MS, and never more often than 20 times
 * its own duration, so a million deferred messages cost little CPU), and the
 * daemon's own moves are applied as they happen in between. What producers
 * and operators do shows at the next recount.
 */
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import client from 'prom-client';
import { QUEUES, type Queue, type Spool } from '../spool/layout.js';
import type { Logger } from '../service/log.js';
import { parseActiveName, parseBucketName, parseEntry, parseIncomingName, parseLineName, type Entry } from '../spool/names.js';
import type { DeliveryObserver, QueueManager } from '../queue/queue-manager.js';
import { StatusPage } from './status-page.js';
import { errnoOf } from '../errors.js';
import { RecentActivity } from './activity.js';
import { installHttpGuard, onHttpSide } from './guard.js';
import { AGE_BUCKETS_MIN } from '../operate/control.js';
import { VERSION } from '../version.js';

const RECOUNT_MIN_MS = 10_000;

function hostOf(origin: string): string {
  if (origin === '-') return '-';
  try {
    return new URL(origin).host;
  } catch {
    return origin;
  }
}

/** deferred/ by destination tag and age (qshape's rows): counts per AGE_BUCKETS_MIN bucket, the last one older, and one message's path to learn the host from. */
export type BacklogShape = Map<string, { counts: number[]; sample: string }>;

/** Counts one queue's messages by name, reading the directory a few hundred entries at a time; deferred/ is also shaped into `shape`. */
async function countQueue(spool: Spool, queue: Queue, shape?: BacklogShape, now = Date.now()): Promise<number> {
  const accept =
    queue === 'incoming' ? (n: string) => parseIncomingName(n) !== null
    : queue === 'active' ? (n: string) => parseActiveName(n) !== null
    : queue === 'ordered' ? (n: string) => parseLineName(n) !== null
    : (n: string) => parseEntry(n) !== null;
  // deferred/ holds time buckets, ordered/ one line per key.
  const isGroup = (name: string) => (queue === 'deferred' ? parseBucketName(name) !== null : /^[0-9a-f]{32}$/.test(name));
  const count = async (dir: string, nested: boolean): Promise<number> => {
    let n = 0;
    try {
      for await (const d of await fsp.opendir(dir, { bufferSize: 256 })) {
        if (nested && d.isDirectory() && isGroup(d.name)) n += await count(path.join(dir, d.name), false);
        else if (shape) {
          // Parsed once: counted and shaped.
          const e = parseEntry(d.name);
          if (e) {
            n++;
            addToShape(shape, path.join(dir, d.name), e, now);
          }
        } else if (accept(d.name)) n++;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return n;
  };
  return count(spool.dir(queue), queue === 'deferred' || queue === 'ordered');
}

function addToShape(shape: BacklogShape, file: string, e: Entry, now: number): void {
  const ageMin = (now - e.arrival) / 60_000;
  let b = AGE_BUCKETS_MIN.findIndex((limit) => ageMin < limit);
  if (b < 0) b = AGE_BUCKETS_MIN.length;
  // Bounded whatever the producers name: tags beyond the first 10,000 are summed under "?".
  const key = shape.has(e.destination) || shape.size < 10_000 ? e.destination : '?';
  let row = shape.get(key);
  if (!row) {
    row = { counts: new Array<number>(AGE_BUCKETS_MIN.length + 1).fill(0), sample: key === '?' ? '' : file };
    shape.set(key, row);
  }
  row.counts[b]!++;
}

/** The oldest next-attempt time that is due now, from the earliest started bucket (O(one bucket)). */
async function oldestDue(spool: Spool, now: number): Promise<number | null> {
  const buckets = (await fsp.readdir(spool.dir('deferred'))).map(parseBucketName).filter((b): b is number => b !== null && b <= now).sort((a, b) => a - b);
  for (const start of buckets) {
    let oldest: number | null = null;
    try {
      for await (const d of await fsp.opendir(spool.bucketDir(start), { bufferSize: 256 })) {
        const e = parseEntry(d.name);
        if (e && e.time <= now && (oldest === null || e.time < oldest)) oldest = e.time;
      }
    } catch {
      continue;
    }
    if (oldest !== null) return oldest;
  }
  return null;
}

export interface Metrics {
  registry: client.Registry;
  observer: DeliveryObserver;
  close(): Promise<void>;
  /** host:port actually bound (the port may have been 0). */
  address: string;
}

/** How often the destination label's values are chosen again. */
const RERANK_MS = 60_000;

/**
 * The `destination` label's values: the busiest `n` hosts of the last
 * minute, and `other` for the rest, so the number of series is bounded
 * whatever the producers name. A host that leaves the busiest loses its
 * series (its counters restart if it comes back: rate() takes that).
 */
export class DestinationLabels {
  private readonly labelled = new Set<string>();
  private counts = new Map<string, number>();

  constructor(
    private readonly n: number,
    private readonly dropped: (host: string) => void,
  ) {}

  of(host: string): string {
    if (host === '-') return host;
    // Counting is bounded too: hosts beyond 10 × n in one minute are not ranked.
    if (this.counts.has(host) || this.counts.size < 10 * this.n) this.counts.set(host, (this.counts.get(host) ?? 0) + 1);
    if (this.labelled.has(host)) return host;
    if (this.labelled.size < this.n) {
      this.labelled.add(host);
      return host;
    }
    return 'other';
  }

  /** Only what has a label of its own, for gauges. */
  has(host: string): boolean {
    return this.labelled.has(host);
  }

  /** Labels stay with their hosts unless busier ones, without a label, take their place. */
  rerank(): void {
    const top = new Set([...this.counts].sort((a, b) => b[1] - a[1]).slice(0, this.n).map(([h]) => h));
    const newcomers = [...top].filter((h) => !this.labelled.has(h));
    for (const h of [...this.labelled]) {
      if (newcomers.length === 0 || this.labelled.size < this.n) break;
      if (top.has(h)) continue;
      this.labelled.delete(h);
      this.dropped(h);
    }
    for (const h of newcomers) if (this.labelled.size < this.n) this.labelled.add(h);
    this.counts = new Map();
  }
}

export interface MetricsOptions {
  statusActions?: boolean;
  labelCount?: number;
  /** The settings in force, as they may be shown (no secrets: see publicSettings). */
  settings?: () => Record<string, unknown>;
}

export async function startMetrics(bind: string, spool: Spool, manager: QueueManager, log: Logger, options: MetricsOptions = {}): Promise<Metrics> {
  const { statusActions = false, labelCount = 20, settings = () => ({}) } = options;
  const registry = new client.Registry();
  // Standard names, so stock Node.js and process dashboards work.
  client.collectDefaultMetrics({ register: registry });
  new client.Gauge({ name: 'spoold_build_info', help: 'Always 1; the version of spoold and of Node.js running', labelNames: ['version', 'node'], registers: [registry] }).set({ version: VERSION, node: process.version }, 1);
  const messages = new client.Counter({ name: 'spoold_messages_total', help: 'Attempt outcomes (one per attempt, not per message): delivered (2xx), deferred (to be retried), bounced (given up)', labelNames: ['outcome', 'destination'], registers: [registry] });
  const received = new client.Counter({ name: 'spoold_received_total', help: 'Messages claimed for the first time', labelNames: ['destination'], registers: [registry] });
  const receivedBytes = new client.Counter({ name: 'spoold_received_bytes_total', help: 'Bytes of the message files claimed for the first time', registers: [registry] });
  const deliveredBytes = new client.Counter({ name: 'spoold_delivered_bytes_total', help: 'Bytes of the message files delivered', registers: [registry] });
  const putBacks = new client.Counter({ name: 'spoold_put_backs_total', help: 'Claimed messages that went back to deferred/ unsent: their destination was dead or paused, the daemon stopped, or the host failed to read them', labelNames: ['reason'], registers: [registry] });
  const claimsMissed = new client.Counter({ name: 'spoold_claims_missed_total', help: 'Claims that found the message gone from its queue: another daemon sharing the spool, or an operator, took it first (queue: incoming, deferred)', labelNames: ['queue'], registers: [registry] });
  const requestSeconds = new client.Histogram({ name: 'spoold_request_duration_seconds', help: 'Time of one HTTP attempt, from sending to the end of the response', labelNames: ['destination'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] });
  const latencySeconds = new client.Histogram({ name: 'spoold_delivery_latency_seconds', help: 'From the message file being written (a scheduled message: from its scheduled time) to its 2xx, retries included', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21_600, 86_400], registers: [registry] });
  const attempts = new client.Histogram({ name: 'spoold_attempts', help: 'Attempts a delivered message took', buckets: [1, 2, 3, 4, 5, 8, 12, 20, 50, 100], registers: [registry] });

  const recent = new RecentActivity();
  let shape: BacklogShape = new Map();
  const snapshot = new Map<Queue, number>();
  const delta = new Map<Queue, number>();
  const add = (q: Queue, n: number) => delta.set(q, (delta.get(q) ?? 0) + n);
  let recounting: Promise<void> | null = null;
  let lastRecount = 0;
  let lastDuration = 0;
  const recount = (): Promise<void> =>
    (recounting ??= (async () => {
      const started = performance.now();
      // Moves made while the count runs are kept on top of it (a count may or
      // may not have seen them: off by those at most, until the next recount).
      const before = new Map(delta);
      const counted = new Map<Queue, number>();
      const shaped: BacklogShape = new Map();
      for (const q of QUEUES) counted.set(q, await countQueue(spool, q, q === 'deferred' ? shaped : undefined));
      shape = shaped;
      for (const q of QUEUES) {
        snapshot.set(q, counted.get(q)!);
        delta.set(q, (delta.get(q) ?? 0) - (before.get(q) ?? 0));
      }
      lastDuration = performance.now() - started;
      lastRecount = Date.now();
    })().finally(() => (recounting = null)));

  new client.Gauge({
    name: 'spoold_queue_messages',
    help: 'Messages in each queue (recounted in the background; the daemon\'s own moves applied as they happen)',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      for (const q of QUEUES) this.set({ queue: q }, Math.max(0, (snapshot.get(q) ?? 0) + (delta.get(q) ?? 0)));
    },
  });
  new client.Gauge({ name: 'spoold_requests_in_flight', help: 'HTTP requests in flight now', registers: [registry], collect() { this.set(manager.inFlightCount); } });
  new client.Gauge({
    name: 'spoold_oldest_due_seconds',
    help: 'How long the oldest due message in deferred/ has been due (0: none waiting)',
    registers: [registry],
    async collect() {
      const now = Date.now();
      const oldest = await oldestDue(spool, now).catch(() => null);
      this.set(oldest === null ? 0 : (now - oldest) / 1000);
    },
  });
  const labels = new DestinationLabels(labelCount, (host) => {
    for (const outcome of ['delivered', 'deferred', 'bounced']) messages.remove({ outcome, destination: host });
    received.remove({ destination: host });
    requestSeconds.remove({ destination: host });
  });
  const rerank = setInterval(() => labels.rerank(), RERANK_MS);
  rerank.unref();
  new client.Gauge({
    name: 'spoold_destinations_dead',
    help: 'Destinations held back as dead (or being probed), by state; those without a label of their own are summed under "other"',
    labelNames: ['destination', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of manager.deadDestinations()) {
        const host = hostOf(d.origin);
        this.inc({ destination: labels.has(host) ? host : 'other', state: d.state }, 1);
      }
    },
  });
  new client.Gauge({
    name: 'spoold_destination_window',
    help: 'Requests that may be in flight to a destination now (its adaptive window); busiest destinations only',
    labelNames: ['destination'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of manager.destinations(labelCount)) {
        const host = hostOf(d.origin);
        if (labels.has(host)) this.set({ destination: host }, d.window);
      }
    },
  });
  new client.Gauge({ name: 'spoold_active_messages', help: 'Claimed messages held in memory (the active set)', registers: [registry], collect() { this.set(manager.activeCount); } });

  const observer: DeliveryObserver = {
    received(destination, bytes) {
      received.inc({ destination: labels.of(hostOf(destination)) });
      receivedBytes.inc(bytes);
    },
    putBack(reason) {
      putBacks.inc({ reason });
    },
    claimMissed(queue) {
      claimsMissed.inc({ queue });
    },
    moved(from, to) {
      add(from, -1);
      if (to) add(to, 1);
    },
    outcome(outcome, destination, detail) {
      const host = hostOf(destination);
      const label = labels.of(host);
      messages.inc({ outcome, destination: label });
      const deliveryMs = outcome === 'delivered' && detail.dueSince !== undefined ? Math.max(0, Date.now() - detail.dueSince) : undefined;
      recent.record(outcome, destination, { ...(detail.ms !== undefined && { requestMs: detail.ms }), ...(deliveryMs !== undefined && { deliveryMs }), ...(detail.last !== undefined && { last: detail.last }) });
      if (detail.ms !== undefined) requestSeconds.observe({ destination: label }, detail.ms / 1000);
      if (outcome === 'delivered') {
        if (detail.bytes !== undefined) deliveredBytes.inc(detail.bytes);
        if (deliveryMs !== undefined) latencySeconds.observe(deliveryMs / 1000);
        if (detail.attempts !== undefined) attempts.observe(detail.attempts);
      }
    },
  };

  // The first count runs before the queue manager moves anything (so no move
  // races it); a spool that cannot be counted must not keep the daemon from starting.
  await recount().catch((err: Error) => log.warn({ event: 'metrics-recount-failed', error: err.message }, 'could not count the queues'));
  const timer = setInterval(() => {
    if (Date.now() - lastRecount >= Math.max(RECOUNT_MIN_MS, 20 * lastDuration)) recount().catch((err: Error) => log.warn({ event: 'metrics-recount-failed', error: err.message }, 'could not count the queues'));
  }, 1000);
  timer.unref();

  const [host, port] = splitAddress(bind);
  let statusPage: StatusPage | null = null;
  // The HTTP side must never stop delivery: whatever a request meets (a
  // spool folder gone, EMFILE, EACCES) is answered 500 and logged, and the
  // daemon goes on.
  const failed = (req: http.IncomingMessage, res: http.ServerResponse, err: unknown) => {
    log.error({ event: 'http-error', path: (req.url ?? '').split('?')[0], error: errnoOf(err) ?? String(err), message: (err as Error).message }, `status page or metrics request failed: ${(err as Error).message}`);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`error: ${errnoOf(err) ?? (err as Error).message}\n`);
  };
  const unguard = installHttpGuard(log);
  const server = http.createServer((req, res) => onHttpSide((req.url ?? '').split('?')[0]!, () => {
    req.on('error', (err) => failed(req, res, err));
    res.on('error', (err) => failed(req, res, err));
    try {
      if (statusPage?.handle(req, res, (err) => failed(req, res, err))) return;
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') return void res.writeHead(404).end('not found\n');
      registry.metrics().then(
        (text: string) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => failed(req, res, err),
      );
    } catch (err) {
      failed(req, res, err);
    }
  }));
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  const queueSizes = () => Object.fromEntries(QUEUES.map((q) => [q, Math.max(0, (snapshot.get(q) ?? 0) + (delta.get(q) ?? 0))]));
  statusPage = new StatusPage(spool, manager, { minutes: () => recent.minutes(), destinations: () => recent.destinations(), queueSizes, shape: () => shape, settings }, statusActions, log, address);
  log.info({ event: 'metrics-listening', address, statusActions }, `metrics on http://${address}/metrics, status page on http://${address}/`);
  return {
    registry,
    observer,
    address,
    close: () => {
      clearInterval(timer);
      clearInterval(rerank);
      return new Promise<void>((r) => server.close(() => r())).then(unguard);
    },
  };
}

/** "127.0.0.1:9464", "[::1]:9464", or ":9464"/"9464" (loopback). */
export function splitAddress(bind: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):?(\d+)$/.exec(bind.trim());
  if (!m) throw new RangeError(`invalid address ${JSON.stringify(bind)}: use host:port, e.g. 127.0.0.1:9464`);
  const port = Number(m[3]);
  if (port > 65_535) throw new RangeError(`invalid port in ${JSON.stringify(bind)}`);
  return [m[1] ?? (m[2] || '127.0.0.1'), port];
}
