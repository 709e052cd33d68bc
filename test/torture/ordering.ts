/**
 * Scenario 6: orderingKey under SIGKILLs. Producers write messages of many
 * keys at a steady rate (each key's in sequence), the endpoint fails a share
 * of requests, and the daemon is killed at random moments. Every key's
 * messages must reach their first 2xx in the order they were written.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ensureSpoolDirs, startDaemon, tempSpool, waitFor, type Daemon } from '../e2e/helpers.js';
import { quickDrop, sleep, snapshot, type Outcome } from './common.js';

export async function orderingUnderKills(opts: { keys: number; perKey: number; kills: number; failShare: number }): Promise<Outcome> {
  // Per key, the sequence numbers in the order of their first 2xx.
  const firstOk = new Map<string, number[]>();
  const delivered = new Set<string>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const { key, n } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { key: string; n: number };
      const id = String(req.headers['idempotency-key']);
      if (Math.random() < opts.failShare) return res.writeHead(503).end();
      if (!delivered.has(id)) {
        delivered.add(id);
        firstOk.set(key, [...(firstOk.get(key) ?? []), n]);
      }
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const args = ['--min-backoff', '100ms', '--max-backoff', '500ms', '--max-attempts', '0', '--dead-after', '0', '--scan-interval', '300ms', '--log-level', 'warn'];
  const total = opts.keys * opts.perKey;
  const started = Date.now();

  // A steady trickle the daemon keeps up with: the order it sees is the order written.
  let produced = 0;
  const producer = setInterval(() => {
    for (let i = 0; i < 3 && produced < total; i++, produced++) {
      const key = `k${produced % opts.keys}`;
      const n = Math.floor(produced / opts.keys);
      quickDrop(spool, `${key}.${String(n).padStart(6, '0')}`, { url, orderingKey: key, body: { key, n } });
    }
    if (produced >= total) clearInterval(producer);
  }, 50);

  let daemon: Daemon | null = null;
  for (let k = 0; k < opts.kills; k++) {
    daemon = await startDaemon(spool, args, { ready: false });
    await sleep(800 + Math.random() * 2000);
    await daemon.stop('SIGKILL');
  }
  await waitFor('producers done', () => produced >= total, 300_000, 50);
  daemon = await startDaemon(spool, args, { ready: false });
  const drained = await waitFor('every message delivered', () => delivered.size >= total, 240_000, 100).then(() => true, () => false);
  await waitFor('queues empty', () => snapshot(spool).size === 0, 10_000, 100).catch(() => undefined);
  await daemon.stop('SIGTERM');
  await new Promise((r) => server.close(r));

  const left = snapshot(spool).size;
  const outOfOrder = [...firstOk].filter(([, ns]) => ns.some((n, i) => i > 0 && n < ns[i - 1]!)).map(([key]) => key);
  const lost = total - delivered.size - left;
  return {
    scenario: '6. ordering under kills',
    pass: drained && lost === 0 && left === 0 && outOfOrder.length === 0,
    figures:
      `${total.toLocaleString('en')} messages over ${opts.keys} ordering keys, ${opts.kills} × SIGKILL, ${Math.round(opts.failShare * 100)}% 503: ` +
      `delivered ${delivered.size.toLocaleString('en')}, lost ${lost}, left in spool ${left}, keys out of order ${outOfOrder.length}${outOfOrder.length ? ` (${outOfOrder.slice(0, 5).join(', ')})` : ''}, ` +
      `requests ${requests.toLocaleString('en')}, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  };
}
