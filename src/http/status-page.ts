/**
 * The status page, on the `--metrics` address: queue sizes, rates over the
 * last hour, destinations and their health, the oldest deferred messages,
 * and the bounced list, with requeue and delete buttons when
 * `--status-actions` is on. One self-contained page (no external assets: it
 * works offline), polling a JSON endpoint.
 *
 * The actions change the spool, so a page elsewhere must not be able to
 * trigger them: each needs the token embedded in this page (unreadable from
 * another origin), a JSON body (which a cross-site form cannot send), an
 * Origin (and Sec-Fetch-Site) saying same origin, and every request must name
 * this daemon's own address as Host (no DNS rebinding).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import path from 'node:path';
import { Destinations, locate, readReason, remove, requeue, walkQueue, type Located } from '../operate/control.js';
import { QUEUES, streamDir, type Spool } from '../spool/layout.js';
import type { Logger } from '../service/log.js';
import { describeErrorToken, parseBucketName, parseEntry } from '../spool/names.js';
import type { QueueManager } from '../queue/queue-manager.js';

const MINUTES = 60;
const LIST_LIMIT = 20;

export interface Activity {
  /** Per minute over the last hour, oldest first: [minute start ms, delivered, deferred, bounced]. */
  minutes(): [number, number, number, number][];
  /** Per destination host over the last hour. */
  destinations(): { host: string; attempts: number; failures: number; meanMs: number }[];
  queueSizes(): Record<string, number>;
}

interface Row {
  id: string;
  destination: string;
  attempts: number;
  time: number;
  lastError: string | null;
  reason?: string;
}

/** The `limit` earliest next attempts, reading the earliest buckets only. */
function oldestDeferred(spool: Spool, limit: number, dest: Destinations): Row[] {
  const buckets: number[] = [];
  for (const d of streamDir(spool.dir('deferred'))) {
    const b = parseBucketName(d.name);
    if (b !== null) buckets.push(b);
  }
  buckets.sort((a, b) => a - b);
  const found: Located[] = [];
  for (const start of buckets) {
    const dir = spool.bucketDir(start);
    for (const d of streamDir(dir)) {
      const entry = parseEntry(d.name);
      if (entry) found.push({ id: entry.id, queue: 'deferred', name: d.name, path: path.join(dir, d.name), entry });
    }
    if (found.length >= limit) break;
  }
  found.sort((a, b) => a.entry!.time - b.entry!.time);
  return found.slice(0, limit).map((m) => ({ id: m.id, destination: dest.of(m), attempts: m.entry!.attempts, time: m.entry!.time, lastError: describeErrorToken(m.entry!.lastError) }));
}

function bouncedList(spool: Spool, limit: number, dest: Destinations): { rows: Row[]; more: boolean } {
  const rows: Row[] = [];
  for (const m of walkQueue(spool, 'bounced')) {
    if (rows.length === limit) return { rows, more: true };
    const reason = readReason(spool, m);
    rows.push({ id: m.id, destination: dest.of(m), attempts: m.entry!.attempts, time: m.entry!.time, lastError: describeErrorToken(m.entry!.lastError), reason: typeof reason?.reason === 'string' ? reason.reason : '' });
  }
  return { rows, more: false };
}

export class StatusPage {
  private readonly token = randomBytes(24).toString('hex');
  private readonly started = Date.now();

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

