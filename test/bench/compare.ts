/**
 * `npm run bench`: the same work for every contender, on this machine, in one
 * run: N messages of about 1 KiB, each POSTed once to one local node:http sink
 * answering 200, durability on. Medians of `--runs`. spoold runs with its
 * default settings in every row whose name does not say what it changes
 * (the peers' clients keep 64 requests in flight, spoold's default).
 *
 * CPU is what binds on small machines, so the figure that carries over is CPU
 * milliseconds per 1,000 messages for the whole pipeline (producers, daemon or
 * broker; the sink excluded: it runs in its own process).
 *
 *   npx tsx test/bench/compare.ts [--messages 20000] [--runs 3] [--only a,b] [--rates 100,500,2000] [--rate-seconds 10] [--warm-messages 5000] [--write-readme]
 *   BENCH_PROFILE_DIR=dir …  also writes a V8 CPU profile of each spoold run into dir
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg } from './args.js';
import { benchDisk } from './disk.js';
import { replaceReadmeSection } from './readme.js';
import { ensureCommand } from '../e2e/helpers.js';
import { fileSystemName } from '../fs-type.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.join(ROOT, 'test/bench');
const SPOOLD = path.join(ROOT, 'bin/spoold');

const N = Number(arg('messages', '20000'));
const RUNS = Number(arg('runs', '3'));
/**
 * Rows compared with each other (the defaults against other settings) take
 * turns for this many rounds. Round to round one receiver's drain moves by
 * up to 30% on this machine, more than the differences in question: in six
 * rounds (2026-12-07) the defaults' drain was 0.85-1.22 x 128's round by
 * round, so three rounds can put a 10% target either side by chance.
 */
const ROUNDS = Number(arg('rounds', '5'));
for (const [name, n] of [['runs', RUNS], ['rounds', ROUNDS]] as const) {
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error(`--${name}: a whole number from 1 to 100 (got ${arg(name, '')})`);
}
const ONLY = arg('only', '').split(',').filter(Boolean);
/** The peers' clients keep this many requests in flight: spoold's default --concurrency. */
const CONCURRENCY = 64;
/** The rate sweep: each rate for this long. */
const RATES = arg('rates', '100,500,2000').split(',').map(Number);
/** The --per-destination settings the defaults are measured against: half and double the default. */
const PER_DESTINATION_ROWS = ['32', '128'];
const perDestinationRow = (kind: 'drain' | 'end to end', n: string) => `spoold ${kind}, --per-destination ${n}, tmpfs`;
if (RATES.some((r) => !Number.isInteger(r) || r <= 0)) throw new Error(`--rates: messages a second, whole numbers above 0, comma-separated (got ${arg('rates', '')})`);
/** How long each rate row runs: longer runs weigh the one-time costs (V8 compiling the path, new connections) less. */
const RATE_SECONDS = Number(arg('rate-seconds', '10'));
/**
 * Before a rate row is measured, this many messages go through the same
 * daemon or broker as fast as they come. A daemon in service has run for
 * hours and its JIT has compiled the path; a fresh one spends its first
 * thousands of messages in V8's lower tiers. At 100 msgs/s, one daemon, 10 s
 * rounds on tmpfs (2026-12-07): 1,640-2,330 CPU-ms per 1,000 in its first 10
 * s, 900-1,300 after 30 s, and 1,110 in the first 10 s after 5,000 messages.
 * The brokers have run the rows before theirs; each gets the same warm-up
 * for symmetry. A fresh daemon's first seconds have a row of their own.
 */
const WARM_MESSAGES = Number(arg('warm-messages', '5000'));
if (!Number.isInteger(WARM_MESSAGES) || WARM_MESSAGES < 0) throw new Error(`--warm-messages: a whole number of messages, 0 for none (got ${arg('warm-messages', '')})`);
if (!Number.isInteger(RATE_SECONDS) || RATE_SECONDS <= 0 || RATE_SECONDS > 600) throw new Error(`--rate-seconds: a whole number of seconds from 1 to 600 (got ${arg('rate-seconds', '')})`);
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const want = (key: string) => ONLY.length === 0 || ONLY.includes(key);

// ------------------------------------------------------------ measuring

function cpuMsOf(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(s[11]) + Number(s[12])) * 1000) / HZ;
  } catch {
    return 0;
  }
}

/** A figure summed over a process tree (a broker forks helpers). */
function overTree(pid: number, figure: (pid: number) => number): number {
  let total = figure(pid);
  try {
    for (const child of fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) total += overTree(Number(child), figure);
  } catch {
    /* gone */
  }
  return total;
}

const treeCpuMs = (pid: number) => overTree(pid, cpuMsOf);
const treeRss = (pid: number) => overTree(pid, rssOf);

function rssOf(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? NaN;
};

// ------------------------------------------------------------ the sink

