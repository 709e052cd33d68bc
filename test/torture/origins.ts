/**
 * Scenario 8: producers naming thousands of origins. Two waves of 5,000
 * distinct origins on 127.0.0.1, each a closed port but for a few: their
 * messages fail, their destinations die, their messages bounce once out of
 * attempts. Once they are gone, nothing the daemon keeps may have grown with
 * them: its destination table, destinations.json, its metrics' label sets,
 * its memory, its file descriptors.
 *
 * Its memory is its live heap, read through its inspector after a full
 * collection, not its RSS: how soon V8 hands a quiet heap's pages back
 * varies from run to run. After a wave the RSS was about 200 MB with 40-57
 * MB of it in use; in one run it fell to 93 MB within 15 s, in another it
 * was still 218 MB 75 s later (2026-12-08, the daemon's code the same).
 * The collection the inspector asks for is V8's most thorough (it gives
 * pages back), so the RSS read after it is checked too, with room for the
 * allocator: memory outside the heap (Buffers, sockets) would show there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket, type MessageEvent } from 'undici';
import { ensureSpoolDirs, startDaemon, tempSpool, waitFor } from '../e2e/helpers.js';
import { countingSink, mb, quickDrop, rssOf, snapshot, sleep, type Outcome } from './common.js';

function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The daemon's live heap in bytes: a full collection through its inspector, then the heap's used size. */
async function liveHeap(inspector: string): Promise<number> {
  const ws = new WebSocket(inspector);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot reach the daemon's inspector at ${inspector}`));
  });
  let last = 0;
  const call = (method: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++last;
      const onMessage = (e: MessageEvent) => {
        const m = JSON.parse(String(e.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
        if (m.id !== id) return;
        ws.removeEventListener('message', onMessage);
        if (m.error) reject(new Error(`${method}: ${m.error.message}`));
        else resolve(m.result ?? {});
      };
      ws.addEventListener('message', onMessage);
      ws.send(JSON.stringify({ id, method }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    return Number((await call('Runtime.getHeapUsage')).usedSize);
  } finally {
    ws.close();
  }
}

export async function manyOrigins(opts: { origins: number; perOrigin: number }): Promise<Outcome> {
  const sink = await countingSink(0);
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const daemon = await startDaemon(spool, [
    '--max-attempts', '2', '--min-backoff', '200ms', '--max-backoff', '200ms', '--dead-after', '2', '--per-destination', '2', '--dead-cool-off', '1s', '--dead-max-cool-off', '2s', '--metrics', '127.0.0.1:0',
  ], { ready: false, env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0` } });
  // Its inspector, on 127.0.0.1, for the live heap (see liveHeap).
  const inspector = await waitFor('the inspector', () => /Debugger listening on (ws:\/\/\S+)/.exec(daemon.stderr)?.[1], 10_000);
  await waitFor('metrics', () => daemon.lines.find((l) => l.event === 'metrics-listening'), 10_000).catch(() => undefined);
  const address = String(daemon.lines.find((l) => l.event === 'metrics-listening')?.address ?? '');
  const sinkPort = Number(new URL(sink.url).port);
  const figures: { rss: number; heap: number; fds: number; state: number; series: number; table: number }[] = [];
  const measure = async () => {
    const text = address ? await (await fetch(`http://${address}/metrics`)).text() : '';
    const state = (() => {
      try {
        return fs.statSync(path.join(spool, 'destinations.json')).size;
      } catch {
        return 0;
      }
    })();
    const table = JSON.parse(fs.readFileSync(path.join(spool, 'destinations.json'), 'utf8')).total as number;
    const heap = await liveHeap(inspector);
    figures.push({ rss: rssOf(daemon.child.pid!), heap, fds: fdCount(daemon.child.pid!), state, series: text.split('\n').filter((l) => l.startsWith('spoold_') && l.includes('destination=')).length, table });
  };
  const ids: string[] = [];
  let delivered = 0;
  for (let wave = 0; wave < 2; wave++) {
    for (let o = 0; o < opts.origins; o++) {
      // Every 500th origin is the live sink; the rest are ports nothing listens on.
      const port = o % 500 === 0 ? sinkPort : 20_000 + wave * opts.origins + o;
      const origin = o % 500 === 0 ? `http://127.0.0.1:${port}` : `http://127.0.0.${2 + wave}:${port}`;
      for (let k = 0; k < opts.perOrigin; k++) {
        const id = `w${wave}-o${o}-${k}`;
        quickDrop(spool, id, { url: `${origin}/hook` });
        ids.push(id);
        if (o % 500 === 0) delivered++;
      }
    }
    // Wait for every message to be delivered or bounced, then for the daemon to forget them.
    await waitFor('wave settled', () => [...snapshot(spool)].every(([, q]) => q.join() === 'bounced'), 300_000, 500);
    await sleep(3000);
    await measure();
    await sleep(75_000);
    await measure();
  }
  const up = daemon.child.exitCode === null;
  await daemon.stop();
  await sink.close();
  const left = snapshot(spool);
  const lost = ids.filter((id) => !sink.delivered.has(id) && !left.has(id)).length;
  const [peak, first, , second] = figures as [(typeof figures)[0], (typeof figures)[0], (typeof figures)[0], (typeof figures)[0]];
  const flat = second.table <= 10 && second.state <= first.state * 1.1 + 1024 && second.fds <= first.fds + 5 && second.heap <= first.heap * 1.15 && second.rss <= first.rss * 1.3 && second.series <= first.series + 5;
  return {
    scenario: '8. many origins',
    pass: up && lost === 0 && sink.delivered.size === delivered && flat,
    figures:
      `2 waves of ${opts.origins.toLocaleString('en')} origins (${opts.perOrigin} messages each, all but 1 in 500 closed ports): delivered ${sink.delivered.size}/${delivered}, the rest bounced, lost ${lost}; ` +
      `destinations kept when the first wave had just bounced: ${peak.table}; after each wave was gone: ${first.table} then ${second.table}, destinations.json ${first.state} then ${second.state} bytes, ` +
      `metrics series with a destination ${first.series} then ${second.series}, open fds ${first.fds} then ${second.fds}, live heap after a full collection ${mb(first.heap)} then ${mb(second.heap)}, RSS after it ${mb(first.rss)} then ${mb(second.rss)}; daemon up ${up}`,
  };
}
