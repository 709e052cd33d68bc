/**
 * Scenario 1: spoold killed with SIGKILL at random moments, again and again,
 * while producers keep writing and the endpoint fails a share of requests.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ensureSpoolDirs, lockState, startDaemon, tempSpool, waitFor, type Daemon } from '../e2e/helpers.js';
import { countingSink, quickDrop, snapshot, sleep, type Outcome } from './common.js';

export async function crashLoop(opts: { messages: number; kills: number; failShare: number }): Promise<Outcome> {
  const sink = await countingSink(opts.failShare);
  // One message in 20 is refused (422) and bounces; each bounce's notice goes to a hook through the spool.
  const refuser = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(422).end('refused')));
  await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', r));
  const refusedUrl = `http://127.0.0.1:${(refuser.address() as AddressInfo).port}/hook`;
  const hook = await countingSink(0);
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const concurrency = 64;
  const args = ['--bounce-hook', `${hook.url}/bounces`, '--concurrency', String(concurrency), '--per-destination', String(concurrency), '--min-backoff', '100ms', '--max-backoff', '1s', '--max-attempts', '0', '--scan-interval', '500ms', '--log-level', 'warn'];
  const started = Date.now();

  // Producers: the messages spread over the kill loop (about 40 s).
  let produced = 0;
  const perTick = Math.ceil(opts.messages / ((opts.kills * 900) / 50));
  const producer = setInterval(() => {
    for (let i = 0; i < perTick && produced < opts.messages; i++, produced++) {
      quickDrop(spool, `c-${produced}`, { url: produced % 20 === 7 ? refusedUrl : `${sink.url}/hook`, body: { n: produced } });
    }
    if (produced >= opts.messages) clearInterval(producer);
  }, 50);

  let daemon: Daemon | null = null;
  // Answered 2xx before a kill and still in the spool after it: each of these
  // is sent again, so their count should account for the duplicates; how long
  // before the kill they were answered says whether settlement lags.
  const unsettledAges: number[] = [];
  for (let k = 0; k < opts.kills; k++) {
    const bornAt = performance.now();
    daemon = await startDaemon(spool, args, { ready: false });
    await sleep(300 + Math.random() * 1200);
    const killedAt = performance.now();
    await daemon.stop('SIGKILL');
    const after = snapshot(spool);
    for (const [id, at] of sink.answeredAt) if (at >= bornAt && at <= killedAt && after.has(id) && after.get(id)!.join() !== 'bounced') unsettledAges.push(killedAt - at);
  }
  await waitFor('producers done', () => produced >= opts.messages, 120_000, 50);
  const refused = Array.from({ length: opts.messages }, (_, i) => i).filter((i) => i % 20 === 7).map((i) => `c-${i}`);
  const producedAt = Date.now();
  daemon = await startDaemon(spool, args, { ready: false });
  let drained = true;
  try {
    await waitFor('every message delivered or bounced', () => sink.delivered.size >= opts.messages - refused.length && refused.every((id) => hook.delivered.has(`bounce-notice.${id}`)), 240_000, 100);
  } catch {
    drained = false;
  }
  const drainMs = Date.now() - producedAt;
  const settled = () => [...snapshot(spool)].filter(([, queues]) => queues.join() !== 'bounced');
  await waitFor('queues empty', () => settled().length === 0, 10_000, 100).catch(() => undefined);
  // Its signal handlers are in place once it holds the lock: a SIGTERM before
  // Node has even loaded spoold would meet Node's default action instead.
  const lockedBy = () => {
    const held = lockState(spool);
    return held && !held.released ? held.pid : 0;
  };
  await waitFor('lock taken', () => lockedBy() === daemon!.child.pid, 10_000, 20).catch(() => undefined);
  const exit = await daemon.stop('SIGTERM');
  await sink.close();
  await hook.close();
  await new Promise((r) => refuser.close(r));

  const all = snapshot(spool);
  const left = new Map([...all].filter(([, queues]) => queues.join() !== 'bounced'));
  let lost = 0;
  for (let i = 0; i < opts.messages; i++) if (!sink.delivered.has(`c-${i}`) && !all.has(`c-${i}`)) lost++;
  const bouncedOk = refused.filter((id) => all.get(id)?.join() === 'bounced').length;
  const noticesMissing = refused.filter((id) => !hook.delivered.has(`bounce-notice.${id}`)).length;
  const noticesTwice = [...hook.delivered.values()].filter((n) => n > 1).length;
  const outboxLeft = fs.readdirSync(path.join(spool, 'notices')).length;
  const tmpLeft = fs.readdirSync(path.join(spool, 'tmp')).length;
  const duplicates = [...sink.delivered.values()].reduce((a, n) => a + (n - 1), 0);
  unsettledAges.sort((a, b) => a - b);
  const age = (q: number) => (unsettledAges.length ? unsettledAges[Math.min(unsettledAges.length - 1, Math.floor(unsettledAges.length * q))]!.toFixed(1) : '-');
  const bound = opts.kills * concurrency;
  const pass = drained && lost === 0 && left.size === 0 && bouncedOk === refused.length && noticesMissing === 0 && outboxLeft === 0 && duplicates <= bound && exit.code === 0;
  return {
    scenario: '1. crash loop',
    pass,
    figures:
      `${opts.messages.toLocaleString('en')} messages, ${opts.kills} × SIGKILL, ${Math.round(opts.failShare * 100)}% 503: ` +
      `delivered ${sink.delivered.size.toLocaleString('en')}, lost ${lost}, left in spool ${left.size}, ` +
      `duplicates ${duplicates} (${((duplicates / opts.messages) * 100).toFixed(2)}%; ${(duplicates / opts.kills).toFixed(1)} per kill, ` +
      `at most ${concurrency} can be in flight at a kill; answered 2xx but still in the spool at a kill ${unsettledAges.length}, answered a median ${age(0.5)} ms (p90 ${age(0.9)}, max ${age(1)}) before it), ` +
      `refused and bounced ${bouncedOk}/${refused.length}, bounce notices missing ${noticesMissing} (sent twice ${noticesTwice}), outbox left ${outboxLeft}, files left in tmp/ ${tmpLeft} (removed once an hour old), ` +
      `requests ${sink.total.toLocaleString('en')}, drain after the last message ${(drainMs / 1000).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  };
}
