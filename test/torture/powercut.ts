/**
 * Scenario 9: power cuts. The spool lives on powercut-fs (a FUSE file system
 * that keeps only what was fsynced: see powercut-fs.py). A producer enqueues
 * with the library and logs each id once enqueue() has resolved; the daemon
 * delivers to a sink that checks every body. At random moments the power is
 * cut: every process is killed with SIGKILL, whatever was not made durable
 * is dropped, and all of it starts again.
 *
 * With SPOOLD_LAZYFS naming a LazyFS binary (dsrhaslab/lazyfs, built by
 * hand: its build fetches toml11 and spdlog from GitHub, which CI cannot
 * reach), the spool lives on LazyFS instead. LazyFS keeps unsynced data in
 * its own page cache and passes every metadata operation through at once, so
 * a cut there drops data only: a file created or renamed but not fsynced
 * comes back empty. powercut-fs drops unsynced metadata too, so it is the
 * stricter of the two; LazyFS is the reference the issue names.
 *
 * It passes when every acknowledged id was received (before a cut or after)
 * or is still in the spool, no truncated or corrupt body was ever sent, no
 * message is in two queues, and every bounced message still has its reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, ensureSpoolDirs, ROOT, startDaemon, tempDir, waitFor, type Daemon } from '../e2e/helpers.js';
import { snapshot, sleep, type Outcome } from './common.js';

const FS_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'powercut-fs.py');
const PYTHON = '/usr/bin/python3';

/** What a message carries: its id and a checksum of its padding, so a torn or mixed body shows. */
function payload(id: string, n: number): { id: string; n: number; pad: string; sum: string } {
  const pad = `${id}:`.repeat(20 + (n % 40));
  return { id, n, pad, sum: createHash('sha256').update(pad).digest('hex').slice(0, 16) };
}

function intact(body: string, id: string): boolean {
  try {
    const b = JSON.parse(body) as { id: string; pad: string; sum: string };
    return b.id === id && createHash('sha256').update(b.pad).digest('hex').slice(0, 16) === b.sum;
  } catch {
    return false;
  }
}

const LAZYFS = process.env.SPOOLD_LAZYFS;

function prerequisites(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to mount a FUSE file system';
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (LAZYFS) return fs.existsSync(LAZYFS) ? null : `SPOOLD_LAZYFS=${LAZYFS} does not exist`;
  const has = () => spawnSync(PYTHON, ['-c', 'import pyfuse3, trio'], { stdio: 'ignore' }).status === 0;
  if (!has()) aptInstall(['python3-pyfuse3', 'fuse3']);
  return has() ? null : 'python3-pyfuse3 could not be installed';
}

function mounted(dir: string): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
}

const PRODUCER = `
  const [lib, spool, run, ackLog] = process.argv.slice(1);
  const { enqueue } = await import(lib);
  const fs = await import('node:fs');
  const { createHash } = await import('node:crypto');
  let n = 0;
  const one = async () => {
    for (;;) {
      const i = n++;
      const id = 'r' + run + '-' + i;
      const pad = (id + ':').repeat(20 + (i % 40));
      const sum = createHash('sha256').update(pad).digest('hex').slice(0, 16);
      // One message in ten is refused by the sink and bounces.
      const url = process.env.SINK + (i % 10 === 3 ? '/refuse' : '/hook');
      await enqueue({ url, body: { id, n: i, pad, sum } }, { spool, id });
      fs.appendFileSync(ackLog, id + '\\n');
      // About 200 a second in all: the daemon must keep up for the cuts to catch every step.
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await Promise.all([one(), one(), one(), one()]);
`;