/**
 * p99 of the messages produced after the run's first second: a steady rate's
 * tail, without the warm-up every contender has (new connections, the JIT;
 * spoold's window starting at 5). Only for the rate rows, and beside the
 * whole run's p99, never instead of it.
 */
function steadyP99(s: SinkStats): number {
  const start = Math.min(...s.producedAt);
  return pct(s.latencies.filter((_, i) => s.producedAt[i]! >= start + 1000), 99);
}

interface SinkStats {
  received: number;
  ok: number;
  refused: number;
  firstAttempts: number;
  unique: number;
  latencies: number[];
  /** When each of those was produced, in the same order. */
  producedAt: number[];
  firstAt: number;
  lastAt: number;
}

class Sink {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(failShare = 0, weak: { capacity: number; serviceMs: number } | null = null): Promise<Sink> {
    const env = { ...process.env, SINK_FAIL_SHARE: String(failShare), ...(weak && { SINK_CAPACITY: String(weak.capacity), SINK_SERVICE_MS: String(weak.serviceMs) }) };
    const child = fork(path.join(HERE, 'sink.ts'), [], { execArgv: ['--import', 'tsx'], env });
    const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
    return new Sink(child, `http://127.0.0.1:${port}`);
  }

  stats(): Promise<SinkStats> {
    return new Promise((r) => {
      this.child.once('message', (m) => r(m as SinkStats));
      this.child.send({ cmd: 'stats' });
    });
  }

