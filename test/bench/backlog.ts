/**
 * Backlog benchmark: how spoolctl and spoold behave with a large deferred
 * queue. Not part of `npm test` (figures, not assertions).
 *
 *   npm run bench:backlog -- [--count 100000] [--daemon-count 1000000] [--dir /dev/shm] [--write-readme]
 *
 * The spool is on the bench's journaled ext4 (disk.ts), made with an inode
 * for every file, unless `--dir` names a folder.
 *
 * 1. Generates `--count` deferred messages (not due for an hour, over 5
 *    destinations) and times, as a user would see them (Node's start included):
 *    the first page of `spoolctl list`, `list --limit 100`, `list --json`,
 *    and `stats`.
 * 2. Grows the queue to `--daemon-count` and starts the daemon on it: time to
 *    its first scan, resident memory and CPU while idle, and delivery of fresh
 *    messages dropped meanwhile (they must not wait behind the backlog).
 * 3. Starts it again with --metrics and times the status page's views on
 *    that backlog, as a browser asks for them.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg } from './args.js';
import { replaceReadmeSection } from './readme.js';
import { benchDisk, type BenchDisk } from './disk.js';
import { formatEntry, destinationTag, bucketOf, BUCKET_MS } from '../../src/spool/names.js';
import { fileSystemName } from '../fs-type.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPOOLCTL = path.join(ROOT, 'bin/spoolctl');
const SPOOLD = path.join(ROOT, 'bin/spoold');

const COUNT = Number(arg('count', '100000'));
const DAEMON_COUNT = Number(arg('daemon-count', '1000000'));
const GIVEN_DIR = arg('dir', '') || undefined;
const WRITE = process.argv.includes('--write-readme');

const ORIGINS = ['https://hooks.alpha.example', 'https://api.beta.example', 'https://gamma.example:8443', 'http://delta.example', 'https://epsilon.example'];

function generate(spool: string, from: number, to: number, now: number): void {
  const made = new Set<string>();
  for (let i = from; i < to; i++) {
    const origin = ORIGINS[i % ORIGINS.length]!;
    const next = now + 3_600_000 + (i % 3_600) * 1000; // due in 1 to 2 hours
    const entry = { id: `bench-${i}`, time: next, attempts: 1 + (i % 7), arrival: now - (i % 400) * 60_000, destination: destinationTag(origin), lastError: i % 3 ? '503' : 'ECONNREFUSED' };
    const dir = path.join(spool, 'deferred', String(bucketOf(next)));
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    fs.writeFileSync(path.join(dir, formatEntry(entry)), JSON.stringify({ url: `${origin}/hook/${i}`, headers: { 'X-Event': 'bench' }, body: { n: i, pad: 'x'.repeat(120) } }));
  }
}

/**
 * Writes back what generate() left dirty (4 GB for a million files) before
 * anything is timed: a queue that grew over days has none of it, and its
 * writeback made one fresh message of 100 wait 67 ms (2026-12-08).
 */
function writeBack(spool: string): void {
  execFileSync('sync', ['-f', spool]);
}

