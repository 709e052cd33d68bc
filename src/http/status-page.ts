/**
 * The status page, on the `--metrics` address: an overview (queues, rates
 * and latency over the last hour, destinations with their health, window
 * and backlog by age), every queue browsable page by page, a page per
 * message, and, with `--status-actions`, the operator's actions on one
 * message or on a filtered list, and pause and resume. One self-contained
 * page (status-html.ts: no external assets), over a JSON API.
 *
 * The overview reads nothing per refresh but what the daemon holds in
 * memory, paused/ (one file per pause) and a tag's message once; queue
 * pages and searches read names, bounded (see browse.ts).
 *
 * The actions change the spool, so a page elsewhere must not be able to
 * trigger them: each needs the token embedded in this page (unreadable from
 * another origin), a JSON body (which a cross-site form cannot send), an
 * Origin (and Sec-Fetch-Site) saying same origin, and every request must name
 * this daemon's own address as Host (no DNS rebinding). They act by the same
 * renames as spoolctl (operate/control.ts).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { AGE_BUCKETS_MIN, flushTargets, holdTargets, locate, readMessageFile, releaseTargets, remove, replay, requeueTargets, type ActionResult, type Located } from '../operate/control.js';
import { QUEUES, isQueue, type Queue, type Spool } from '../spool/layout.js';
import type { Logger } from '../service/log.js';
import { destinationTag } from '../spool/names.js';
import { isPaused, pause, readPauses, resume, type Pause } from '../spool/pauses.js';
import type { QueueManager } from '../queue/queue-manager.js';
import { VERSION } from '../version.js';
import { ACTIONS_BY_QUEUE, Hosts, isBrowsable, message, page as queuePage, select, type Filter } from './browse.js';
import type { DestinationActivity, MinuteRow } from './activity.js';
import { healthOf } from './health.js';
import { statusHtml } from './status-html.js';

export interface Activity {
  minutes(): MinuteRow[];
  destinations(): DestinationActivity[];
  queueSizes(): Record<string, number>;
  /** deferred/ by destination tag and age, from the last recount. */
  shape(): Map<string, { counts: number[]; sample: string }>;
  settings(): Record<string, unknown>;
}

/** Actions on one message, and on a filtered list (bulk); each maps to control.ts. */
export const ACTIONS = ['flush', 'hold', 'release', 'requeue', 'replay', 'delete'] as const;
type Action = (typeof ACTIONS)[number];
const isAction = (a: unknown): a is Action => typeof a === 'string' && (ACTIONS as readonly string[]).includes(a);
/** A bulk action acts on at most this many messages; the answer says when more matched. */
export const BULK_LIMIT = 100_000;

const BODY_LIMIT = 16 * 1024;
const NEWEST_FIRST = new Set(['bounced', 'hold', 'delivered']);

class Refusal extends Error {
  constructor(
    readonly status: number,
    why: string,
  ) {
    super(why);
  }
}

export class StatusPage {
  private readonly token = randomBytes(24).toString('hex');
  private readonly started = Date.now();
  /** Destination tags' hosts, learnt once each (browse.ts). */
  private readonly hosts = new Hosts();
  private readonly origins = new Map<string, string>();

  constructor(
    private readonly spool: Spool,
    private readonly manager: QueueManager,
    private readonly activity: Activity,
    private readonly actions: boolean,
    private readonly log: Logger,
    /** host:port this server is bound to; requests must name it as Host. */
    private readonly address: string,
  ) {}

  private hostAllowed(req: http.IncomingMessage): boolean {
    const host = req.headers.host ?? '';
    const port = this.address.slice(this.address.lastIndexOf(':') + 1);
    return host === this.address || host === `localhost:${port}`;
  }