  async until(pred: (s: SinkStats) => boolean, timeoutMs = 600_000): Promise<SinkStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (pred(s)) return s;
      if (Date.now() > deadline) throw new Error(`sink: timed out (${s.unique}/${N})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Forgets what it has counted: a rate row's warm-up is not measured. */
  reset(): Promise<void> {
    return new Promise((r) => {
      this.child.once('message', () => r());
      this.child.send({ cmd: 'reset' });
    });
  }

  stop(): void {
    this.child.send({ cmd: 'exit' });
  }
}

/** `onLoaded`: drain mode; called once the broker holds every message, before the contender consumes. */
function contender(mode: string, args: string[], env: NodeJS.ProcessEnv = {}, onLoaded?: () => void): { child: ChildProcess; done: Promise<{ cpuMs: number; ms: number; writeP50?: number; writeP99?: number }> } {
  const child = fork(path.join(HERE, 'contender.ts'), [mode, ...args], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env, ...(onLoaded && { DRAIN: '1' }) } });
  const done = new Promise<{ cpuMs: number; ms: number; writeP50?: number; writeP99?: number }>((resolve, reject) => {
    child.on('message', (m: { loaded?: boolean }) => {
      if (!m.loaded) return resolve(m as { cpuMs: number; ms: number });
      onLoaded!();
      child.send('go');
    });
    child.once('exit', (code) => code !== 0 && reject(new Error(`${mode} exited ${code}`)));
  });
  return { child, done };
}

// ------------------------------------------------------------ spools and daemons

function freshSpool(base: string): string {
  const spool = fs.mkdtempSync(path.join(base, 'spoold-bench-'));
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) fs.mkdirSync(path.join(spool, q), { recursive: true, mode: 0o700 });
  return spool;
}

interface Daemon {
  child: ChildProcess;
  /** Claimed messages that went back to deferred/ unsent, from its log. */
  putBacks(): number;
  /** Claims that found their message taken first (by a peer sharing the spool), from its stopped line. */
  claimsMissed(): number;
}

/** The daemon with its default settings, plus `extra` (which the row's name then says). Its log (info, the default) is read for put-backs. */
function startSpoold(spool: string, extra: string[] = []): Daemon {
  // BENCH_PROFILE_DIR=dir: a V8 CPU profile of each daemon run, for finding where its time goes.
  const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  // BENCH_NODE_FLAGS="--max-semi-space-size=4 ...": V8 flags for the daemon, for finding where its memory goes.
  profile.push(...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean));
  const child = spawn(process.execPath, [...profile, SPOOLD, 'start', '--spool', spool, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  let putBacks = 0;
  let claimsMissed = 0;
  let tail = '';
  child.stdout!.on('data', (c: Buffer) => {
    const text = tail + c.toString('latin1');
    const last = text.lastIndexOf('\n');
    tail = text.slice(last + 1);
    for (let at = text.indexOf('"event":"put-back"'); at !== -1 && at < last; at = text.indexOf('"event":"put-back"', at + 1)) putBacks++;
    const stopped = text.indexOf('"event":"stopped"');
    if (stopped !== -1) {
      const line = text.slice(text.lastIndexOf('\n', stopped) + 1, text.indexOf('\n', stopped));
      const missed = (JSON.parse(line) as { claimsMissed?: { incoming: number; deferred: number } }).claimsMissed;
      if (missed) claimsMissed = missed.incoming + missed.deferred;
    }
  });
  return { child, putBacks: () => putBacks, claimsMissed: () => claimsMissed };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  // 'close', not 'exit': the last log lines (the stopped line's figures) are read by then.
  const exited = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await exited;
}

async function waitPort(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not up`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ------------------------------------------------------------ one run of each

interface Figures {
  throughput: number;
  cpuPer1000: number;
  /** The daemon's share of cpuPer1000, where there is a daemon. */
  daemonPer1000?: number;
  putBacks?: number;
  p50?: number;
  p99?: number;
  p999?: number;
  /** The rate rows: p99 after the first second. */
  steadyP99?: number;
  rssMb?: number;
  writeP50?: number;
  writeP99?: number;
  note?: string;
}

async function runCeiling(): Promise<Figures> {
  const sink = await Sink.start();
  const c = contender('ceiling', [String(N), String(CONCURRENCY), sink.url]);
  const r = await c.done;
  sink.stop();
  return { throughput: (N / r.ms) * 1000, cpuPer1000: (r.cpuMs / N) * 1000 };
}

async function runBareLoop(base: string): Promise<Figures> {
  const sink = await Sink.start();
  const dir = fs.mkdtempSync(path.join(base, 'spoold-bare-'));
  const c = contender('bareLoop', [String(N), String(CONCURRENCY), sink.url], { BARE_DIR: dir });
  const r = await c.done;
  sink.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return { throughput: (N / r.ms) * 1000, cpuPer1000: (r.cpuMs / N) * 1000, note: 'the same file operations and POSTs in one process: the limit of this file system' };
}

interface EndToEnd {
  failShare?: number;
  rate?: number;
  batch?: number;
  messages?: number;
  /** 'wfa': write-file-atomic producers writing straight into incoming/; else the library's enqueue(). */
  producer?: 'wfa';
  extra?: string[];
  /** A rate row measured from the daemon's start, without the warm-up (WARM_MESSAGES). */
  cold?: boolean;
  weak?: { capacity: number; serviceMs: number };
}

async function runSpooldEndToEnd(base: string, opts: EndToEnd = {}): Promise<Figures> {
  const n = opts.messages ?? N;
  const sink = await Sink.start(opts.failShare ?? 0, opts.weak ?? null);
  const spool = freshSpool(base);
  const daemon = startSpoold(spool, opts.extra);
  await new Promise((r) => setTimeout(r, 600));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(daemon.child.pid!))), 50);
  const producerEnv = { SINK_URL: sink.url, SPOOLD_LIB: path.join(ROOT, 'dist/index.js') };
  if (opts.rate && !opts.cold && WARM_MESSAGES > 0) {
    await contender(opts.producer ?? 'produce', [String(WARM_MESSAGES), '32', spool], { ...producerEnv, ID_PREFIX: 'warm-' }).done;
    await sink.until((x) => x.unique >= WARM_MESSAGES);
    await sink.reset();
  }
  const cpu0 = cpuMsOf(daemon.child.pid!);
  const t0 = Date.now();
  const producer = contender(opts.producer ?? 'produce', [String(n), opts.rate ? '16' : '32', spool], {
    ...producerEnv,
    RATE: String(opts.rate ?? 0),
    BATCH: String(opts.batch ?? 0),
  });
  const p = await producer.done;
  // With failures, the first attempts are what compares with the clean run.
  const s = await sink.until((x) => (opts.failShare ? x.firstAttempts >= n : x.unique >= n && (!opts.weak || x.ok >= n)));
  const elapsed = s.lastAt - t0;
  const cpu = cpuMsOf(daemon.child.pid!) - cpu0;
  clearInterval(sampler);
  const putBacks = daemon.putBacks();
  await stopProcess(daemon.child);
  sink.stop();
  fs.rmSync(spool, { recursive: true, force: true });
  return {
    throughput: (n / Math.max(1, elapsed)) * 1000,
    cpuPer1000: ((cpu + p.cpuMs) / n) * 1000,
    daemonPer1000: (cpu / n) * 1000,
    putBacks,
    p50: pct(s.latencies, 50),
    p99: pct(s.latencies, 99),
    p999: pct(s.latencies, 99.9),
    ...(opts.rate && { steadyP99: steadyP99(s) }),
    rssMb: peak / 1024 / 1024,
    ...(p.writeP50 !== undefined && { writeP50: p.writeP50 }),
    ...(p.writeP99 !== undefined && { writeP99: p.writeP99 }),
    note: opts.weak ? `${s.refused} of ${s.received} requests refused (${((s.refused / s.received) * 100).toFixed(1)}%)` : `daemon ${((cpu / n) * 1000).toFixed(0)} + producer ${((p.cpuMs / n) * 1000).toFixed(0)}`,
  };
}

