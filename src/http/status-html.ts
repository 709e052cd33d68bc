/**
 * The status page's one document: markup, style and script inline (no
 * external assets: it works offline, and the CSP allows nothing else). Views
 * are chosen by the URL's fragment (#/, #/destinations, #/queue/<queue>,
 * #/message/<id>, #/settings), so each can be bookmarked and the browser's
 * back button works. Every control is a link, a button or a labelled field,
 * reachable from the keyboard; colours keep a 4.5:1 contrast.
 */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function statusHtml(token: string, actions: boolean, spool: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="spoold-token" content="${token}">
<meta name="spoold-actions" content="${actions ? 'on' : 'off'}">
<title>spoold · ${escapeHtml(spool)}</title>
<style>
:root{--fg:#1d2330;--muted:#4f5867;--line:#dde1e7;--bg:#f6f7f9;--ok:#05603a;--warn:#93370d;--bad:#b42318;--accent:#1849a9}
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:var(--bg);color:var(--fg)}
header{background:var(--fg);color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header .meta{color:#d0d5dd}
nav{display:flex;gap:4px;padding:8px 20px;background:#fff;border-bottom:1px solid var(--line);flex-wrap:wrap;align-items:center}
nav a{padding:6px 12px;border-radius:4px;color:var(--accent);text-decoration:none}nav a[aria-current=page]{background:#e8eefc;font-weight:600}
nav form{margin-left:auto;display:flex;gap:6px;align-items:center}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;overflow-x:auto}
h2{font-size:15px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 6px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:90px;color:inherit;text-decoration:none}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums;vertical-align:top}
th button{font:inherit;font-weight:600;border:0;background:none;padding:0;cursor:pointer;color:inherit}
.dead,.probing,.failing{color:var(--bad);font-weight:600}.slow,.paused{color:var(--warn);font-weight:600}.ok{color:var(--ok)}
button,select,input{font:inherit}button{padding:3px 10px;margin:0 4px 2px 0;cursor:pointer}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.muted{color:var(--muted)}.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
svg text{font-size:10px;fill:var(--muted)}svg .axis{stroke:#98a2b3;stroke-width:1}svg .grid{stroke:#eef0f3}
.legend span{margin-right:12px}.legend i{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end;margin-bottom:8px}.filters label{display:grid;gap:2px;font-size:12px;color:var(--muted)}
pre{background:#f2f4f7;padding:8px;overflow:auto;max-height:300px;white-space:pre-wrap;word-break:break-all}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:var(--muted)}dd{margin:0}
#notice{min-height:1.4em}
</style></head><body>
<header><h1>spoold</h1><span class="meta">${escapeHtml(spool)}</span><span class="meta" id="about"></span><span class="meta" id="updated"></span></header>
<nav aria-label="views"><a href="#/">Overview</a><a href="#/destinations">Destinations</a><a href="#/queue/deferred">Queues</a><a href="#/settings">Settings</a>
<form id="search" role="search"><label for="search-id">Message id</label><input id="search-id" name="id" required size="24" autocomplete="off"><button type="submit">Find</button></form></nav>
<div id="notice" role="status" aria-live="polite" class="muted" style="padding:4px 20px"></div>
<main id="view"></main>
<script>
'use strict';
const token = document.querySelector('meta[name=spoold-token]').content;
const actionsOn = document.querySelector('meta[name=spoold-actions]').content === 'on';
const QUEUES = ['incoming', 'active', 'deferred', 'hold', 'bounced', 'ordered', 'delivered'];
const view = document.getElementById('view');
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (v === undefined || v === null || v === false) continue; if (k.startsWith('on')) e[k] = v; else if (k === 'dataset') Object.assign(e.dataset, v); else e.setAttribute(k, v === true ? '' : String(v)); }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};
const td = (x) => (x instanceof Node && x.tagName === 'TD' ? x : el('td', {}, x ?? ''));
const tr = (cells, attrs) => el('tr', attrs, cells.map(td));
const table = (heads, rows, attrs) => el('table', attrs, el('thead', {}, el('tr', {}, heads.map((h) => (h instanceof Node ? h : el('th', { scope: 'col' }, h))))), el('tbody', {}, rows));
const section = (title, ...kids) => el('section', { 'aria-label': title }, el('h2', {}, title), ...kids);
const ago = (t, now) => { const s = Math.round((t - now) / 1000), a = Math.abs(s); const v = a < 90 ? a + ' s' : a < 5400 ? Math.round(a / 60) + ' min' : a < 172800 ? Math.round(a / 3600) + ' h' : Math.round(a / 86400) + ' d'; return s >= 0 ? 'in ' + v : v + ' ago'; };
const stamp = (t) => (t ? new Date(t).toLocaleString() : '');
const bytes = (n) => (n > 1048576 ? (n / 1048576).toFixed(0) + ' MB' : Math.round(n / 1024) + ' KB');
const msgLink = (id) => el('a', { href: '#/message/' + encodeURIComponent(id) }, id);
const notice = (text) => { document.getElementById('notice').textContent = text; };

async function api(path) {
  const res = await fetch(path);
  const body = await res.json().catch(() => ({ error: 'HTTP ' + res.status }));
  if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status);
  return body;
}
async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-spoold-token': token }, body: JSON.stringify(body) });
  const out = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(out.error || 'HTTP ' + res.status);
  return out;
}
const summary = (r) => [r.done.length + ' done', r.refused.length ? r.refused.length + ' refused (' + r.refused.slice(0, 3).map((x) => x.id + ': ' + x.reason).join('; ') + ')' : '', r.missing.length ? r.missing.length + ' not found' : ''].filter(Boolean).join(', ');

/* A line chart with axes: series of [x, y] points, y from 0 to a rounded maximum. */
function chart(title, series, unit, minutes) {
  const W = 560, H = 170, L = 48, B = 22, T = 8, R = 8;
  const ns = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v)); if (text !== undefined) e.textContent = text; return e; };
  let max = 0; for (const x of series) for (const v of x.values) if (v !== null) max = Math.max(max, v);
  const mag = Math.pow(10, Math.floor(Math.log10(max || 1))); const top = Math.ceil((max || 1) / mag) * mag;
  const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': title });
  const y = (v) => T + (H - T - B) * (1 - v / top), x = (i) => L + (W - L - R) * (i / (minutes.length - 1));
  for (const f of [0, 0.25, 0.5, 0.75, 1]) { const v = top * f; svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }), s('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, (v >= 100 ? Math.round(v) : +v.toFixed(2)) + (f === 1 ? ' ' + unit : ''))); }
  svg.append(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }), s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (let i = 0; i < minutes.length; i += 10) svg.append(s('text', { x: x(i), y: H - 6, 'text-anchor': 'middle' }, new Date(minutes[i]).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
  svg.append(s('text', { x: x(minutes.length - 1), y: H - 6, 'text-anchor': 'end' }, 'now'));
  for (const line of series) {
    let d = ''; line.values.forEach((v, i) => { if (v === null) return; d += (d && line.values[i - 1] !== null ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1); });
    if (d) svg.append(s('path', { d, fill: 'none', stroke: line.color, 'stroke-width': 2, 'data-series': line.name }));
    line.values.forEach((v, i) => { if (v !== null && v > 0) svg.append(s('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: line.color }, line.name + ' ' + (+v.toFixed(2)) + ' ' + unit)); });
  }
  const legend = el('div', { class: 'legend muted' }, series.map((l) => el('span', {}, el('i', { style: 'background:' + l.color }), l.name)));
  return el('figure', { style: 'margin:0', dataset: { chart: title } }, el('figcaption', {}, el('h3', {}, title)), svg, legend);
}

function overview(s) {
  const cards = el('div', { class: 'cards' }, ...QUEUES.filter((q) => q !== 'delivered').map((q) => el('a', { class: 'card', href: '#/queue/' + q, dataset: { queue: q } }, el('b', {}, String(s.queues[q] ?? 0)), q)), el('div', { class: 'card', dataset: { queue: 'in-flight' } }, el('b', {}, String(s.inFlight)), 'in flight'));
  const m = s.minutes, at = m.map((x) => x.at);
  const sum = (k) => m.reduce((a, x) => a + x[k], 0);
  const totals = el('p', {}, 'In the last hour: ', ['delivered', 'deferred', 'bounced'].map((k, i) => el('span', { dataset: { total: k, value: String(sum(k)) } }, (i ? ' · ' : '') + sum(k) + ' ' + k)), el('span', { class: 'muted' }, ' (attempt outcomes)'));
  const pct = (k, i) => m.map((x) => (x[k] ? x[k][i] : null));
  return [
    section('Queues', cards),
    section('Last hour', totals, el('div', { class: 'charts' },
      chart('Rates (msgs/s, per minute)', [['delivered', '#12b76a'], ['deferred', '#dc6803'], ['bounced', '#d92d20']].map(([k, c]) => ({ name: k, color: c, values: m.map((x) => x[k] / 60) })), '/s', at),
      chart('Request time (ms)', [['p50', 0, '#12b76a'], ['p95', 1, '#dc6803'], ['p99', 2, '#d92d20']].map(([n, i, c]) => ({ name: n, color: c, values: pct('request', i) })), 'ms', at),
      chart('Delivery, arrival to 2xx (ms)', [['p50', 0, '#12b76a'], ['p95', 1, '#dc6803'], ['p99', 2, '#d92d20']].map(([n, i, c]) => ({ name: n, color: c, values: pct('delivery', i) })), 'ms', at))),
    destinationsSection(s, 10),
  ];
}

let sortKey = 'health', sortDir = 1, destFilter = '';
const HEALTH_ORDER = { dead: 0, probing: 1, failing: 2, paused: 3, slow: 4, ok: 5 };
function destinationsSection(s, limit) {
  let rows = s.destinations.filter((d) => !destFilter || d.origin.toLowerCase().includes(destFilter.toLowerCase()) || d.health === destFilter.toLowerCase());
  const val = (d) => (sortKey === 'health' ? HEALTH_ORDER[d.health] : sortKey === 'origin' ? d.origin : d[sortKey] ?? -1);
  rows.sort((a, b) => { const x = val(a), y = val(b); return (x < y ? -1 : x > y ? 1 : 0) * sortDir; });
  const more = limit && rows.length > limit ? rows.length - limit : 0;
  if (limit) rows = rows.slice(0, limit);
  const head = (key, label) => { const th = el('th', { scope: 'col', 'aria-sort': sortKey === key ? (sortDir > 0 ? 'ascending' : 'descending') : 'none' }, el('button', { type: 'button', onclick: () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; render(); } }, label)); return th; };
  const heads = [head('origin', 'destination'), head('health', 'health'), 'window', head('inFlight', 'in flight'), head('waiting', 'waiting'), head('deferred', 'deferred'), ...s.ageBuckets.map((b) => el('th', { scope: 'col', title: 'deferred, by time since arrival' }, b.endsWith('+') ? '≥' + b.slice(0, -1) : '<' + b)), head('attempts', 'attempts (1 h)'), head('failures', 'failures'), head('bounced', 'bounced'), head('meanMs', 'mean ms'), 'last error', actionsOn ? 'pause' : ''];
  const body = rows.map((d) => {
    const act = el('td');
    if (actionsOn) {
      if (d.pausedBy.length) act.append(el('button', { type: 'button', onclick: () => pauseAction('resume', d.pausedBy) }, 'resume'));
      else act.append(el('button', { type: 'button', onclick: () => pauseAction('pause', [d.origin]) }, 'pause'));
    }
    const health = el('td', { class: d.health }, d.health + (d.until && (d.health === 'dead' || d.health === 'probing') ? ' until ' + new Date(d.until).toLocaleTimeString() : ''));
    const link = el('a', { href: '#/queue/deferred?destination=' + encodeURIComponent(d.host) }, d.origin);
    return tr([link, health, d.window === null ? '' : d.window + '/' + d.limit, d.inFlight, d.waiting, d.deferred, ...d.shape, d.attempts, d.failures, d.bounced, d.meanMs ?? '', d.lastError || '', act], { dataset: { destination: d.host, health: d.health } });
  });
  const filter = el('div', { class: 'filters' }, el('label', {}, 'Filter destinations', el('input', { id: 'dest-filter', value: destFilter, placeholder: 'host or health', oninput: (e) => { destFilter = e.target.value; render(); } })));
  const paused = s.paused.length ? [el('h3', {}, 'Paused'), table(['pattern', 'since', ''], s.paused.map((p) => tr([p.pattern, stamp(p.since), actionsOn ? el('button', { type: 'button', onclick: () => pauseAction('resume', [p.pattern]) }, 'resume') : ''], { dataset: { paused: p.pattern } })))] : [];
  return section('Destinations', limit ? null : filter, table(heads, body, { id: 'destinations' }), more ? el('p', {}, el('a', { href: '#/destinations' }, more + ' more')) : null, s.unknownDeferred ? el('p', { class: 'muted' }, s.unknownDeferred + ' deferred messages of destinations not counted one by one') : null, ...paused, el('p', { class: 'muted' }, 'Backlog by age (qshape): deferred messages by time since they arrived, recounted in the background.'));
}

async function pauseAction(what, patterns) {
  try { for (const p of patterns) { const r = await post('/api/' + what, { destination: p }); notice(what + ' ' + p + ': ' + r.done); } } catch (e) { notice(what + ': ' + e.message); }
  refresh();
}

function settings(s) {
  const facts = [['version', s.version], ['Node.js', s.node], ['pid', s.pid], ['spool', s.spool], ['up since', stamp(s.startedAt) + ' (' + ago(s.startedAt, s.now) + ')'], ['resident memory', bytes(s.memory.rss)], ['heap used', bytes(s.memory.heapUsed)], ['actions', s.actions ? 'on (--status-actions)' : 'off']];
  return [section('This daemon', el('dl', {}, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { about: k } }, String(v))]))),
    section('Settings in force (secrets left out)', el('pre', { id: 'settings' }, JSON.stringify(s.settings, null, 2)))];
}