  /** Handles the page's routes; false for anything else. `fail` answers an error (500). */
  handle(req: http.IncomingMessage, res: http.ServerResponse, fail: (err: unknown) => void): boolean {
    const url = new URL(req.url ?? '/', 'http://status');
    const route = url.pathname;
    if (route !== '/' && !route.startsWith('/api/')) return false;
    if (!this.hostAllowed(req)) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('misdirected request: use the address spoold listens on\n');
      return true;
    }
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    const answer = (work: () => Promise<unknown> | unknown) =>
      Promise.resolve()
        .then(work)
        .then(
          (body) => json(200, body),
          (err: unknown) => (err instanceof Refusal ? json(err.status, { error: err.message }) : fail(err)),
        );
    if (req.method === 'GET') {
      const q = url.searchParams;
      if (route === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'" });
        res.end(statusHtml(this.token, this.actions, this.spool.root));
      } else if (route === '/api/status') void answer(() => this.overview());
      else if (route === '/api/queue') void answer(() => this.browse(q));
      else if (route === '/api/message') void answer(() => this.message(q.get('id') ?? ''));
      else json(404, { error: 'no such route' });
      return true;
    }
    if (req.method === 'POST' && route.startsWith('/api/')) {
      void this.body(req)
        .then((body) => answer(() => this.act(route, body)))
        .catch((err: unknown) => {
          if (err instanceof Refusal) {
            this.log.warn({ event: 'status-action-refused', action: route.slice(5), why: err.message, origin: req.headers.origin ?? null }, `status page action refused: ${err.message}`);
            json(err.status, { error: err.message });
          } else fail(err);
        });
      return true;
    }
    json(404, { error: 'no such route' });
    return true;
  }

  /** The checks every action passes first (see the module comment), then the JSON body. */
  private body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (!this.actions) return reject(new Refusal(403, 'actions are off: start spoold with --status-actions'));
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== `http://${req.headers.host}`) return reject(new Refusal(403, 'cross-origin request'));
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') return reject(new Refusal(403, 'cross-site request'));
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return reject(new Refusal(415, 'expected application/json'));
      const given = Buffer.from(String(req.headers['x-spoold-token'] ?? ''));
      const token = Buffer.from(this.token);
      if (given.length !== token.length || !timingSafeEqual(given, token)) return reject(new Refusal(403, 'missing or wrong token'));
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
        if (body.length > BODY_LIMIT) {
          reject(new Refusal(413, 'request body too large'));
          req.destroy();
        }
      });
      req.on('error', reject);
      req.on('end', () => {
        try {
          const v: unknown = JSON.parse(body);
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
          resolve(v as Record<string, unknown>);
        } catch {
          reject(new Refusal(400, 'not a JSON object'));
        }
      });
    });
  }

  private originOfTag(tag: string): string | undefined {
    return this.origins.get(tag);
  }

  private learn(origin: string): void {
    if (this.origins.size > 10_000) this.origins.clear();
    this.origins.set(destinationTag(origin), origin);
  }

  private overview(): unknown {
    const pauses = readPauses(this.spool).filter((p) => p.until === null);
    const table = new Map(this.manager.destinations(500).map((d) => [d.origin, d]));
    const seen = new Map(this.activity.destinations().map((d) => [d.origin, d]));
    for (const o of [...table.keys(), ...seen.keys()]) this.learn(o);
    const shapes = new Map<string, number[]>();
    for (const [tag, row] of this.activity.shape()) {
      let origin = this.originOfTag(tag);
      if (origin === undefined && row.sample) {
        // A tag the daemon holds nothing for now: its origin from one of its messages, once.
        origin = originOfFile(row.sample);
        if (origin) this.learn(origin);
      }
      const key = origin ?? '?';
      const prev = shapes.get(key);
      shapes.set(key, prev ? prev.map((n, i) => n + row.counts[i]!) : [...row.counts]);
    }
    const origins = new Set([...table.keys(), ...seen.keys(), ...[...shapes.keys()].filter((o) => o !== '?')]);
    const destinations = [...origins].map((origin) => {
      const d = table.get(origin);
      const s = seen.get(origin);
      const pausedBy = pausesOf(pauses, origin);
      const shape = shapes.get(origin) ?? new Array<number>(AGE_BUCKETS_MIN.length + 1).fill(0);
      return {
        origin,
        host: hostOf(origin),
        health: healthOf(d?.state, pausedBy.length > 0, s),
        window: d?.window ?? null,
        limit: d?.limit ?? null,
        inFlight: d?.inFlight ?? 0,
        waiting: d?.waiting ?? 0,
        deferred: shape.reduce((a, b) => a + b, 0),
        shape,
        attempts: s?.attempts ?? 0,
        failures: s?.failures ?? 0,
        bounced: s?.bounced ?? 0,
        meanMs: s ? Math.round(s.meanMs) : null,
        lastError: d?.lastError ?? s?.last ?? null,
        until: d?.until ?? null,
        pausedBy,
      };
    });
    destinations.sort((a, b) => Number(b.health !== 'ok') - Number(a.health !== 'ok') || b.deferred + b.waiting + b.inFlight - (a.deferred + a.waiting + a.inFlight) || a.origin.localeCompare(b.origin));
    const mem = process.memoryUsage();
    return {
      spool: this.spool.root,
      version: VERSION,
      node: process.version,
      pid: process.pid,
      now: Date.now(),
      startedAt: this.started,
      memory: { rss: mem.rss, heapUsed: mem.heapUsed },
      settings: this.activity.settings(),
      actions: this.actions,
      queues: Object.fromEntries(QUEUES.map((q) => [q, this.activity.queueSizes()[q] ?? 0])),
      inFlight: this.manager.inFlightCount,
      minutes: this.activity.minutes(),
      ageBuckets: [...AGE_BUCKETS_MIN.map((m) => `${m}m`), `${AGE_BUCKETS_MIN.at(-1)}m+`],
      destinations,
      unknownDeferred: shapes.get('?')?.reduce((a, b) => a + b, 0) ?? 0,
      paused: pauses.map((p) => ({ pattern: p.pattern, since: p.since })),
    };
  }

  private async browse(q: URLSearchParams): Promise<unknown> {
    const queue = q.get('queue') ?? 'deferred';
    if (!isBrowsable(queue)) throw new Refusal(400, `no queue ${JSON.stringify(queue)}`);
    // Where the newest matter most (what just bounced, was held or delivered), newest first unless asked.
    const order = q.get('order') === 'newest' || q.get('order') === 'oldest' ? (q.get('order') as 'newest' | 'oldest') : NEWEST_FIRST.has(queue) ? 'newest' : 'oldest';
    const limit = Number(q.get('limit') ?? 50);
    const p = await queuePage(this.spool, { queue, order, limit: Number.isFinite(limit) ? limit : 50, ...filterOf(Object.fromEntries(q)), ...(q.get('after') && { after: q.get('after')! }) }, this.hosts);
    return { queue, order, actions: ACTIONS_BY_QUEUE[queue], ...p };
  }

  private async message(id: string): Promise<unknown> {
    if (!id) throw new Refusal(400, 'no id');
    const m = await message(this.spool, id);
    if (m.copies.length === 0 && m.deliveries.length === 0 && m.attempts.length === 0) throw new Refusal(404, `no message ${JSON.stringify(id)} in the spool`);
    return m;
  }

  private async act(route: string, body: Record<string, unknown>): Promise<unknown> {
    const what = route.slice('/api/'.length);
    if (what === 'pause' || what === 'resume') {
      const destination = body.destination;
      if (typeof destination !== 'string') throw new Refusal(400, 'no destination');
      let done: string;
      try {
        done = what === 'pause' ? pause(this.spool, destination) : resume(this.spool, destination);
      } catch (err) {
        if ((err as { code?: string }).code === 'SPOOL_ERR_BAD_PATTERN') throw new Refusal(400, (err as Error).message);
        throw err;
      }
      this.manager.reloadPauses();
      this.log.info({ event: 'status-action', action: what, destination, done }, `${what} ${destination} from the status page: ${done}`);
      return { destination, done };
    }
    // Kept for pages loaded before the action API: requeue or delete one bounced message.
    if (what === 'requeue' || what === 'delete') return this.act('/api/action', { action: what, id: body.id, queue: 'bounced' });
    if (what === 'action') {
      const { action, id, queue } = body;
      if (!isAction(action)) throw new Refusal(400, `no action ${JSON.stringify(action)}: one of ${ACTIONS.join(', ')}`);
      if (typeof id !== 'string' || id === '') throw new Refusal(400, 'no id');
      if (queue !== undefined && (typeof queue !== 'string' || !isQueue(queue))) throw new Refusal(400, `no queue ${JSON.stringify(queue)}`);
      const targets = action === 'replay' ? [] : locate(this.spool, id, queue ? [queue as Queue] : QUEUES.filter((q) => q !== 'active'));
      const r = action === 'replay' ? await replay(this.spool, [id]) : apply(this.spool, action, targets);
      if (targets.length === 0 && action !== 'replay' && r.done.length === 0) r.missing.push(id);
      return this.report(action, queue ?? null, r);
    }
    if (what === 'bulk') {
      const { action, queue } = body;
      if (!isAction(action) || action === 'replay') throw new Refusal(400, `no bulk action ${JSON.stringify(action)}: one of flush, hold, release, requeue, delete`);
      if (typeof queue !== 'string' || !isQueue(queue) || queue === 'active') throw new Refusal(400, `no queue ${JSON.stringify(queue)}`);
      if (!ACTIONS_BY_QUEUE[queue].includes(action)) throw new Refusal(400, `${action} does not apply to ${queue}/: ${ACTIONS_BY_QUEUE[queue].join(', ') || 'nothing does'}`);
      const filter = filterOf(typeof body.filter === 'object' && body.filter !== null ? (body.filter as Record<string, unknown>) : {});
      const { targets, complete } = await select(this.spool, queue, filter, BULK_LIMIT);
      // Without confirm: what it would act on, to be confirmed by a person.
      if (body.confirm !== true) return { action, queue, filter, matched: targets.length, complete, sample: targets.slice(0, 10).map((t) => t.id) };
      return { ...this.report(action, queue, apply(this.spool, action, targets), filter), complete };
    }
    throw new Refusal(404, 'no such action');
  }

  private report(action: Action, queue: string | null, r: ActionResult, filter?: Filter): { action: Action; queue: string | null } & ActionResult {
    if (r.done.length > 0) this.manager.dueChanged();
    this.log.info({ event: 'status-action', action, queue, ...(filter ? { filter } : {}), done: r.done.length, refused: r.refused.length, missing: r.missing.length, ...(r.done.length + r.refused.length + r.missing.length === 1 && { id: [...r.done, ...r.refused.map((x) => x.id), ...r.missing][0] }) }, `${action} from the status page: ${r.done.length} done, ${r.refused.length} refused, ${r.missing.length} not found`);
    return { action, queue, done: r.done, refused: r.refused, missing: r.missing };
  }
}