  /** Handles the page's routes; false for anything else. `fail` answers an error met later, in a callback. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, fail: (err: unknown) => void): boolean {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/' && !url!.startsWith('/api/')) return false;
    if (!this.hostAllowed(req)) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('misdirected request: use the address spoold listens on\n');
      return true;
    }
    if (req.method === 'GET' && url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'" });
      res.end(page(this.token, this.actions, this.spool.root));
      return true;
    }
    if (req.method === 'GET' && url === '/api/status') {
      const body = JSON.stringify(this.status());
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
      return true;
    }
    if (req.method === 'POST' && (url === '/api/requeue' || url === '/api/delete')) {
      this.action(req, res, url === '/api/requeue' ? 'requeue' : 'delete', fail);
      return true;
    }
    res.writeHead(404).end();
    return true;
  }

  private status(): unknown {
    const dest = new Destinations();
    const table = new Map(this.manager.destinations(200).map((d) => [new URL(d.origin).host, d]));
    const seen = this.activity.destinations();
    const hosts = new Set([...seen.map((d) => d.host), ...table.keys()]);
    const destinations = [...hosts].map((host) => {
      const s = seen.find((d) => d.host === host) ?? { host, attempts: 0, failures: 0, meanMs: 0 };
      const d = table.get(host);
      // Held back, failing (most attempts fail, whatever the reason: a refused connection too), slow, or ok.
      const health = d && d.state !== 'ok' ? d.state : s.attempts > 0 && s.failures / s.attempts > 0.5 ? 'failing' : s.attempts > 0 && (s.meanMs > 2000 || s.failures / s.attempts > 0.2) ? 'slow' : 'ok';
      return { ...s, health, window: d ? `${d.window}/${d.limit}` : '', inFlight: d?.inFlight ?? 0, waiting: d?.waiting ?? 0, lastError: d?.lastError ?? null, ...(d?.until && { until: d.until }) };
    });
    destinations.sort((a, b) => (a.health === b.health ? b.attempts - a.attempts : a.health === 'ok' ? 1 : b.health === 'ok' ? -1 : a.health.localeCompare(b.health)));
    return {
      spool: this.spool.root,
      now: Date.now(),
      startedAt: this.started,
      actions: this.actions,
      queues: Object.fromEntries(QUEUES.map((q) => [q, this.activity.queueSizes()[q] ?? 0])),
      inFlight: this.manager.inFlightCount,
      minutes: this.activity.minutes(),
      destinations,
      oldestDeferred: oldestDeferred(this.spool, LIST_LIMIT, dest),
      bounced: bouncedList(this.spool, 50, dest),
    };
  }

  private action(req: http.IncomingMessage, res: http.ServerResponse, what: 'requeue' | 'delete', fail: (err: unknown) => void): void {
    const refuse = (status: number, why: string) => {
      this.log.warn({ event: 'status-action-refused', action: what, why, origin: req.headers.origin ?? null }, `status page ${what} refused: ${why}`);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: why }));
    };
    if (!this.actions) return refuse(403, 'actions are off: start spoold with --status-actions');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) return refuse(403, 'cross-origin request');
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return refuse(403, 'cross-site request');
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return refuse(415, 'expected application/json');
    const given = Buffer.from(String(req.headers['x-spoold-token'] ?? ''));
    const token = Buffer.from(this.token);
    if (given.length !== token.length || !timingSafeEqual(given, token)) return refuse(403, 'missing or wrong token');
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString('utf8');
      if (body.length > 4096) req.destroy();
    });
    req.on('error', fail);
    req.on('end', () => {
      try {
        this.act(res, what, body, refuse);
      } catch (err) {
        fail(err);
      }
    });
  }

  private act(res: http.ServerResponse, what: 'requeue' | 'delete', body: string, refuse: (status: number, why: string) => void): void {
    let id: unknown;
    try {
      id = (JSON.parse(body) as { id?: unknown }).id;
    } catch {
      return refuse(400, 'not JSON');
    }
    if (typeof id !== 'string') return refuse(400, 'no id');
    const result = what === 'requeue' ? requeue(this.spool, [id], ['bounced']) : remove(this.spool, locate(this.spool, id, ['bounced']));
    const done = result.done.includes(id);
    this.log.info({ event: what === 'requeue' ? 'status-requeue' : 'status-delete', id, queue: 'bounced', done }, `${what} from the status page: ${done ? 'done' : 'not found'}`);
    if (done) this.manager.dueChanged();
    res.writeHead(done ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify({ id, done }));
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(token: string, actions: boolean, spool: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="spoold-token" content="${token}">
<title>spoold · ${escapeHtml(spool)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:90px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums}
.dead,.probing,.failing{color:#b42318;font-weight:600}.slow{color:#b54708;font-weight:600}.ok{color:#067647}
button{font:inherit;padding:2px 10px;margin-right:4px;cursor:pointer}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.muted{color:#667085}
</style></head><body>
<header><h1>spoold</h1><span>${escapeHtml(spool)}</span><span id="updated" class="muted"></span></header>
<main>
<section><h2>Queues</h2><div class="cards" id="queues"></div></section>
<section><h2>Last hour</h2><div id="totals"></div><svg id="chart" width="100%" height="90" viewBox="0 0 600 90" preserveAspectRatio="none"></svg>
<div class="legend muted"><i style="background:#12b76a"></i>delivered<i style="background:#f79009"></i>deferred<i style="background:#f04438"></i>bounced</div></section>
<section><h2>Destinations</h2><table><thead><tr><th>destination</th><th>health</th><th>window</th><th>in flight</th><th>waiting</th><th>attempts (1 h)</th><th>failures</th><th>mean ms</th><th>last error</th></tr></thead><tbody id="destinations"></tbody></table></section>
<section><h2>Oldest deferred</h2><table><thead><tr><th>id</th><th>destination</th><th>next attempt</th><th>attempts</th><th>last error</th></tr></thead><tbody id="deferred"></tbody></table></section>
<section><h2>Bounced</h2>${actions ? '' : '<p class="muted">Requeue and delete are off (start spoold with --status-actions to allow them).</p>'}
<table><thead><tr><th>id</th><th>destination</th><th>reason</th><th>bounced</th><th></th></tr></thead><tbody id="bounced"></tbody></table></section>
</main>
<script>
const token = document.querySelector('meta[name=spoold-token]').content;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const row = (cells) => { const tr = el('tr'); for (const c of cells) tr.append(c instanceof Node ? c : el('td', String(c))); return tr; };
const when = (t, now) => { const s = Math.round((t - now) / 1000); const a = Math.abs(s); const v = a < 90 ? a + ' s' : a < 5400 ? Math.round(a / 60) + ' min' : Math.round(a / 3600) + ' h'; return s >= 0 ? 'in ' + v : v + ' ago'; };
async function act(what, id) {
  const res = await fetch('/api/' + what, { method: 'POST', headers: { 'content-type': 'application/json', 'x-spoold-token': token }, body: JSON.stringify({ id }) });
  if (!res.ok) alert(what + ' ' + id + ': ' + ((await res.json().catch(() => ({}))).error || res.status));
  refresh();
}
function render(s) {
  document.getElementById('updated').textContent = 'updated ' + new Date(s.now).toLocaleTimeString();
  const q = document.getElementById('queues'); q.replaceChildren();
  for (const [name, n] of Object.entries(s.queues)) { const c = el('div', undefined, 'card'); c.dataset.queue = name; c.append(el('b', String(n)), el('span', name)); q.append(c); }
  const f = el('div', undefined, 'card'); f.dataset.queue = 'in-flight'; f.append(el('b', String(s.inFlight)), el('span', 'in flight')); q.append(f);
  const sum = [0, 0, 0]; for (const m of s.minutes) { sum[0] += m[1]; sum[1] += m[2]; sum[2] += m[3]; }
  const t = document.getElementById('totals'); t.replaceChildren();
  for (const [i, name] of ['delivered', 'deferred', 'bounced'].entries()) { const c = el('span', name + ' ' + sum[i] + '  ', 'muted'); c.dataset.total = name; c.dataset.value = String(sum[i]); t.append(c); }
  const max = Math.max(1, ...s.minutes.map((m) => m[1] + m[2] + m[3]));
  const svg = document.getElementById('chart'); svg.replaceChildren();
  s.minutes.forEach((m, i) => { let y = 90; for (const [k, color] of [[1, '#12b76a'], [2, '#f79009'], [3, '#f04438']]) { const h = (m[k] / max) * 86; if (h <= 0) continue; y -= h; const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect'); r.setAttribute('x', String(i * 10)); r.setAttribute('y', String(y)); r.setAttribute('width', '8'); r.setAttribute('height', String(h)); r.setAttribute('fill', color); svg.append(r); } });
  const d = document.getElementById('destinations'); d.replaceChildren();
  for (const x of s.destinations) { const tr = row([x.host, el('td', x.health + (x.until ? ' until ' + new Date(x.until).toLocaleTimeString() : ''), x.health), x.window, x.inFlight, x.waiting, x.attempts, x.failures, Math.round(x.meanMs), x.lastError || '']); tr.dataset.destination = x.host; d.append(tr); }
  const o = document.getElementById('deferred'); o.replaceChildren();
  for (const x of s.oldestDeferred) o.append(row([x.id, x.destination, when(x.time, s.now), x.attempts, x.lastError || '']));
  const b = document.getElementById('bounced'); b.replaceChildren();
  for (const x of s.bounced.rows) {
    const cell = el('td');
    if (s.actions) { const r = el('button', 'requeue'); r.onclick = () => act('requeue', x.id); const del = el('button', 'delete'); del.onclick = () => { if (confirm('Delete ' + x.id + ' for good?')) act('delete', x.id); }; cell.append(r, del); }
    const tr = row([x.id, x.destination, x.reason || x.lastError || '', when(x.time, s.now), cell]); tr.dataset.id = x.id; b.append(tr);
  }
  if (s.bounced.more) b.append(row([el('td', 'more: spoolctl list --queue bounced', 'muted')]));
}
async function refresh() { try { render(await (await fetch('/api/status')).json()); } catch (e) { document.getElementById('updated').textContent = 'not reachable: ' + e.message; } }
refresh(); setInterval(refresh, 2000);
</script></body></html>
`;
}
