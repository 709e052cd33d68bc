/**
 * Scenario 10: scheduled, paused and replayed messages while spoold is
 * killed with SIGKILL again and again. A scheduled message never goes before
 * its time; a paused destination gets nothing until it is resumed; a replay
 * of kept deliveries sends each again; nothing is lost.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ensureSpoolDirs, lockState, spoolctl, startDaemon, tempSpool, waitFor, type Daemon } from '../e2e/helpers.js';
import { quickDrop, snapshot, sleep, type Outcome } from './common.js';

/** Requests per id with the time of the first, answering 503 to `failShare` of them. */
async function timedSink(failShare: number) {
  const first = new Map<string, number>();
  const requests = new Map<string, number>();
  const delivered = new Map<string, number>();
  const server = http.createServer((req, res) =>
    req.resume().on('end', () => {
      const id = String(req.headers['idempotency-key']);
      if (!first.has(id)) first.set(id, Date.now());
      requests.set(id, (requests.get(id) ?? 0) + 1);
      if (Math.random() < failShare) return res.writeHead(503).end();
      delivered.set(id, (delivered.get(id) ?? 0) + 1);
      res.writeHead(200).end();
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, first, requests, delivered, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export async function schedulesUnderKills(opts: { scheduled: number; paused: number; kept: number; kills: number; failShare: number }): Promise<Outcome> {
  const scheduledSink = await timedSink(opts.failShare);
  const pausedSink = await timedSink(opts.failShare);
  const keptSink = await timedSink(0);
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const args = ['--keep-delivered', '1h', '--min-backoff', '100ms', '--max-backoff', '1s', '--scan-interval', '500ms', '--log-level', 'warn'];
  const started = Date.now();
  const ctl = (argv: string[]) => spoolctl([...argv, '--spool', spool, '--json']);

  // The paused destination is paused before any daemon runs: it must see nothing until the resume.
  const paused = ctl(['pause', pausedSink.url]);
  if (paused.status !== 0) throw new Error(`spoolctl pause: ${paused.stderr}`);
  const due = new Map<string, number>();
  for (let i = 0; i < opts.scheduled; i++) {
    const at = Date.now() + 1000 + Math.round(Math.random() * 9000);
    due.set(`s-${i}`, at);
    quickDrop(spool, `s-${i}`, { url: `${scheduledSink.url}/s`, deliverAt: new Date(at).toISOString(), body: { i } });
  }
  for (let i = 0; i < opts.paused; i++) quickDrop(spool, `p-${i}`, { url: `${pausedSink.url}/p`, body: { i } });
  for (let i = 0; i < opts.kept; i++) quickDrop(spool, `k-${i}`, { url: `${keptSink.url}/k`, body: { i } });

  let resumedAt = 0;
  let replayed: string[] = [];
  let replayFailed = '';
  let replayedAfter = -1;
  let daemon: Daemon | null = null;
  for (let k = 0; k < opts.kills; k++) {
    daemon = await startDaemon(spool, args, { ready: false });
    await sleep(300 + Math.random() * 1200);
    await daemon.stop('SIGKILL');
    // From a third of the way in, once every kept delivery is in and none is queued any more, replay them; half way, resume.
    // Both between a kill and the next start. (A kill between a 2xx and its keep leaves the message in active/, to be
    // sent again: a replay refuses it then, rightly, as still queued.)
    if (k >= Math.floor(opts.kills / 3) && replayedAfter < 0 && keptSink.delivered.size >= opts.kept && ![...snapshot(spool).keys()].some((id) => id.startsWith('k-'))) {
      replayedAfter = k + 1;
      const r = ctl(['replay', '--destination', new URL(keptSink.url).host, '--since', '1h']);
      if (r.status === 0) {
        const result = JSON.parse(r.stdout) as { done: string[]; refused: unknown[]; missing: unknown[] };
        replayed = result.done;
        if (result.refused.length + result.missing.length > 0) replayFailed = `${result.refused.length} refused, ${result.missing.length} missing`;
      } else replayFailed = r.stderr.trim();
    }
    if (k === Math.floor(opts.kills / 2)) {
      resumedAt = Date.now();
      const r = ctl(['resume', pausedSink.url]);
      if (r.status !== 0) throw new Error(`spoolctl resume: ${r.stderr}`);
    }
  }
  daemon = await startDaemon(spool, args, { ready: false });
  const ids = [...due.keys(), ...Array.from({ length: opts.paused }, (_, i) => `p-${i}`), ...Array.from({ length: opts.kept }, (_, i) => `k-${i}`)];
  const isDelivered = (id: string) => (id.startsWith('s-') ? scheduledSink : id.startsWith('p-') ? pausedSink : keptSink).delivered.has(id);
  const drained = await waitFor(
    'every message delivered, every replay sent again',
    () => ids.every(isDelivered) && replayed.every((id) => (keptSink.delivered.get(id) ?? 0) >= 2) && [...snapshot(spool).keys()].length === 0,
    60_000,
    100,
  ).then(
    () => true,
    () => false,
  );
  // Its signal handlers are in place once it holds the lock: a SIGTERM before that meets Node's default action.
  const final = daemon;
  await waitFor('lock taken', () => lockState(spool)?.pid === final.child.pid && !lockState(spool)?.released, 10_000, 20).catch(() => undefined);
  const exit = await daemon.stop('SIGTERM');
  await Promise.all([scheduledSink.close(), pausedSink.close(), keptSink.close()]);

  const left = snapshot(spool);
  const reasons = fs.readdirSync(path.join(spool, 'bounced')).filter((n) => n.endsWith('.reason')).map((n) => fs.readFileSync(path.join(spool, 'bounced', n), 'utf8').trim().slice(0, 300));
  const lost = ids.filter((id) => !isDelivered(id) && !left.has(id)).length;
  // Wall clock on one machine; a millisecond of rounding between the ISO time and the daemon's timer.
  const early = [...due].filter(([id, at]) => (scheduledSink.first.get(id) ?? Infinity) < at - 1).length;
  const late = [...due].map(([id, at]) => (scheduledSink.first.get(id) ?? at) - at).sort((a, b) => a - b);
  const pausedEarly = [...pausedSink.first.values()].filter((t) => t < resumedAt).length;
  const replaysMissing = replayed.filter((id) => (keptSink.delivered.get(id) ?? 0) < 2).length;
  const pass = drained && lost === 0 && left.size === 0 && early === 0 && pausedEarly === 0 && replayed.length === opts.kept && replaysMissing === 0 && replayFailed === '' && exit.code === 0;
  const q = (p: number) => late[Math.min(late.length - 1, Math.floor(p * late.length))] ?? 0;
  return {
    scenario: '10. schedules, pauses, replays under kills',
    pass,
    figures:
      `${opts.kills} × SIGKILL, ${Math.round(opts.failShare * 100)}% 503: ` +
      `${opts.scheduled.toLocaleString('en')} scheduled 1-10 s ahead: sent early ${early}, late by p50 ${q(0.5)} / p99 ${q(0.99)} / max ${late.at(-1) ?? 0} ms (restarts included) — ` +
      `${opts.paused.toLocaleString('en')} to a destination paused before the first start and resumed after kill ${Math.floor(opts.kills / 2) + 1}: requests before the resume ${pausedEarly} — ` +
      `${opts.kept.toLocaleString('en')} kept deliveries, ${replayed.length.toLocaleString('en')} replayed (${replayFailed || 'no error'}) after kill ${replayedAfter}: not sent again ${replaysMissing} — ` +
      `lost ${lost}, left in the queues ${left.size}${left.size > 0 ? ` (${[...left].slice(0, 5).map(([id, qs]) => `${id} in ${qs.join('+')}`).join(', ')})` : ''}${reasons.length > 0 ? `, bounced: ${reasons.join('; ')}` : ''}, exit ${exit.code}, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  };
}