/* Queues: one page at a time, filtered; the cursor stack lets "previous" go back. */
let pages = [];
async function queueView(queue, params) {
  const q = new URLSearchParams(params);
  const order = q.get('order') || (['bounced', 'hold', 'delivered'].includes(queue) ? 'newest' : 'oldest');
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); const f = new FormData(e.target); const p = new URLSearchParams(); for (const [k, v] of f) if (v && k !== 'queue') p.set(k, String(v)); const target = '#/queue/' + f.get('queue') + (p.toString() ? '?' + p : ''); if (location.hash === target) { pages = []; render(); } else location.hash = target; } },
    el('label', {}, 'Queue', el('select', { name: 'queue' }, QUEUES.map((x) => el('option', { value: x, selected: x === queue }, x)))),
    el('label', {}, 'Order', el('select', { name: 'order' }, ['oldest', 'newest'].map((x) => el('option', { value: x, selected: x === order }, x + ' first')))),
    el('label', {}, 'Destination', el('input', { name: 'destination', value: q.get('destination') || '', size: 18 })),
    el('label', {}, 'Last error', el('input', { name: 'error', value: q.get('error') || '', size: 12 })),
    el('label', {}, 'Id prefix', el('input', { name: 'prefix', value: q.get('prefix') || '', size: 14 })),
    el('label', {}, 'Since', el('input', { name: 'since', type: 'datetime-local', step: 1, value: q.get('since') || '' })),
    el('button', { type: 'submit' }, 'Show'));
  const api_q = new URLSearchParams(q); api_q.set('queue', queue); api_q.set('order', order); if (q.get('since')) api_q.set('since', String(new Date(q.get('since')).getTime()));
  const after = pages.at(-1); if (after) api_q.set('after', after);
  const p = await api('/api/queue?' + api_q);
  const timeHead = queue === 'deferred' ? 'next attempt' : queue === 'delivered' ? 'delivered' : 'since';
  const rows = p.rows.map((r) => tr([msgLink(r.id), r.destination, el('td', { title: stamp(r.time) }, r.time ? ago(r.time, Date.now()) : ''), r.attempts, r.lastError || ''], { dataset: { id: r.id } }));
  const nav = el('p', {},
    el('button', { type: 'button', disabled: pages.length === 0, onclick: () => { pages.pop(); render(); } }, '← previous'),
    el('button', { type: 'button', disabled: !p.next, onclick: () => { pages.push(p.next); render(); } }, 'next →'),
    el('span', { class: 'muted', id: 'page-info' }, 'page ' + (pages.length + 1) + ' · ' + p.rows.length + ' shown' + (p.complete ? '' : ' · read ' + p.scanned + ' names and stopped: narrow the filter, or go on with next')));
  const out = [section('Queue ' + queue, form, table(['id', 'destination', timeHead, 'attempts', 'last error'], rows, { id: 'queue-rows', dataset: { queue } }), nav)];
  if (actionsOn && p.actions.length && queue !== 'delivered') out.push(bulkSection(queue, q, p.actions));
  return out;
}

