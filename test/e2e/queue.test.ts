/**
 * The queue manager against real receivers: a weak one is not flooded, a
 * busy destination leaves room for a fresh one, and memory stays bounded
 * whatever waits in incoming/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cleanup, drop, idsIn, sleep, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

afterEach(cleanup);

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

describe('queue manager', () => {
  it('keeps a weak receiver (503 above 4 in flight) mostly within its capacity', async () => {
    let inFlight = 0;
    let refused = 0;
    let answered = 0;
    const sink = await startSink((_req, res) => {
      answered++;
      if (inFlight >= 4) {
        refused++;
        return res.writeHead(503).end();
      }
      inFlight++;
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    });
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--min-backoff', '100ms', '--max-backoff', '500ms']);
    const ids = Array.from({ length: 300 }, (_, i) => `w-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook` });
    await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1), 30_000);
    assert.ok(refused / answered <= 0.2, `${refused} of ${answered} requests refused`);
    assert.deepEqual(daemon.events('destination-dead'), [], 'a receiver that answers is not dead');
    assert.equal((await daemon.stop()).code, 0);
  });

  it('a destination with a backlog in flight leaves a fresh message to another its latency', async () => {
    const held: http.ServerResponse[] = [];
    const slow = await startSink((_req, res) => void held.push(res)); // answers nothing until the end
    const fast = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--timeout', '30s']);
    for (let i = 0; i < 2000; i++) drop(spool, `slow-${i}`, { url: `${slow.url}/hook` });
    await waitFor('the slow destination has requests in flight', () => held.length > 0);
    // Measured once the burst is taken in (claimed and read, 2,000 files): before, a fresh file waits its turn behind the burst's own file events.
    await waitFor('the burst claimed', () => idsIn(spool, 'incoming').length === 0, 10_000);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      drop(spool, `fresh-${i}`, { url: `${fast.url}/hook` });
      await waitFor(`fresh-${i} delivered`, () => fast.byId(`fresh-${i}`).length === 1, 5000, 2);
      latencies.push(Date.now() - t0);
      await sleep(20);
    }
    latencies.sort((a, b) => a - b);
    assert.ok(latencies.at(-1)! < 500, `fresh messages took ${latencies.join(', ')} ms`);
    assert.ok(held.length <= 32, `the slow destination holds at most its limit of slots (${held.length})`);
    for (const res of held) res.end('ok');
    await daemon.stop();
  });

  it('holds a bounded active set and flat memory with 100,000 messages waiting', async () => {
    const held: http.ServerResponse[] = [];
    const sink = await startSink((_req, res) => void held.push(res)); // never answers: the backlog stays
    const spool = tempSpool();
    fs.mkdirSync(path.join(spool, 'incoming'), { recursive: true });
    fs.mkdirSync(path.join(spool, 'tmp'), { recursive: true });
    const body = JSON.stringify({ url: `${sink.url}/hook`, body: 'x'.repeat(500) });
    for (let i = 0; i < 100_000; i++) fs.writeFileSync(path.join(spool, 'incoming', `b-${i}.json`), body);
    const daemon = await startDaemon(spool, ['--timeout', '60s', '--active-limit', '5000']);
    await waitFor('requests in flight', () => held.length > 0, 10_000);
    await sleep(1500);
    const early = rssOf(daemon.child.pid!);
    await sleep(3000);
    const late = rssOf(daemon.child.pid!);
    const claimed = idsIn(spool, 'active').length;
    assert.ok(claimed <= 5000, `${claimed} claimed, at most --active-limit`);
    assert.ok(late - early < 20 * 1024 * 1024, `memory grew ${Math.round((late - early) / 1024 / 1024)} MB in 3 s`);
    assert.ok(late < 200 * 1024 * 1024, `RSS ${Math.round(late / 1024 / 1024)} MB`);
    for (const res of held) res.destroy();
    await daemon.stop('SIGKILL');
  });
});