function apply(spool: Spool, action: Exclude<Action, 'replay'>, targets: readonly Located[]): ActionResult {
  switch (action) {
    case 'flush':
      return flushTargets(spool, targets);
    case 'hold':
      return holdTargets(spool, targets);
    case 'release':
      return releaseTargets(spool, targets);
    case 'requeue':
      return requeueTargets(spool, targets);
    case 'delete':
      return remove(spool, targets);
  }
}

function filterOf(raw: Record<string, unknown>): Filter {
  const f: Filter = {};
  const str = (k: string) => (typeof raw[k] === 'string' && (raw[k] as string).trim() !== '' ? (raw[k] as string).trim() : undefined);
  const destination = str('destination');
  const error = str('error');
  const prefix = str('prefix');
  const since = str('since') ?? (typeof raw.since === 'number' ? String(raw.since) : undefined);
  if (destination) f.destination = destination;
  if (error) f.error = error;
  if (prefix) f.prefix = prefix;
  if (since) {
    const t = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (!Number.isFinite(t)) throw new Refusal(400, `"since" is not a time: ${JSON.stringify(since)} (ISO 8601 or epoch ms)`);
    f.since = t;
  }
  return f;
}

function originOfFile(file: string): string | undefined {
  try {
    return new URL(String(readMessageFile(file)?.url)).origin;
  } catch {
    return undefined;
  }
}

function hostOf(origin: string): string {
  try {
    return new URL(origin).host;
  } catch {
    return origin;
  }
}

/** The pauses in force that cover an origin (to resume from its row). */
function pausesOf(pauses: readonly Pause[], origin: string): string[] {
  try {
    const url = new URL(origin);
    return pauses.filter((p) => isPaused([p], url)).map((p) => p.pattern);
  } catch {
    return [];
  }
}
