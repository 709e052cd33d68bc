/**
 * `npm run bench:ordering`: what `orderingKey` costs. The same 5,000 messages
 * drained by the daemon with no key, with 500 keys (10 messages each) and
 * with one key for all; the sink answers 200 after 5 ms, on tmpfs.
 * Reported: throughput and the daemon's CPU per 1,000 messages.
 *
 *   npx tsx test/bench/ordering.ts [--write-readme]
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { replaceReadmeSection } from './readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPOOLD = path.join(ROOT, 'bin/spoold');
const N = 5000;
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function cpuMs(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(s[11]) + Number(s[12])) * 1000) / HZ;
}

async function run(keys: number): Promise<{ rate: number; cpu: number }> {
  let got = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => (got++, res.end('ok')), 5));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const spool = fs.mkdtempSync(path.join('/dev/shm', 'spoold-ordering-'));
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) fs.mkdirSync(path.join(spool, q));
  for (let i = 0; i < N; i++) {
    const message = { url, body: { i }, ...(keys > 0 && { orderingKey: `key-${i % keys}` }) };
    fs.writeFileSync(path.join(spool, 'incoming', `m-${String(i).padStart(5, '0')}.json`), JSON.stringify(message));
  }
  const t0 = Date.now();
  const daemon = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool], { stdio: 'ignore' });
  const deadline = Date.now() + 300_000;
  while (got < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const ms = Date.now() - t0;
  const cpu = cpuMs(daemon.pid!);
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  server.close();
  fs.rmSync(spool, { recursive: true, force: true });
  if (got < N) throw new Error(`only ${got}/${N} delivered`);
  return { rate: (N / ms) * 1000, cpu: (cpu / N) * 1000 };
}

const rows: string[] = [];
for (const [label, keys] of [['no orderingKey', 0], ['500 keys, 10 messages each', 500], ['one key for all', 1]] as const) {
  const r = await run(keys);
  rows.push(`| ${label} | ${Math.round(r.rate).toLocaleString('en')} | ${Math.round(r.cpu)} |`);
  console.error(rows.at(-1));
}
const cpus = os.cpus();
const table = [
  `Run ${new Date().toISOString().slice(0, 10)}: ${cpus.length} × ${cpus[0]?.model.trim()}, Node ${process.version}; ${N.toLocaleString('en')} messages waiting in incoming/ at start, tmpfs, the sink answers after 5 ms; default settings.`,
  '',
  '| messages | msgs/s | daemon CPU-ms per 1,000 |',
  '|---|---:|---:|',
  ...rows,
].join('\n');
console.log(table);
if (process.argv.includes('--write-readme')) replaceReadmeSection('bench:ordering', table);
