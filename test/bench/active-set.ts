/**
 * `npm run bench:active`: what the active set costs in memory.
 *
 * A receiver that accepts requests and never answers holds the daemon's 64
 * slots; 10,000 messages of about 1 KiB then arrive in incoming/ and wait in
 * the active set, which claims until it is full (--active-limit) or the
 * messages are gone. Reported: the daemon's resident memory once claiming
 * has stopped, beside a run whose active set holds 100, and with
 * --active-bytes 8MiB and 0 (nothing kept parsed: each message read again
 * when sent).
 * The difference, divided by the extra messages held, is the cost of one.
 *
 *   npx tsx test/bench/active-set.ts [--write-readme]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { replaceReadmeSection } from './readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPOOLD = path.join(ROOT, 'bin/spoold');
const MESSAGES = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function count(dir: string): number {
  let n = 0;
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isFile() && d.name.endsWith('.json')) n++;
  return n;
}

async function run(extra: string[]): Promise<{ held: number; rss: number }> {
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((_req, res) => hanging.add(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-bench-active-'));
  const spool = path.join(base, 'spool');
  for (const q of ['incoming', 'tmp']) fs.mkdirSync(path.join(spool, q), { recursive: true });
  const child = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool, '--timeout', '1h', '--log-level', 'warn', ...extra], { stdio: 'ignore' });
  try {
    await sleep(1500);
    const body = 'x'.repeat(1000);
    for (let i = 0; i < MESSAGES; i++) {
      const tmp = path.join(spool, 'tmp', `m-${i}.json`);
      fs.writeFileSync(tmp, JSON.stringify({ url, body: { i, body } }));
      fs.renameSync(tmp, path.join(spool, 'incoming', `m-${i}.json`));
    }
    // Claiming has stopped once incoming/ holds still for 3 s.
    let last = -1;
    for (let still = 0; still < 6; ) {
      await sleep(500);
      const n = count(path.join(spool, 'incoming'));
      still = n === last ? still + 1 : 0;
      last = n;
    }
    return { held: MESSAGES - last, rss: rssMb(child.pid!) };
  } finally {
    child.kill('SIGKILL');
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    server.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const rows: [string, string[]][] = [
  ['--active-limit 100', ['--active-limit', '100']],
  ['defaults (--active-limit 10000, --active-bytes 1MiB)', []],
  ['--active-bytes 8MiB', ['--active-bytes', '8MiB']],
  ['--active-bytes 0 (nothing kept parsed)', ['--active-bytes', '0']],
];
const results: { name: string; held: number; rss: number }[] = [];
for (const [name, extra] of rows) {
  const r = await run(extra);
  results.push({ name, ...r });
  console.error(`${name}: ${r.held} held, ${r.rss.toFixed(0)} MB`);
}
const [small] = results;
const lines = [
  `Run ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}; ${MESSAGES.toLocaleString('en')} messages of about 1 KiB waiting for a receiver that never answers (64 requests in flight).`,
  '',
  '| active set | messages held | daemon RSS | per message beyond the first 100 |',
  '|---|---:|---:|---:|',
  ...results.map((r) => `| ${r.name} | ${r.held.toLocaleString('en')} | ${r.rss.toFixed(0)} MB | ${r === small ? '' : `${(((r.rss - small!.rss) * 1024) / Math.max(1, r.held - small!.held)).toFixed(1)} KiB`} |`),
];
const table = lines.join('\n');
console.log(table);
if (process.argv.includes('--write-readme')) replaceReadmeSection('bench:active', table);