/** `shared`: that many daemons started with --shared on the one spool (0: one, alone). */
async function runSpooldDrain(base: string, shared = 0, extra: string[] = []): Promise<Figures> {
  const sink = await Sink.start();
  const spool = freshSpool(base);
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(spool, 'incoming', `d-${i}.json`), JSON.stringify({ url: `${sink.url}/hook`, body: JSON.stringify({ t: 0, i, pad: 'x'.repeat(960) }) }));
  const t0 = Date.now();
  const daemons = shared === 0 ? [startSpoold(spool, extra)] : Array.from({ length: shared }, () => startSpoold(spool, ['--shared', ...extra]));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, ...daemons.map((d) => rssOf(d.child.pid!)))), 50);
  const s = await sink.until((x) => x.unique >= N);
  // Kept deliveries are written after the answer: count their cost too.
  const keeping = extra.includes('--keep-delivered');
  while (keeping && fs.readdirSync(path.join(spool, 'active')).length > 0) await new Promise((r) => setTimeout(r, 20));
  const cpu = daemons.reduce((sum, d) => sum + cpuMsOf(d.child.pid!), 0);
  clearInterval(sampler);
  const putBacks = daemons.reduce((sum, d) => sum + d.putBacks(), 0);
  await Promise.all(daemons.map((d) => stopProcess(d.child)));
  const claimsMissed = daemons.reduce((sum, d) => sum + d.claimsMissed(), 0);
  const kept = keeping ? Number(execFileSync('du', ['-sk', path.join(spool, 'delivered')], { encoding: 'utf8' }).split('\t')[0]) : 0;
  sink.stop();
  fs.rmSync(spool, { recursive: true, force: true });
  const duplicates = s.received - s.unique;
  return {
    throughput: (N / (s.lastAt - t0)) * 1000,
    cpuPer1000: (cpu / N) * 1000,
    daemonPer1000: (cpu / N) * 1000,
    putBacks,
    rssMb: peak / 1024 / 1024,
    note: `start-up included${shared > 0 ? `; RSS per daemon; sent twice: ${duplicates}; claims missed (a peer took the file first): ${claimsMissed}` : ''}${keeping ? `; delivered/ on disk: ${(kept / N).toFixed(1)} KiB per message` : ''}`,
  };
}

function fsCosts(base: string): string {
  const dir = fs.mkdtempSync(path.join(base, 'spoold-fs-'));
  const count = 2000;
  const payload = Buffer.alloc(1024, 'x');
  const time = (f: (i: number) => void) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) f(i);
    return Number(process.hrtime.bigint() - t0) / 1000 / count;
  };
  const write = time((i) => {
    const fd = fs.openSync(path.join(dir, `t${i}`), 'wx');
    fs.writeSync(fd, payload);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(path.join(dir, `t${i}`), path.join(dir, `m${i}`));
  });
  const rename = time((i) => fs.renameSync(path.join(dir, `m${i}`), path.join(dir, `a${i}`)));
  const read = time((i) => fs.readFileSync(path.join(dir, `a${i}`)));
  const unlink = time((i) => fs.unlinkSync(path.join(dir, `a${i}`)));
  fs.rmSync(dir, { recursive: true, force: true });
  return `write+fsync+rename ${write.toFixed(0)} µs, rename ${rename.toFixed(0)} µs, read ${read.toFixed(0)} µs, unlink ${unlink.toFixed(0)} µs`;
}

// ------------------------------------------------------------ peers

/**
 * BullMQ's client is installed when the bench runs, not kept in the lock
 * file: its optional native parts exist for platforms this registry does not
 * serve, and a lock file without them breaks `npm ci`.
 */
function ensureBullmq(): void {
  if (fs.existsSync(path.join(ROOT, 'node_modules/bullmq')) && fs.existsSync(path.join(ROOT, 'node_modules/ioredis'))) return;
  spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', 'bullmq@^6', 'ioredis@^5'], { cwd: ROOT, stdio: 'ignore' });
}