export async function powerCuts(opts: { cuts: number }): Promise<Outcome> {
  const scenario = LAZYFS ? '9. power cuts (LazyFS)' : '9. power cuts';
  const missing = prerequisites();
  if (missing) return { scenario, pass: true, figures: `not run: ${missing}` };

  const base = tempDir('spoold-powercut-');
  const backing = path.join(base, 'backing');
  const durable = path.join(base, 'durable');
  const mnt = path.join(base, 'mnt');
  const ackLog = path.join(base, 'acked.log');
  for (const d of [backing, durable, mnt]) fs.mkdirSync(d);
  // The spool exists, durably, before the first start.
  ensureSpoolDirs(path.join(backing, 'spool'));
  ensureSpoolDirs(path.join(durable, 'spool'));
  fs.writeFileSync(ackLog, '');

  const received = new Map<string, number>();
  const delivered = new Set<string>();
  let corrupt = 0;
  let refusedBeforeLast = 0;
  let finalRun = false;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = String(req.headers['idempotency-key']);
      received.set(id, (received.get(id) ?? 0) + 1);
      if (!intact(Buffer.concat(chunks).toString('utf8'), id)) corrupt++;
      if (req.url === '/refuse') {
        refusedBeforeLast += finalRun ? 0 : 1;
        return res.writeHead(422).end('refused');
      }
      if (Math.random() < 0.2) return res.writeHead(503).end();
      delivered.add(id);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sinkUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let fuse: ChildProcess | null = null;
  const lazyConfig = path.join(base, 'lazyfs.toml');
  if (LAZYFS) {
    fs.writeFileSync(
      lazyConfig,
      `[faults]\nfifo_path="${path.join(base, 'faults.fifo')}"\n[cache]\napply_eviction=false\n[cache.simple]\ncustom_size="256mb"\nblocks_per_page=1\n[filesystem]\nlog_all_operations=false\nlogfile=""\n`,
    );
  }
  const mount = async () => {
    fuse = LAZYFS
      ? spawn(LAZYFS, [mnt, '--config-path', lazyConfig, '-o', 'allow_other', '-o', 'modules=subdir', '-o', `subdir=${backing}`, '-f'], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(PYTHON, [FS_SCRIPT, mnt], { env: { ...process.env, POWERCUT_BACKING: backing, POWERCUT_DURABLE: durable }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    fuse.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (process.env.TORTURE_DEBUG) process.stderr.write(c);
    });
    await waitFor('the file system mounted', () => mounted(mnt), 10_000, 20).catch(() => {
      throw new Error(`powercut-fs did not mount: ${err}`);
    });
  };
  const spool = path.join(mnt, 'spool');
  let daemon: Daemon | null = null;
  let producer: ChildProcess | null = null;
  let runs = 0;
  const startAll = async (produce: boolean) => {
    await mount();
    daemon = await startDaemon(spool, ['--min-backoff', '200ms', '--max-backoff', '1s', '--scan-interval', '500ms', '--dead-after', '0', '--log-level', process.env.TORTURE_DEBUG ? 'debug' : 'warn'], { ready: false });
    if (produce) {
      producer = spawn(process.execPath, ['--input-type=module', '-e', PRODUCER, path.join(ROOT, 'dist/index.js'), spool, String(++runs), ackLog], { env: { ...process.env, SINK: sinkUrl }, stdio: 'ignore' });
    }
  };
  const killed = (p: ChildProcess | null) => (p && p.exitCode === null && p.signalCode === null ? new Promise((r) => (p.once('exit', r), p.kill('SIGKILL'))) : Promise.resolve());
  /** The power goes: everything dies at once, and what was not durable is gone. */
  const cut = async () => {
    await Promise.all([killed(producer), daemon ? daemon.stop('SIGKILL') : Promise.resolve(), killed(fuse)]);
    spawnSync('umount', ['-l', mnt]);
    // LazyFS's backing folder is what survives: its unsynced data died with it.
    if (LAZYFS) return;
    fs.rmSync(backing, { recursive: true, force: true });
    // cp -a keeps hard links between the files it copies.
    const copy = spawnSync('cp', ['-a', durable, backing]);
    if (copy.status !== 0) throw new Error(`could not restore the image: ${copy.stderr}`);
  };

  const started = Date.now();
  let cuts = 0;
  try {
    await startAll(true);
    for (; cuts < opts.cuts; cuts++) {
      await sleep(1500 + Math.random() * 2500);
      await cut();
      await startAll(cuts < opts.cuts - 1);
    }
    finalRun = true;
    // The last run only delivers: everything acknowledged must arrive or stay.
    const acked = fs.readFileSync(ackLog, 'utf8').split('\n').filter(Boolean);
    const settled = () => {
      const left = snapshot(spool);
      return acked.every((id) => delivered.has(id) || left.get(id)?.join() === 'bounced');
    };
    const drained = await waitFor('acknowledged messages delivered or bounced', settled, 180_000, 500).then(
      () => true,
      () => false,
    );
    const left = snapshot(spool);
    const lost = acked.filter((id) => !received.has(id) && !left.has(id));
    const inTwo = [...left].filter(([, q]) => q.length > 1).length;
    // Only the receiver's 422 bounces a message here: one bounced unseen was
    // bounced by the daemon itself, a torn or empty file acknowledged as durable.
    const bouncedUnsent = acked.filter((id) => left.get(id)?.join() === 'bounced' && !received.has(id));
    const bouncedNames = fs.readdirSync(path.join(spool, 'bounced')).filter((n) => n.endsWith('.json'));
    const noReason = bouncedNames.filter((n) => {
      try {
        return typeof JSON.parse(fs.readFileSync(path.join(spool, 'bounced', `${n}.reason`), 'utf8')).reason !== 'string';
      } catch {
        return true;
      }
    }).length;
    const sentAgain = [...received.values()].filter((n) => n > 1).length;
    const pass = cuts >= opts.cuts && drained && lost.length === 0 && corrupt === 0 && inTwo === 0 && noReason === 0 && bouncedUnsent.length === 0;
    return {
      scenario,
      pass,
      figures:
        `${cuts} power cuts on ${LAZYFS ? 'LazyFS (unsynced data dropped; metadata kept)' : 'powercut-fs (only what was fsynced survives; metadata journaled in order)'}, ${runs} producer runs: ` +
        `${acked.length.toLocaleString('en')} messages acknowledged by enqueue(), lost ${lost.length}${lost.length ? ` (${lost.slice(0, 3).join(', ')})` : ''}, ` +
        `corrupt or truncated bodies sent ${corrupt}, bounced unsent (torn on disk) ${bouncedUnsent.length}, in two queues ${inTwo}, bounced ${bouncedNames.length} (the receiver refused ${refusedBeforeLast} requests before the last cut; bounced without a readable reason: ${noReason}), ` +
        `received more than once ${sentAgain} (at least once: a cut can undo a move after the request), drained ${drained}, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
    };
  } finally {
    await Promise.all([killed(producer), daemon ? (daemon as Daemon).stop('SIGKILL') : Promise.resolve()]);
    await killed(fuse);
    spawnSync('umount', ['-l', mnt]);
    await new Promise((r) => server.close(r));
  }
}
