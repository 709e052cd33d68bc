/**
 * Scenario 7: two daemons sharing one spool (--shared), one or the other
 * killed with SIGKILL at random moments and started again, while producers
 * keep writing and the endpoint fails a share of requests.
 *
 * Each daemon process is told apart at the sink by a header from its own
 * config file (x-daemon: its run's name), so a message sent twice can be
 * checked against the rule of the mode: the second send may come only after
 * the daemon that made the first was killed (its claims recovered by the
 * survivor), never while it lives.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ensureSpoolDirs, startDaemon, tempSpool, waitFor, type Daemon } from '../e2e/helpers.js';
import { quickDrop, sleep, snapshot, type Outcome } from './common.js';
import { fileSystemName } from '../fs-type.js';

interface Send {
  at: number;
  by: string;
}

/** `base`: where the spool is made, so that each file system the README names for --shared is tried. */
export async function sharedUnderKills(opts: { messages: number; kills: number; failShare: number; base?: string }): Promise<Outcome> {
  const base = opts.base ?? os.tmpdir();
  const fileSystem = fileSystemName(base);
  // Per id, every 2xx answered: when, and to which daemon run.
  const delivered = new Map<string, Send[]>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      if (Math.random() < opts.failShare) return res.writeHead(503).end();
      const id = String(req.headers['idempotency-key']);
      delivered.set(id, [...(delivered.get(id) ?? []), { at: Date.now(), by: String(req.headers['x-daemon']) }]);
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const spool = tempSpool(base);
  ensureSpoolDirs(spool);
  const started = Date.now();

  // When each daemon run was sent its SIGKILL: it sends nothing after that.
  const killedAt = new Map<string, number>();
  let runs = 0;
  // A lease left at the end names its daemon by pid (<host>.<pid>.<random>): which run, killed or not.
  const runByPid = new Map<number, string>();
  const start = async (): Promise<{ name: string; daemon: Daemon }> => {
    const name = `run-${++runs}`;
    const config = path.join(path.dirname(spool), `${name}.json`);
    fs.writeFileSync(config, JSON.stringify({ destinations: [{ match: origin, headers: { 'x-daemon': name } }] }));
    const args = ['--shared', '--config', config, '--lease-ttl', '3s', '--concurrency', '32', '--per-destination', '32', '--min-backoff', '100ms', '--max-backoff', '1s', '--max-attempts', '0', '--dead-after', '0', '--scan-interval', '500ms', '--log-level', process.env.TORTURE_DEBUG ? 'info' : 'warn'];
    const daemon = await startDaemon(spool, args, { ready: false });
    runByPid.set(daemon.child.pid!, name);
    return { name, daemon };
  };

  let produced = 0;
  const perTick = Math.ceil(opts.messages / ((opts.kills * 1000) / 50));
  const producer = setInterval(() => {
    for (let i = 0; i < perTick && produced < opts.messages; i++, produced++) quickDrop(spool, `s-${produced}`, { url: `${origin}/hook`, body: { n: produced } });
    if (produced >= opts.messages) clearInterval(producer);
  }, 50);

  const pair = [await start(), await start()];
  for (let k = 0; k < opts.kills; k++) {
    await sleep(400 + Math.random() * 1200);
    const i = Math.random() < 0.5 ? 0 : 1;
    killedAt.set(pair[i]!.name, Date.now());
    await pair[i]!.daemon.stop('SIGKILL');
    pair[i] = await start();
  }
  await waitFor('producers done', () => produced >= opts.messages, 120_000, 50);
  const drained = await waitFor('every message delivered', () => delivered.size >= opts.messages, 240_000, 100).then(
    () => true,
    () => false,
  );
  await waitFor('queues empty', () => snapshot(spool).size === 0, 10_000, 100).catch(() => undefined);
  // The killed runs' leases are buried by a survivor at its next heartbeat (a third of --lease-ttl).
  // Waiting for "at most two leases" was met while the last run started had
  // not yet written its own (a killed run's lease still there), and it was
  // then stopped with SIGTERM before its signal handlers existed: wait until
  // the leases are exactly the last two runs', each up.
  const leasesIn = () => fs.readdirSync(path.join(spool, 'leases')).filter((n) => !n.startsWith('.'));
  const pidOf = (owner: string) => Number(owner.split('.').at(-2));
  const livePids = new Set(pair.map((p) => p.daemon.child.pid));
  await waitFor('the last two runs up, every other lease buried', () => {
    const owners = leasesIn();
    return owners.length === 2 && owners.every((o) => livePids.has(pidOf(o)));
  }, 15_000, 100).catch(() => undefined);
  const exits = await Promise.all(pair.map((p) => p.daemon.stop('SIGTERM')));
  await new Promise((r) => server.close(r));

  const left = snapshot(spool);
  let lost = 0;
  for (let i = 0; i < opts.messages; i++) if (!delivered.has(`s-${i}`) && !left.has(`s-${i}`)) lost++;
  let duplicates = 0;
  const whileAlive: string[] = [];
  for (const [id, sends] of delivered) {
    for (let j = 1; j < sends.length; j++) {
      duplicates++;
      // The one before must have been sent by a run killed before this send.
      const killed = killedAt.get(sends[j - 1]!.by);
      if (killed === undefined || killed > sends[j]!.at) whileAlive.push(id);
    }
  }
  const leases = leasesIn();
  const describeLease = (owner: string): string => {
    const run = runByPid.get(pidOf(owner));
    let content = '';
    try {
      content = fs.readFileSync(path.join(spool, 'leases', owner), 'utf8').trim();
    } catch {
      /* gone meanwhile */
    }
    return `${owner}: ${run ?? 'no run of this scenario'}${run && killedAt.has(run) ? ', killed' : ''}${run && pair.some((p) => p.name === run) ? ', one of the last two' : ''}; ${content}`;
  };
  // The last two remove their own leases as they stop.
  const pass = drained && lost === 0 && left.size === 0 && whileAlive.length === 0 && leases.length === 0 && exits.every((e) => e.code === 0);
  return {
    scenario: `7. shared daemons under kills, ${fileSystem}`,
    pass,
    figures:
      `${opts.messages.toLocaleString('en')} messages, 2 daemons --shared on one spool, ${opts.kills} × SIGKILL of one or the other (${runs} daemon runs), ${Math.round(opts.failShare * 100)}% 503: ` +
      `delivered ${delivered.size.toLocaleString('en')}, lost ${lost}, left in spool ${left.size}, ` +
      `sent twice ${duplicates} (all after the first sender was killed: ${whileAlive.length === 0 ? 'yes' : `no, ${whileAlive.slice(0, 5).join(', ')}`}), ` +
      `requests ${requests.toLocaleString('en')}, leases left ${leases.length}${leases.length > 0 ? ` (${leases.map(describeLease).join(', ')})` : ''}, ` +
      `exits of the last two ${exits.map((e) => e.code ?? e.signal).join(' and ')}, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  };
}
