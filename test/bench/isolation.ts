/**
 * `npm run bench:isolation`: does a dead destination slow a healthy one?
 *
 * One daemon per run of a scenario, the same healthy traffic in each: 2,000
 * messages dropped at 200 a second to a node:http sink answering 200. In the
 * "dead" scenarios 5,000 messages to an endpoint that accepts connections and
 * never answers (each attempt ends at the 5 s timeout) wait when the daemon
 * starts: due in deferred/ (they have failed before: the steady state), or
 * all arriving at once in incoming/ (each must be read once to learn its
 * destination). In the "slow" scenario the 5,000 arriving at once go to
 * an endpoint that answers 200 after 2 s: its good answers grow its window
 * to the --per-destination limit, and the slots it then holds are the ones
 * the healthy traffic cannot have. Reported: the healthy messages'
 * drop-to-request latency and how long they took, and how many requests
 * the dead (or slow) endpoint got.
 *
 * The scenarios take turns, --rounds of them (3), each round starting one
 * scenario further on, and each round's p99 beside a backlog is divided by
 * the same round's p99 alone: the machine drifts between runs by more than
 * the target's 2 x allows, and a single run of "alone" first put every
 * ratio on that one run. Latencies are read to the microsecond
 * (performance.timeOrigin + performance.now(), in the producer and in the
 * sink on one machine): whole milliseconds put a p99 of 3 ms anywhere
 * between 2 and 4.
 *
 * The spool is on the bench's disk (disk.ts: ext4 with its journal, made for
 * the run), as in compare.ts; --disk DIR puts it in DIR.
 *
 * The settings under test can be changed through the daemon's environment
 * (SPOOLD_CONCURRENCY, SPOOLD_PER_DESTINATION); the table then says so.
 *
 *   npx tsx test/bench/isolation.ts [--rounds N] [--disk DIR] [--write-readme]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../../src/service/config.js';
import { bucketOf, destinationTag, formatEntry } from '../../src/spool/names.js';
import { fileSystemName } from '../fs-type.js';
import { arg } from './args.js';
import { benchDisk } from './disk.js';
import { replaceReadmeSection } from './readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPOOLD = path.join(ROOT, 'bin/spoold');
const HEALTHY = 2000;
const RATE = 200;
const DEAD = 5000;
/** The slow endpoint's answer time: well inside --timeout 5s, so every answer is a good one. */
const SLOW_MS = 2000;

async function listen(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Wall-clock ms with a fraction, comparable between processes on one machine. */
const wallMs = (): number => performance.timeOrigin + performance.now();

const ROUNDS = Number(arg('rounds', '3'));

const median = (xs: number[]): number => pct(xs, 50);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? NaN;
}

interface Result {
  p50: number;
  p99: number;
  max: number;
  seconds: number;
  deadRequests: number;
}

async function run(disk: string, scenario: string, backlog: 'none' | 'deferred' | 'incoming' | 'slow', extra: string[]): Promise<Result> {
  const latencies: number[] = [];
  const healthy = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      latencies.push(wallMs() - (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { t: number }).t);
      res.end('ok');
    });
  });
  let deadRequests = 0;
  const sockets = new Set<import('node:net').Socket>();
  const answers = new Set<NodeJS.Timeout>();
  const dead = await listen((req, res) => {
    deadRequests++;
    req.resume(); // and never answer, or answer late
    if (backlog === 'slow') {
      const t = setTimeout(() => (answers.delete(t), res.end('ok')), SLOW_MS);
      answers.add(t);
    }
  });
  dead.server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));

  const spool = fs.mkdtempSync(path.join(disk, 'spoold-isolation-'));
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) fs.mkdirSync(path.join(spool, q));
  const now = Date.now();
  for (let i = 0; backlog !== 'none' && i < DEAD; i++) {
    const body = JSON.stringify({ url: `${dead.url}/hook`, body: { i } });
    if (backlog === 'incoming' || backlog === 'slow') {
      fs.writeFileSync(path.join(spool, 'incoming', `dead-${i}.json`), body);
      continue;
    }
    const bucket = path.join(spool, 'deferred', String(bucketOf(now)));
    fs.mkdirSync(bucket, { recursive: true });
    const name = formatEntry({ id: `dead-${i}`, time: now - 1000, attempts: 1, arrival: now - 60_000, destination: destinationTag(new URL(dead.url).origin), lastError: 'HEADERS-TIMEOUT' });
    fs.writeFileSync(path.join(bucket, name), body);
  }
  const daemon: ChildProcess = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool, '--timeout', '5s', ...extra], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000));

  const t0 = Date.now();
  for (let i = 0; i < HEALTHY; i++) {
    const wait = t0 + (i * 1000) / RATE - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const tmp = path.join(spool, 'tmp', `ok-${i}.json`);
    fs.writeFileSync(tmp, JSON.stringify({ url: `${healthy.url}/hook`, body: { t: wallMs(), i } }));
    fs.renameSync(tmp, path.join(spool, 'incoming', `ok-${i}.json`));
  }
  const deadline = Date.now() + 120_000;
  while (latencies.length < HEALTHY && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const seconds = (Date.now() - t0) / 1000;
  daemon.kill('SIGKILL');
  await new Promise((r) => daemon.once('exit', r));
  for (const t of answers) clearTimeout(t);
  for (const s of sockets) s.destroy();
  healthy.server.close();
  dead.server.close();
  fs.rmSync(spool, { recursive: true, force: true });
  if (latencies.length < HEALTHY) throw new Error(`${scenario}: only ${latencies.length}/${HEALTHY} healthy messages arrived`);
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), max: Math.max(...latencies), seconds, deadRequests };
}