function timeIt(label: string, args: string[], firstBytes = 0): { label: string; ms: number; note: string } {
  const runs: number[] = [];
  let note = '';
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    if (firstBytes > 0) {
      // Time to the first page on screen: until `firstBytes` lines are out.
      const out = execFileSync('sh', ['-c', `node ${SPOOLCTL} ${args.join(' ')} | head -n ${firstBytes} | wc -l`], { encoding: 'utf8' });
      note = `${out.trim()} lines`;
    } else {
      const r2 = spawnSync(process.execPath, [SPOOLCTL, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
      if (r2.status !== 0) throw new Error(`${label}: ${r2.stderr}`);
      note = `${r2.stdout.length.toLocaleString('en')} bytes out`;
    }
    runs.push(performance.now() - t0);
  }
  runs.sort((a, b) => a - b);
  return { label, ms: Math.round(runs[1]!), note };
}

async function daemonRun(spool: string): Promise<Record<string, string>> {
  let delivered = 0;
  const latencies: number[] = [];
  const sent = new Map<string, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = String(req.headers['idempotency-key']);
      const t = sent.get(id);
      if (t !== undefined) latencies.push(Date.now() - t);
      delivered++;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fresh`;

  const t0 = performance.now();
  const child = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.resume();
  // Ready when a message dropped now is delivered.
  const probe = () => {
    const id = `probe-${Date.now()}`;
    fs.writeFileSync(path.join(spool, 'tmp', `${id}.json`), JSON.stringify({ url }));
    fs.renameSync(path.join(spool, 'tmp', `${id}.json`), path.join(spool, 'incoming', `${id}.json`));
  };
  probe();
  while (delivered === 0) await new Promise((r) => setTimeout(r, 20));
  const startup = performance.now() - t0;

  const stat = () => {
    const s = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ticks = Number(s[11]) + Number(s[12]);
    const rss = Number(fs.readFileSync(`/proc/${child.pid}/statm`, 'utf8').split(' ')[1]) * 4096;
    return { ticks, rss };
  };
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  const idleSeconds = 20;
  const before = stat();
  let peakRss = before.rss;
  // 5 fresh messages per second while idle: they must not wait behind the backlog.
  for (let i = 0; i < idleSeconds * 5; i++) {
    const id = `fresh-${i}`;
    sent.set(id, Date.now());
    fs.writeFileSync(path.join(spool, 'tmp', `${id}.json`), JSON.stringify({ url }));
    fs.renameSync(path.join(spool, 'tmp', `${id}.json`), path.join(spool, 'incoming', `${id}.json`));
    await new Promise((r) => setTimeout(r, 200));
    peakRss = Math.max(peakRss, stat().rss);
  }
  const after = stat();
  // Then nothing at all for 30 s: what the backlog costs by itself.
  const quietSeconds = 30;
  await new Promise((r) => setTimeout(r, quietSeconds * 1000));
  const quiet = stat();
  peakRss = Math.max(peakRss, quiet.rss);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  server.close();
  latencies.sort((a, b) => a - b);
  const cpu = ((after.ticks - before.ticks) / hz / idleSeconds) * 100;
  const idle = ((quiet.ticks - after.ticks) / hz / quietSeconds) * 100;
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))];
  return {
    startup: `${Math.round(startup)} ms`,
    rss: `${Math.round(peakRss / 1024 / 1024)} MB`,
    cpu: `${cpu.toFixed(1)}% of one core`,
    idle: `${idle.toFixed(2)}% of one core`,
    fresh: `${latencies.length} delivered, p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${latencies.at(-1)} ms`,
  };
}

/**
 * The status page's views on the backlog, as a browser asks for them: the
 * daemon started with --metrics, each view timed from request to the last
 * byte (median of 3, after one to warm up).
 */
async function viewTimings(spool: string): Promise<{ label: string; ms: number; note: string }[]> {
  const child = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool, '--metrics', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let address = '';
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      buffered += c.toString();
      for (const line of buffered.split('\n')) {
        try {
          const o = JSON.parse(line) as { event?: string; address?: string };
          if (o.event === 'metrics-listening' && o.address) {
            address = o.address;
            resolve();
          }
        } catch {
          /* a partial line */
        }
      }
    });
    child.once('exit', () => reject(new Error('spoold exited before serving the status page')));
  });
  child.stdout.resume();
  const views: [string, string][] = [
    ['overview (`/api/status`, every 2 s)', '/api/status'],
    ['deferred, oldest first, first page of 50', '/api/queue?queue=deferred'],
    ['deferred, newest first, first page of 50', '/api/queue?queue=deferred&order=newest'],
    ['deferred, next page (cursor)', ''],
    ['deferred of one destination', '/api/queue?queue=deferred&destination=api.beta.example'],
    ['deferred, id prefix that matches nothing (stops after 100,000 names)', '/api/queue?queue=deferred&prefix=none-'],
    ['search by id (a message in the middle)', `/api/message?id=bench-${Math.floor(DAEMON_COUNT / 2)}`],
  ];
  const rows: { label: string; ms: number; note: string }[] = [];
  let next = '';
  for (const [label, route] of views) {
    const url = `http://${address}${route || `/api/queue?queue=deferred&after=${encodeURIComponent(next)}`}`;
    const runs: number[] = [];
    let note = '';
    for (let r = 0; r < 4; r++) {
      const t0 = performance.now();
      const res = await fetch(url);
      const body = (await res.json()) as { rows?: unknown[]; next?: string; scanned?: number; complete?: boolean };
      if (r > 0) runs.push(performance.now() - t0);
      if (route === '/api/queue?queue=deferred') next = body.next ?? '';
      note = res.status !== 200 ? `HTTP ${res.status}` : body.rows ? `${body.rows.length} rows, ${body.scanned?.toLocaleString('en')} names read${body.complete === false ? ', stopped there' : ''}` : '';
    }
    runs.sort((a, b) => a - b);
    rows.push({ label, ms: Math.round(runs[1]!), note });
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return rows;
}

async function main(): Promise<void> {
  const disk = benchDisk(GIVEN_DIR, { inodes: Math.max(COUNT, DAEMON_COUNT) + 100_000 });
  try {
    await measure(disk);
  } finally {
    disk.close();
  }
}

async function measure(disk: BenchDisk): Promise<void> {
  const base = fs.mkdtempSync(path.join(disk.dir, 'spoold-bench-'));
  const spool = path.join(base, 'spool');
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) fs.mkdirSync(path.join(spool, q), { recursive: true });
  const fsType = disk.made ? disk.label : fileSystemName(base);
  // From the start of a minute: the first deferred bucket is then a whole
  // one, so the status page's first pages read as many names in every run
  // (from a moment late in a minute, the first bucket holds a few seconds).
  const now = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
  console.error(`generating ${COUNT.toLocaleString('en')} deferred messages in ${base} (${fsType})`);
  generate(spool, 0, COUNT, now);
  writeBack(spool);

  const rows = [
    timeIt('spoolctl list (first 100 rows on screen)', ['list', '--spool', spool], 101),
    timeIt('spoolctl list --limit 100', ['list', '--limit', '100', '--spool', spool]),
    timeIt('spoolctl list --json --limit 100', ['list', '--json', '--limit', '100', '--spool', spool]),
    timeIt('spoolctl stats', ['stats', '--spool', spool]),
    timeIt('spoolctl list --json (whole queue)', ['list', '--json', '--spool', spool]),
  ];

  let daemon: Record<string, string> | null = null;
  let views: { label: string; ms: number; note: string }[] = [];
  if (DAEMON_COUNT > 0) {
    console.error(`growing to ${DAEMON_COUNT.toLocaleString('en')} deferred messages`);
    generate(spool, COUNT, DAEMON_COUNT, now);
    writeBack(spool);
    daemon = await daemonRun(spool);
    views = await viewTimings(spool);
    rows.push(
      timeIt(`spoolctl list --limit 100 (${DAEMON_COUNT.toLocaleString('en')} deferred)`, ['list', '--limit', '100', '--spool', spool]),
      timeIt(`spoolctl stats (${DAEMON_COUNT.toLocaleString('en')} deferred)`, ['stats', '--spool', spool]),
    );
  }
  fs.rmSync(base, { recursive: true, force: true });

  const cpu = os.cpus();
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu.length} × ${cpu[0]?.model.trim()}, Node ${process.version}, spool on ${fsType}; median of 3 runs, each including Node's start.`,
    '',
    `| ${COUNT.toLocaleString('en')} deferred messages (or as said) | time | |`,
    '|---|---:|---|',
    ...rows.map((r) => `| ${r.label} | ${r.ms} ms | ${r.note} |`),
  ];
  if (daemon) {
    lines.push(
      '',
      `| spoold on ${DAEMON_COUNT.toLocaleString('en')} deferred messages | |`,
      '|---|---|',
      `| start-up, to the first fresh message delivered | ${daemon.startup} |`,
      `| peak resident memory (50 s) | ${daemon.rss} |`,
      `| CPU with fresh messages at 5/s (20 s) | ${daemon.cpu} |`,
      `| CPU idle, the backlog waiting (30 s) | ${daemon.idle} |`,
      `| fresh messages meanwhile (5/s) | ${daemon.fresh} |`,
    );
  }
  if (views.length > 0) {
    lines.push('', `| status page on ${DAEMON_COUNT.toLocaleString('en')} deferred (\`--metrics\`), one view | time | |`, '|---|---:|---|', ...views.map((r) => `| ${r.label} | ${r.ms} ms | ${r.note} |`));
  }
  const table = lines.join('\n');
  console.log(table);
  if (WRITE) replaceReadmeSection('bench:backlog', table);

}

await main();