function bulkSection(queue, q, actions) {
  const filter = { destination: q.get('destination') || undefined, error: q.get('error') || undefined, prefix: q.get('prefix') || undefined, since: q.get('since') ? new Date(q.get('since')).getTime() : undefined };
  const result = el('p', { id: 'bulk-result', role: 'status' });
  const select = el('select', { id: 'bulk-action' }, actions.map((a) => el('option', { value: a }, a)));
  const run = async () => {
    const action = select.value;
    try {
      const preview = await post('/api/bulk', { action, queue, filter });
      if (preview.matched === 0) { result.textContent = 'nothing matches'; return; }
      if (!confirm(action + ' ' + preview.matched + ' message(s) of ' + queue + '/' + (preview.complete ? '' : ' (the first ' + preview.matched + ' that match)') + '?')) { result.textContent = 'cancelled'; return; }
      const r = await post('/api/bulk', { action, queue, filter, confirm: true });
      result.textContent = action + ': ' + summary(r);
      notice(result.textContent);
      render();
    } catch (e) { result.textContent = action + ': ' + e.message; }
  };
  return section('Act on every message shown by this filter', el('div', { class: 'filters' }, el('label', {}, 'Action', select), el('button', { type: 'button', id: 'bulk-run', onclick: run }, 'Apply to all matching…')), result);
}

