/**
 * `npm run bench:lateness`: how late a scheduled message goes out, with the
 * defaults. Scheduled messages wait in deferred/ as retries do, so this is
 * the due scan's lateness for both.
 *
 * One daemon on a spool on the bench's disk (disk.ts: ext4 with its journal,
 * made for the run), a node:http sink answering 200, two rows:
 * 3,000 messages with `deliverAt` 1-10 s ahead and 1,000 without, all
 * waiting when the daemon starts (the start-up claim comes first); and 3,000
 * dropped at 300 a second, each due 1-10 s after its drop (the steady state).
 * Late: the first request's arrival less the message's time, or less the
 * daemon's start for a message that came due before it: where writing the
 * 4,000 files of the first row takes over a second, messages due 1 s after
 * their drop are due before the daemon runs, and counting that wait would
 * measure the bench's writes, not the due scan.
 *
 * Not the machine's root, ext4 without a journal here, where a creation
 * probes the inodes freed in the last 30 s: the first row's writes took 1-2
 * s there, and in one run 330 messages came due before the daemon ran.
 *
 *   npx tsx test/bench/lateness.ts [--disk DIR] [--write-readme]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileSystemName } from '../fs-type.js';
import { arg } from './args.js';
import { benchDisk } from './disk.js';
import { replaceReadmeSection } from './readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPOOLD = path.join(ROOT, 'bin/spoold');
const SCHEDULED = 3000;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function drop(spool: string, id: string, message: unknown): void {
  const tmp = path.join(spool, 'tmp', `${id}.json`);
  fs.writeFileSync(tmp, JSON.stringify(message));
  fs.renameSync(tmp, path.join(spool, 'incoming', `${id}.json`));
}

async function run(disk: string, steady: boolean): Promise<string> {
  const dir = fs.mkdtempSync(path.join(disk, 'spoold-lateness-'));
  const spool = path.join(dir, 'spool');
  for (const q of ['incoming', 'tmp']) fs.mkdirSync(path.join(spool, q), { recursive: true });
  const first = new Map<string, number>();
  const server = http.createServer((req, res) =>
    req.resume().on('end', () => {
      const id = String(req.headers['idempotency-key']);
      if (!first.has(id)) first.set(id, Date.now());
      res.writeHead(200).end();
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const due = new Map<string, number>();
  const schedule = (i: number) => {
    const at = Date.now() + 1000 + Math.round(Math.random() * 9000);
    due.set(`s-${i}`, at);
    drop(spool, `s-${i}`, { url: `${url}/s`, deliverAt: new Date(at).toISOString() });
  };
  if (!steady) {
    for (let i = 0; i < SCHEDULED; i++) schedule(i);
    for (let i = 0; i < 1000; i++) drop(spool, `now-${i}`, { url: `${url}/now` });
  }
  const spawned = Date.now();
  const daemon = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    if (steady) {
      await sleep(500);
      const started = Date.now();
      for (let i = 0; i < SCHEDULED; ) {
        const upTo = Math.min(SCHEDULED, Math.floor(((Date.now() - started) * 300) / 1000));
        for (; i < upTo; i++) schedule(i);
        await sleep(5);
      }
    }
    const until = Date.now() + 30_000;
    while (Date.now() < until && [...due.keys()].some((id) => !first.has(id))) await sleep(100);
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const late = [...due].filter(([id]) => first.has(id)).map(([id, at]) => first.get(id)! - Math.max(at, spawned));
  const dueBeforeStart = [...due.values()].filter((at) => at < spawned).length;
  const early = late.filter((l) => l < 0).length;
  const missing = due.size - late.length;
  const name = steady ? `${SCHEDULED.toLocaleString('en')} dropped at 300/s, each due 1-10 s after its drop` : `${SCHEDULED.toLocaleString('en')} due 1-10 s ahead and 1,000 due now, all waiting at start`;
  const f = (x: number) => Math.round(x).toLocaleString('en');
  return `| ${name} | ${f(pct(late, 50))} | ${f(pct(late, 90))} | ${f(pct(late, 99))} | ${f(Math.max(...late))} | ${f(dueBeforeStart)} | ${early} | ${missing} |`;
}

async function main(): Promise<void> {
  const disk = benchDisk(arg('disk', '') || undefined);
  const on = `${fileSystemName(disk.dir)} (${disk.label})`;
  let rows: string[];
  try {
    rows = [await run(disk.dir, false), await run(disk.dir, true)];
  } finally {
    disk.close();
  }
  const table = [
    `Run ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, spool on ${on}, the defaults; one run each. Late: ms from the message's time (or from the daemon's start, for one due before it) to its request at the receiver.`,
    '',
    '| scheduled messages | late p50 | p90 | p99 | max | due before the daemon started | sent early | not sent in 30 s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
  console.log(table);
  if (process.argv.includes('--write-readme')) replaceReadmeSection('bench:lateness', table);
}

await main();