async function withRedis<T>(base: string, work: (port: number, pid: number) => Promise<T>): Promise<T> {
  ensureBullmq();
  if (!ensureCommand('redis-server', 'redis-server')) throw new Error('redis-server is needed for the BullMQ rows: install Debian\'s "redis-server" package');
  const dir = fs.mkdtempSync(path.join(base, 'spoold-redis-'));
  const port = 6391;
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--protected-mode', 'yes'], { stdio: 'ignore' });
  try {
    await waitPort(port);
    return await work(port, redis.pid!);
  } finally {
    await stopProcess(redis);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function withRabbit<T>(base: string, work: (port: number, pid: number) => Promise<T>): Promise<T> {
  if (!ensureCommand('rabbitmq-server', 'rabbitmq-server')) throw new Error('rabbitmq-server is needed for the RabbitMQ rows: install Debian\'s "rabbitmq-server" package');
  const dir = fs.mkdtempSync(path.join(base, 'spoold-rabbit-'));
  const port = 5673;
  const env = {
    ...process.env,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_NODENAME: 'spooldbench@localhost',
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'pid'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    HOME: dir,
  };
  // RabbitMQ does not create these itself.
  fs.mkdirSync(path.join(dir, 'mnesia'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'log'), { recursive: true });
  // Debian's /usr/sbin wrapper switches to the rabbitmq user, who may not enter
  // this private directory: run the server script itself.
  const server = fs.existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin/rabbitmq-server' : 'rabbitmq-server';
  const rabbit = spawn(server, [], { env, stdio: 'ignore', detached: true });
  rabbit.on('error', () => undefined);
  try {
    await waitPort(port, 120_000);
    await new Promise((r) => setTimeout(r, 1000));
    return await work(port, rabbit.pid!);
  } finally {
    spawnSync(fs.existsSync('/usr/lib/rabbitmq/bin/rabbitmqctl') ? '/usr/lib/rabbitmq/bin/rabbitmqctl' : 'rabbitmqctl', ['-n', 'spooldbench@localhost', 'stop'], { env, stdio: 'ignore', timeout: 30_000 });
    // The wrapper scripts do not always pass SIGTERM on: end the whole group.
    try {
      process.kill(-rabbit.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    spawnSync('pkill', ['-9', '-f', 'spooldbench@localhost']);
    spawnSync('pkill', ['-9', 'epmd']);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runBroker(mode: 'bullmq' | 'rabbit', port: number, brokerPid: number, drain = false, rate = 0): Promise<Figures> {
  const n = rate > 0 ? Math.min(N, rate * RATE_SECONDS) : N;
  const sink = await Sink.start();
  const brokerEnv = mode === 'bullmq' ? { REDIS_PORT: String(port) } : { AMQP_PORT: String(port) };
  if (rate > 0 && WARM_MESSAGES > 0) {
    await contender(mode, [String(WARM_MESSAGES), String(CONCURRENCY), sink.url], { ...brokerEnv, ID_PREFIX: 'warm-' }).done;
    await sink.reset();
  }
  let b0 = treeCpuMs(brokerPid);
  const c = contender(mode, [String(n), String(CONCURRENCY), sink.url], { ...brokerEnv, RATE: String(rate) }, drain ? () => (b0 = treeCpuMs(brokerPid)) : undefined);
  const r = await c.done;
  const s = await sink.stats();
  const broker = treeCpuMs(brokerPid) - b0;
  const rss = treeRss(brokerPid);
  sink.stop();
  return {
    throughput: (n / r.ms) * 1000,
    cpuPer1000: ((r.cpuMs + broker) / n) * 1000,
    p50: pct(s.latencies, 50),
    p99: pct(s.latencies, 99),
    ...(rate && { steadyP99: steadyP99(s) }),
    rssMb: rss / 1024 / 1024,
    note: `broker ${((broker / n) * 1000).toFixed(0)} + ${drain ? 'consumer' : 'client'} ${((r.cpuMs / n) * 1000).toFixed(0)}`,
  };
}

// ------------------------------------------------------------ main

interface Row {
  name: string;
  runs: Figures[];
  failed?: string;
}

async function repeat(name: string, run: () => Promise<Figures>, times = RUNS): Promise<Row> {
  const runs: Figures[] = [];
  try {
    for (let i = 0; i < times; i++) {
      runs.push(await run());
      console.error(`  ${name} run ${i + 1}: ${Math.round(runs.at(-1)!.throughput)} msgs/s, ${runs.at(-1)!.cpuPer1000.toFixed(0)} CPU-ms/1000`);
    }
  } catch (err) {
    return { name, runs, failed: (err as Error).message.split('\n')[0] };
  }
  return { name, runs };
}

/** Rows whose runs take turns, one run of each for `ROUNDS` rounds; a row whose run fails stops there and the others go on. */
async function interleaved(named: readonly (readonly [string, () => Promise<Figures>])[]): Promise<Row[]> {
  const rows: Row[] = named.map(([name]) => ({ name, runs: [] }));
  for (let i = 0; i < ROUNDS; i++) {
    // Each round starts one row further on, so that no row always runs
    // first (just after a row of another kind) or always last.
    for (let k = 0; k < named.length; k++) {
      const j = (i + k) % named.length;
      const [name, run] = named[j]!;
      const row = rows[j]!;
      if (row.failed) continue;
      try {
        row.runs.push(await run());
        console.error(`  ${name} run ${i + 1}: ${Math.round(row.runs.at(-1)!.throughput)} msgs/s, ${row.runs.at(-1)!.cpuPer1000.toFixed(0)} CPU-ms/1000`);
      } catch (err) {
        row.failed = (err as Error).message.split('\n')[0];
      }
    }
  }
  return rows;
}

function fmt(row: Row, ceiling: number): string {
  if (row.failed && row.runs.length === 0) return `| ${row.name} | could not run: ${row.failed} | | | | | | |`;
  const m = (f: (x: Figures) => number | undefined) => median(row.runs.map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x)));
  const tp = m((r) => r.throughput);
  const lat = row.runs.some((r) => r.p50 !== undefined) ? `${m((r) => r.p50).toFixed(1)} / ${m((r) => r.p99).toFixed(1)}${row.runs.some((r) => r.p999 !== undefined) ? ` / ${m((r) => r.p999).toFixed(1)}` : ''}` : '';
  const rss = row.runs.some((r) => r.rssMb !== undefined) ? `${m((r) => r.rssMb).toFixed(0)} MB` : '';
  const putBacks = row.runs.some((r) => r.putBacks !== undefined) ? String(Math.max(...row.runs.map((r) => r.putBacks ?? 0))) : '';
  const note = [row.runs[0]?.note, row.runs[0]?.writeP50 !== undefined ? `producer write p50 ${m((r) => r.writeP50).toFixed(2)} ms, p99 ${m((r) => r.writeP99).toFixed(1)} ms` : '', row.runs.some((r) => r.steadyP99 !== undefined) ? `p99 after the first second ${m((r) => r.steadyP99).toFixed(1)} ms` : '', row.failed ? `(${row.failed})` : ''].filter(Boolean).join('; ');
  return `| ${row.name} | ${Math.round(tp).toLocaleString('en')} | ${m((r) => r.cpuPer1000).toFixed(0)} | ${ceiling ? (tp / ceiling).toFixed(2) : ''} | ${lat} | ${rss} | ${putBacks} | ${note} |`;
}

/** The project's targets, checked against the medians of this run. */
function targets(rows: Row[]): string[] {
  const get = (name: string) => rows.find((r) => r.name === name && r.runs.length > 0);
  const m = (row: Row | undefined, f: (x: Figures) => number | undefined) => (row ? median(row.runs.map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x))) : NaN);
  const tp = (name: string) => m(get(name), (r) => r.throughput);
  const cpu = (name: string) => m(get(name), (r) => r.cpuPer1000);
  const out: string[] = [];
  const line = (target: string, ok: boolean, figures: string) => {
    if (!figures.includes('NaN')) out.push(`| ${target} | ${figures} | ${ok ? 'met' : '**missed**'} |`);
  };
  const f0 = (x: number) => Math.round(x).toLocaleString('en');
  const count = N.toLocaleString('en');
  const rabbit = (what: string) => `RabbitMQ${what}`;
  const bull = (what: string) => `BullMQ${what}`;
  for (const [what, spoold, bestOf, peerSuffix] of [
    ['drain', `spoold drain (${count} waiting at start), tmpfs`, PER_DESTINATION_ROWS.map((n) => perDestinationRow('drain', n)), ` drain (${count} queued at start)`],
    ['end to end', 'spoold end to end, spool on tmpfs', PER_DESTINATION_ROWS.map((n) => perDestinationRow('end to end', n)), ' (end to end)'],
  ] as const) {
    const best = Math.max(tp(spoold), ...bestOf.map(tp));
    line(`defaults, one destination, ${what}: within 10% of the best --per-destination`, tp(spoold) >= 0.9 * best, `${f0(tp(spoold))} vs best ${f0(best)} msgs/s`);
    line(`defaults, one destination, ${what}: ≥ RabbitMQ's and ≥ 1.5 × BullMQ's`, tp(spoold) >= tp(rabbit(peerSuffix)) && tp(spoold) >= 1.5 * tp(bull(peerSuffix)), `${f0(tp(spoold))} vs ${f0(tp(rabbit(peerSuffix)))} and 1.5 × ${f0(tp(bull(peerSuffix)))} msgs/s`);
  }
  const spooldRows = rows.filter((r) => r.name.startsWith('spoold') && r.runs.some((x) => x.putBacks !== undefined));
  const maxPutBacks = Math.max(0, ...spooldRows.flatMap((r) => r.runs.map((x) => x.putBacks ?? 0)));
  line('put-backs: 0 in every run (no destination dead or paused)', maxPutBacks === 0, `${maxPutBacks} at most, over ${spooldRows.length} rows`);
  for (const rate of [100, 500]) {
    const row = get(`spoold at ${rate} msgs/s, disk`);
    const peer = get(rabbit(` at ${rate} msgs/s`));
    line(`${rate} msgs/s: CPU per 1,000 ≤ RabbitMQ's, the daemon`, m(row, (r) => r.daemonPer1000) <= m(peer, (r) => r.cpuPer1000), `${f0(m(row, (r) => r.daemonPer1000))} vs ${f0(m(peer, (r) => r.cpuPer1000))} CPU-ms`);
    line(`${rate} msgs/s: CPU per 1,000 ≤ RabbitMQ's, the whole pipeline with enqueue()`, m(row, (r) => r.cpuPer1000) <= m(peer, (r) => r.cpuPer1000), `${f0(m(row, (r) => r.cpuPer1000))} vs ${f0(m(peer, (r) => r.cpuPer1000))} CPU-ms`);
  }
  // Whole run, and after its first second (a daemon started for the row
  // meets its first messages cold; the brokers have run the rows before).
  for (const [what, f] of [['', (r: Figures) => r.p99], [', after the first second', (r: Figures) => r.steadyP99]] as const) {
    const rabbit500 = m(get(rabbit(' at 500 msgs/s')), f);
    for (const name of ['spoold at 500 msgs/s, disk', 'spoold at 500 msgs/s, tmpfs', 'spoold at 500 msgs/s, write-file-atomic producers into incoming/, disk']) {
      const p99 = m(get(name), f);
      line(`p99${what} ≤ RabbitMQ's at 500 msgs/s and < 10 ms: ${name.replace('spoold at 500 msgs/s, ', '')}`, p99 <= rabbit500 && p99 < 10, `${p99.toFixed(1)} vs ${rabbit500.toFixed(1)} ms`);
    }
  }
  const weak = get('spoold, weak receiver (503 above 4 in flight), --min-backoff 1s');
  const refused = weak ? Number(/\(([\d.]+)%\)/.exec(weak.runs[0]?.note ?? '')?.[1]) : NaN;
  line('weak receiver: at most 20% of requests answered 503', refused <= 20, `${refused.toFixed(1)}%`);
  const clean = tp('spoold end to end, spool on tmpfs');
  const failing = tp('spoold, 30% 503 (first attempts), tmpfs');
  line('30% 503 on tmpfs: first attempts within 20% of the clean run', failing >= 0.8 * clean, `${f0(failing)} vs ${f0(clean)} msgs/s`);
  const big = rows.filter((r) => r.name.startsWith('spoold') && !r.name.includes('msgs/s') && !r.name.includes('weak'));
  const rss = Math.max(...big.map((r) => m(r, (x) => x.rssMb)).filter((x) => !Number.isNaN(x)));
  if (Number.isFinite(rss)) line(`peak RSS < 110 MB in the ${count}-message runs`, rss < 110, `${rss.toFixed(0)} MB at most`);
  return out;
}

async function main(): Promise<void> {
  const benchOn = benchDisk(arg('disk', '') || undefined);
  const disk = benchOn.dir;
  // The machine's own root (ext4 without a journal on this project's
  // machines, see disk.ts), when the disk rows run on the ext4 made for them.
  const root = benchOn.made ? os.tmpdir() : null;
  const tmpfs = arg('tmpfs', '/dev/shm');
  const rows: Row[] = [];
  const notes: string[] = [];
  const count = N.toLocaleString('en');
  if (want('fs')) {
    notes.push(`File-system cost per message, disk (${fileSystemName(disk)}): ${fsCosts(disk)}.`);
    if (root) notes.push(`File-system cost per message, the machine's root (${fileSystemName(root)}, no journal): ${fsCosts(root)}.`);
    notes.push(`File-system cost per message, tmpfs: ${fsCosts(tmpfs)}.`);
  }
  const ceiling = want('ceiling') ? await repeat('in-memory loop (ceiling, no durability)', runCeiling) : null;
  if (ceiling) rows.push(ceiling);
  for (const [label, dir] of [['tmpfs', tmpfs], ['disk', disk]] as const) {
    if (want('bare')) rows.push(await repeat(`bare in-process loop, same file operations, ${label}`, () => runBareLoop(dir)));
    // Rows compared with each other (the defaults against other settings,
    // the 30% 503 run against the clean one) take turns, one run each, so
    // that the machine's drift falls on all of them alike: run one after
    // another, the defaults' drain once came out at 0.74 x a setting that
    // alternating runs beside it found no faster.
    const perDestination = label === 'tmpfs' && want('perdest');
    rows.push(
      ...(await interleaved([
        ...(want('e2e') ? [[`spoold end to end, spool on ${label}`, () => runSpooldEndToEnd(dir)] as const] : []),
        ...(perDestination ? PER_DESTINATION_ROWS.map((n) => [perDestinationRow('end to end', n), () => runSpooldEndToEnd(dir, { extra: ['--per-destination', n] })] as const) : []),
        ...(want('503') ? [[`spoold, 30% 503 (first attempts), ${label}`, () => runSpooldEndToEnd(dir, { failShare: 0.3 })] as const] : []),
      ])),
    );
    if (want('batch')) rows.push(await repeat(`spoold end to end with enqueueMany(100), ${label}`, () => runSpooldEndToEnd(dir, { batch: 100 })));
    rows.push(
      ...(await interleaved([
        ...(want('drain') ? [[`spoold drain (${count} waiting at start), ${label}`, () => runSpooldDrain(dir)] as const] : []),
        ...(perDestination ? PER_DESTINATION_ROWS.map((n) => [perDestinationRow('drain', n), () => runSpooldDrain(dir, 0, ['--per-destination', n])] as const) : []),
      ])),
    );
    if (want('keep') && label === 'disk') {
      rows.push(await repeat(`spoold drain, --keep-delivered 1d, ${label}`, () => runSpooldDrain(dir, 0, ['--keep-delivered', '1d'])));
      rows.push(await repeat(`spoold end to end, --keep-delivered 1d, ${label}`, () => runSpooldEndToEnd(dir, { extra: ['--keep-delivered', '1d'] })));
    }
    if (want('shared')) {
      for (const n of [1, 2]) rows.push(await repeat(`spoold drain, ${n} daemon${n > 1 ? 's' : ''} --shared on one spool, ${label}`, () => runSpooldDrain(dir, n)));
    }
  }
  if (want('weak')) rows.push(await repeat('spoold, weak receiver (503 above 4 in flight), --min-backoff 1s', () => runSpooldEndToEnd(tmpfs, { messages: Math.min(N, 2000), weak: { capacity: 4, serviceMs: 20 }, extra: ['--min-backoff', '1s'] })));
  if (want('rates')) {
    for (const rate of RATES) rows.push(await repeat(`spoold at ${rate} msgs/s, disk`, () => runSpooldEndToEnd(disk, { rate, messages: Math.min(N, rate * RATE_SECONDS) })));
    rows.push(await repeat(`spoold at 500 msgs/s, disk, its first ${RATE_SECONDS} s after a start`, () => runSpooldEndToEnd(disk, { rate: 500, messages: Math.min(N, 500 * RATE_SECONDS), cold: true })));
    if (root) rows.push(await repeat("spoold at 500 msgs/s, the machine's root (ext4 without a journal)", () => runSpooldEndToEnd(root, { rate: 500, messages: Math.min(N, 500 * RATE_SECONDS) })));
    rows.push(await repeat('spoold at 500 msgs/s, tmpfs', () => runSpooldEndToEnd(tmpfs, { rate: 500, messages: Math.min(N, 500 * RATE_SECONDS) })));
    rows.push(await repeat('spoold at 500 msgs/s, write-file-atomic producers into incoming/, disk', () => runSpooldEndToEnd(disk, { rate: 500, messages: Math.min(N, 500 * RATE_SECONDS), producer: 'wfa' })));
  }
  const peers = async (name: string, mode: 'bullmq' | 'rabbit', within: <T>(base: string, work: (port: number, pid: number) => Promise<T>) => Promise<T>) => {
    const found = await within(disk, async (port, pid) => [
      await repeat(`${name} (end to end)`, () => runBroker(mode, port, pid)),
      await repeat(`${name} drain (${count} queued at start)`, () => runBroker(mode, port, pid, true)),
      ...(want('rates') ? await (async () => {
        const sweep: Row[] = [];
        for (const rate of RATES) sweep.push(await repeat(`${name} at ${rate} msgs/s`, () => runBroker(mode, port, pid, false, rate)));
        return sweep;
      })() : []),
    ]).catch((e: Error) => [{ name, runs: [], failed: e.message } as Row]);
    rows.push(...found);
  };
  if (want('bullmq')) await peers('BullMQ', 'bullmq', withRedis);
  if (want('rabbit')) await peers('RabbitMQ', 'rabbit', withRabbit);

  const base = ceiling ? median(ceiling.runs.map((r) => r.throughput)) : 0;
  const targetLines = targets(rows);
  const cpus = os.cpus();
  const table = [
    `Run ${new Date().toISOString().slice(0, 10)}: ${cpus.length} × ${cpus[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, disk ${fileSystemName(disk)} (${benchOn.label}), tmpfs ${tmpfs}; ${count} messages of about 1 KiB (rate rows: ${RATE_SECONDS} s at the rate, after ${WARM_MESSAGES.toLocaleString('en')} messages as fast as they come through the same daemon or broker), one destination, median of ${RUNS} runs (${ROUNDS}, taking turns, for the rows compared with each other). spoold runs its defaults unless the row says otherwise; the peers, their data on the same disk: BullMQ on Redis 7 (AOF everysec), RabbitMQ classic durable queue with publisher confirms, prefetch ${CONCURRENCY}; their clients keep ${CONCURRENCY} requests in flight.`,
    '',
    ...notes,
    '',
    '| contender | msgs/s | CPU-ms per 1,000 | × ceiling | latency p50 / p99 (/ p99.9) ms | peak RSS | put-backs | notes |',
    '|---|---:|---:|---:|---|---:|---:|---|',
    ...rows.map((r) => fmt(r, base)),
    ...(targetLines.length ? ['', 'Against the targets, from this run:', '', '| target | figures | |', '|---|---|---|', ...targetLines] : []),
  ].join('\n');
  console.log(table);
  if (process.argv.includes('--write-readme')) replaceReadmeSection('bench:compare', table);
  benchOn.close();
}

await main();