function attemptsTable(list) {
  return table(['#', 'at', 'outcome', 'ms', 'answer'], list.map((a, i) => tr([i + 1, stamp(a.at), a.status !== undefined ? 'HTTP ' + a.status : a.error, a.ms, a.excerpt || a.detail || ''])), { class: 'attempts' });
}

async function messageView(id) {
  const m = await api('/api/message?id=' + encodeURIComponent(id));
  const copy = (c) => {
    const acts = el('p', {}, actionsOn ? c.actions.map((a) => el('button', { type: 'button', dataset: { action: a }, onclick: async () => {
      if (a === 'delete' && !confirm('Delete ' + c.id + ' for good?')) return;
      try { const r = await post('/api/action', { action: a, id: c.id, queue: c.queue === 'delivered' ? undefined : c.queue }); notice(a + ' ' + c.id + ': ' + summary(r)); } catch (e) { notice(a + ': ' + e.message); }
      render();
    } }, a)) : el('span', { class: 'muted' }, 'Actions are off (start spoold with --status-actions).'));
    const e = c.entry || {};
    return section((c.queue === 'delivered' ? 'Delivered' : 'In ' + c.queue + '/') + ': ' + c.id,
      el('dl', { dataset: { copy: c.queue } }, ...[['queue', c.queue], ['destination', c.destination], ['request', c.method + ' ' + (c.url || '')], ['attempts', e.attempts ?? ''], [c.queue === 'deferred' ? 'next attempt' : 'in this queue since', e.time ? stamp(e.time) : ''], ['arrived', e.arrival ? stamp(e.arrival) : ''], ['last error', c.lastError || ''], ['bounced because', c.reason || '']].filter(([, v]) => v !== '').flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))])),
      acts, el('h3', {}, 'Headers'), Object.keys(c.headers).length ? table(['name', 'value'], Object.entries(c.headers).map(([k, v]) => tr([k, String(v)])), { class: 'headers' }) : el('p', { class: 'muted' }, '(none)'),
      el('h3', {}, 'Body' + (c.bodyBytes > 1024 ? ' (first KiB of ' + c.bodyBytes + ' bytes)' : '')), el('pre', {}, c.body ?? '(none)'));
  };
  return [
    ...m.copies.map(copy),
    section('Attempts' + (m.copies.length ? '' : ' (the message has left the spool)'), m.attempts.length ? attemptsTable(m.attempts) : el('p', { class: 'muted' }, 'None recorded in the spool.')),
    ...m.deliveries.map((d) => el('div', {}, copy(d.view), section('Attempts of this delivery', attemptsTable(d.attempts)))),
  ];
}