const perDestination = Math.min(Number(process.env.SPOOLD_PER_DESTINATION ?? DEFAULTS.perDestination), Number(process.env.SPOOLD_CONCURRENCY ?? DEFAULTS.concurrency));
const scenarios: [string, 'none' | 'deferred' | 'incoming' | 'slow', string[]][] = [
  ['healthy traffic alone', 'none', []],
  [`with 5,000 due in deferred/ for a dead endpoint (dead after ${perDestination} failures in a row: the default ${DEFAULTS.deadAfter}, raised to the per-destination limit)`, 'deferred', []],
  ['the same, dead-destination handling off (--dead-after 0)', 'deferred', ['--dead-after', '0']],
  ['with 5,000 for the dead endpoint arriving at once in incoming/', 'incoming', []],
  [`with 5,000 arriving at once in incoming/ for a slow endpoint (200 after ${SLOW_MS / 1000} s)`, 'slow', []],
];
const disk = benchDisk(arg('disk', '') || undefined);
const on = `${fileSystemName(disk.dir)} (${disk.label})`;
const rounds: Result[][] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    const round: Result[] = [];
    for (let k = 0; k < scenarios.length; k++) {
      const j = (r + k) % scenarios.length;
      const [name, backlog, extra] = scenarios[j]!;
      round[j] = await run(disk.dir, name, backlog, extra);
      console.error(`  round ${r + 1}: ${name}: p99 ${round[j]!.p99.toFixed(1)} ms`);
    }
    rounds.push(round);
  }
} finally {
  disk.close();
}
const f1 = (x: number) => x.toFixed(1);
const rows = scenarios.map(([name], j) => {
  const mine = rounds.map((round) => round[j]!);
  const ratios = rounds.map((round) => round[j]!.p99 / round[0]!.p99);
  const ratio = j === 0 ? '' : `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
  return `| ${name} | ${f1(median(mine.map((x) => x.p50)))} / ${f1(median(mine.map((x) => x.p99)))} / ${f1(median(mine.map((x) => x.max)))} | ${ratio} | ${median(mine.map((x) => x.seconds)).toFixed(1)} s | ${median(mine.map((x) => x.deadRequests)).toLocaleString('en')} |`;
});
const settings = ['SPOOLD_CONCURRENCY', 'SPOOLD_PER_DESTINATION'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`);
const cpus = os.cpus();
const table = [
  `Run ${new Date().toISOString().slice(0, 10)}: ${cpus.length} × ${cpus[0]?.model.trim()}, Node ${process.version}, spool on ${on}; ${HEALTHY.toLocaleString('en')} healthy messages dropped at ${RATE}/s; the dead endpoint accepts connections and never answers (--timeout 5s; every other setting ${settings.length ? `the default but ${settings.join(', ')}` : 'the default'}). Medians of ${ROUNDS} rounds, the scenarios taking turns; p99 × alone: each round's p99 over the same round's p99 alone, median (range).`,
  '',
  '| scenario | healthy latency p50 / p99 / max (ms) | p99 × alone | healthy traffic done in | requests to the dead or slow endpoint |',
  '|---|---|---:|---:|---:|',
  ...rows,
].join('\n');
console.log(table);
if (process.argv.includes('--write-readme')) replaceReadmeSection('bench:isolation', table);
