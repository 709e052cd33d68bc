/**
 * Scenario 5: operators racing the daemon. requeue / flush / delete / hold /
 * release run in a tight loop (the same functions spoolctl calls, plus real
 * spoolctl processes) while the daemon delivers. No message may be in two
 * queues at once, none may be lost, none sent while held.
 */
import fs from 'node:fs';
import { flush, hold, locate, release, remove, requeue } from '../../src/operate/control.js';
import { Spool } from '../../src/spool/layout.js';
import { ensureSpoolDirs, spoolctl, startDaemon, tempSpool, waitFor } from '../e2e/helpers.js';
import { countingSink, quickDrop, snapshot, sleep, type Outcome } from './common.js';

export async function operatorRaces(opts: { messages: number; seconds: number }): Promise<Outcome> {
  const sink = await countingSink(0.5, { delayMs: 5 });
  // Ids with a request that arrived while the operator loop held them.
  const sentWhileHeld: string[] = [];
  const origin = sink.url;
  const spoolDir = tempSpool();
  ensureSpoolDirs(spoolDir);
  const spool = new Spool(spoolDir);
  // About operators racing the daemon, not dead destinations: half the answers are 503.
  const daemon = await startDaemon(spoolDir, ['--min-backoff', '50ms', '--max-backoff', '300ms', '--max-attempts', '0', '--dead-after', '0', '--scan-interval', '200ms', '--log-level', process.env.TORTURE_DEBUG ? 'info' : 'warn'], { ready: false });
  // A first batch, then the rest produced during the race, so that there is
  // always traffic for the operators to race.
  const ids: string[] = [];
  const produce = () => {
    const id = `o-${ids.length}`;
    quickDrop(spoolDir, id, { url: `${origin}/hook` });
    ids.push(id);
  };
  while (ids.length < opts.messages / 4) produce();
  const producer = setInterval(() => {
    for (let i = 0; i < Math.ceil((opts.messages * 0.75) / (opts.seconds * 20)) && ids.length < opts.messages; i++) produce();
  }, 50);

  const deleted = new Set<string>();
  const counts = { hold: 0, release: 0, requeue: 0, flush: 0, delete: 0, spoolctl: 0 };
  let doubles = 0;
  const seenRequests = new Map<string, number>();
  const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
  const deadline = Date.now() + opts.seconds * 1000;
  let round = 0;
  while (Date.now() < deadline) {
    round++;
    const id = pick();
    const op = round % 7;
    if (op === 0 || op === 1) {
      // Hold, then watch: nothing may be sent for it until released.
      const r = hold(spool, [id]);
      if (r.done.includes(id)) {
        counts.hold++;
        seenRequests.set(id, sink.requests.get(id) ?? 0);
        await sleep(Math.random() * 20);
        if ((sink.requests.get(id) ?? 0) !== seenRequests.get(id)) sentWhileHeld.push(id);
        if (release(spool, [id]).done.includes(id)) counts.release++;
      }
    } else if (op === 2) {
      if (requeue(spool, [id], ['deferred', 'bounced', 'hold']).done.length) counts.requeue++;
    } else if (op === 3) {
      if (flush(spool, [id]).done.length) counts.flush++;
    } else if (op === 4 && round % 50 === 4) {
      const found = locate(spool, id, ['incoming', 'deferred']);
      if (found.length && remove(spool, found).done.includes(id)) {
        counts.delete++;
        deleted.add(id);
      }
    } else if (op === 5 && round % 100 === 5) {
      const cmd = [['flush'], ['hold', id], ['release', id], ['requeue', id]][Math.floor(Math.random() * 4)]!;
      spoolctl([...cmd, '--spool', spoolDir]);
      counts.spoolctl++;
    } else {
      // A snapshot of every queue: an id in two places is re-checked at once
      // (a move during the walk can show it twice), then counted.
      const snap = snapshot(spoolDir);
      for (const [sid, queues] of snap) {
        if (queues.length < 2) continue;
        const now = locate(spool, sid);
        if (now.length > 1 && now.every((m) => fs.existsSync(m.path))) doubles++;
      }
      await sleep(1);
    }
  }
  clearInterval(producer);
  while (ids.length < opts.messages) produce();
  // Whatever the loop left held goes; then every message not deleted must arrive.
  release(spool, 'all');
  spoolctl(['release', '--all', '--spool', spoolDir]);
  const expected = ids.filter((id) => !deleted.has(id));
  const drained = await waitFor('all delivered', () => expected.every((id) => sink.delivered.has(id)), 60_000, 100).then(() => true, () => false);
  await sleep(300);
  const left = snapshot(spoolDir);
  const lost = expected.filter((id) => !sink.delivered.has(id) && !left.has(id)).length;
  if (process.env.TORTURE_DEBUG && !drained) for (const id of expected.filter((x) => !sink.delivered.has(x))) console.log("story of", id, left.get(id), JSON.stringify(daemon.lines.filter((l) => l.id === id || (l.event !== 'delivered' && l.event !== 'deferred' && l.event !== 'received' && l.event !== 'bounced')).slice(-40)));
  if (process.env.TORTURE_DEBUG) console.log("left:", JSON.stringify([...left]), "undelivered:", expected.filter((id) => !sink.delivered.has(id)), "exit:", daemon.child.exitCode, daemon.stderr.slice(-2000), JSON.stringify(daemon.lines.slice(-5)));
  const up = daemon.child.exitCode === null;
  await daemon.stop();
  await sink.close();
  const pass = drained && lost === 0 && doubles === 0 && sentWhileHeld.length === 0 && up;
  return {
    scenario: '5. operators racing the daemon',
    pass,
    figures:
      `${opts.messages} messages (50% 503), ${opts.seconds} s of ${round.toLocaleString('en')} operator actions: ${counts.hold} holds, ${counts.release} releases, ${counts.requeue} requeues, ${counts.flush} flushes, ${counts.delete} deletes, ${counts.spoolctl} spoolctl runs; ` +
      `in two queues at once: ${doubles}; sent while held: ${sentWhileHeld.length}; lost ${lost}; delivered ${expected.filter((id) => sink.delivered.has(id)).length}/${expected.length}; daemon up ${up}`,
  };
}