// Renders overlap: the 2-second refresh of one view can still be waiting for its answer when
// the address changes. Only the newest render may replace the view, or a slow answer for the
// old address would paint over the new one and stay there.
let renders = 0;
async function render() {
  const mine = ++renders;
  const [route, query] = (location.hash.slice(1) || '/').split('?');
  for (const a of document.querySelectorAll('nav a')) { const h = a.getAttribute('href').slice(1); if ((h === '/' ? route === '/' : route.startsWith(h.split('/').slice(0, 2).join('/'))) ) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current'); }
  try {
    let parts;
    if (route.startsWith('/queue/')) parts = await queueView(decodeURIComponent(route.slice(7)), query || '');
    else if (route.startsWith('/message/')) parts = await messageView(decodeURIComponent(route.slice(9)));
    else {
      const s = await api('/api/status');
      if (mine !== renders) return;
      about(s);
      parts = route === '/destinations' ? [destinationsSection(s, 0)] : route === '/settings' ? settings(s) : overview(s);
    }
    if (mine !== renders) return;
    const focused = document.activeElement && document.activeElement.id;
    view.replaceChildren(...parts);
    if (focused) { const f = document.getElementById(focused); if (f) { f.focus(); if (f.setSelectionRange && f.value) f.setSelectionRange(f.value.length, f.value.length); } }
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    if (mine === renders) view.replaceChildren(section('Not available', el('p', { id: 'error' }, e.message)));
  }
}
function about(s) { document.getElementById('about').textContent = 'v' + s.version + ' · up ' + ago(s.startedAt, s.now).replace(' ago', '') + ' · ' + bytes(s.memory.rss); }
function refresh() { const r = (location.hash.slice(1) || '/').split('?')[0]; if (r === '/' || r === '/destinations' || r === '/settings') render(); else api('/api/status').then(about, () => {}); }
document.getElementById('search').onsubmit = (e) => { e.preventDefault(); location.hash = '#/message/' + encodeURIComponent(document.getElementById('search-id').value.trim()); };
// Next and previous re-render in place; any new address starts at its first page.
window.addEventListener('hashchange', () => { pages = []; render(); });
render(); setInterval(refresh, 2000);
</script></body></html>
`;
}
