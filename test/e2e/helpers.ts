/**
 * End-to-end harness: a real spool in a temporary directory, the real
 * bin/spoold as a child process, and a real node:http server on 127.0.0.1.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SPOOLD = path.join(ROOT, 'bin/spoold');
export const SPOOLCTL = path.join(ROOT, 'bin/spoolctl');

/** A spool path in a fresh temporary folder under `base` (the file system to try; the system's temporary folder by default), removed by cleanup(). */
export function tempSpool(base = os.tmpdir()): string {
  return path.join(tempDir('spoold-test-', base), 'spool');
}

/** A fresh temporary folder, removed by cleanup(). */
export function tempDir(prefix = 'spoold-test-', base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, prefix));
  live.dirs.add(dir);
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, probe: () => T | undefined | null | false, timeout = 10_000, every = 25): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

// ------------------------------------------------------------- clean-up

const live = { daemons: new Set<Daemon>(), sinks: new Set<Sink>(), dirs: new Set<string>() };

/** For afterEach: whatever a test left running is stopped, so the run ends, and its folders are removed. */
export async function cleanup(): Promise<void> {
  await Promise.all([...live.daemons].map((d) => d.stop('SIGKILL')));
  await Promise.all([...live.sinks].map((s) => s.close()));
  for (const dir of live.dirs) fs.rmSync(dir, { recursive: true, force: true });
  live.daemons.clear();
  live.sinks.clear();
  live.dirs.clear();
}

// ---------------------------------------------------------------- the sink

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

export type Handler = (req: Received, res: http.ServerResponse) => void;

export interface Sink {
  url: string;
  received: Received[];
  /** Requests whose body has arrived, by idempotency key. */
  byId(id: string): Received[];
  handler: Handler;
  close(): Promise<void>;
}

export async function startSink(handler: Handler = (_req, res) => res.end('ok'), port = 0): Promise<Sink> {
  const received: Received[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const sink: Sink = {
    url: '',
    received,
    byId: (id) => received.filter((r) => r.headers['idempotency-key'] === id),
    handler,
    close: () =>
      new Promise((resolve) => {
        live.sinks.delete(sink);
        for (const s of sockets) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
  live.sinks.add(sink);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      received.push(r);
      sink.handler(r, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      live.sinks.delete(sink);
      reject(err);
    });
    server.listen(port, '127.0.0.1', resolve);
  });
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return sink;
}

// -------------------------------------------------------------- the daemon

export interface LogLine {
  event?: string;
  id?: string;
  [key: string]: unknown;
}

export interface Daemon {
  child: ChildProcess;
  lines: LogLine[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  events(event: string, id?: string): LogLine[];
  waitEvent(event: string, id?: string, timeout?: number): Promise<LogLine>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Fast settings for tests; each test overrides what it is about. */
export const FAST = ['--min-backoff', '200ms', '--max-backoff', '1s', '--scan-interval', '300ms', '--timeout', '3s'];

export interface DaemonOptions {
  /** Wait for the "started" line (default true; needs log level info). */
  ready?: boolean;
  /** Run under `ulimit -n`. */
  maxFiles?: number;
  /** An executable standing in for node (e.g. a wrapper dropping privileges). */
  runAs?: string;
  env?: NodeJS.ProcessEnv;
}

export async function startDaemon(spool: string, args: string[] = [], opts: DaemonOptions = {}): Promise<Daemon> {
  const argv = [opts.runAs ?? process.execPath, SPOOLD, 'start', '--spool', spool, ...FAST, ...args];
  const options = { stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[], env: { ...process.env, ...opts.env } };
  const child =
    opts.maxFiles === undefined
      ? spawn(argv[0]!, argv.slice(1), options)
      : spawn('sh', ['-c', `ulimit -n ${opts.maxFiles} && exec "$@"`, 'sh', ...argv], options);
  const lines: LogLine[] = [];
  let buffer = '';
  const d: Daemon = {
    child,
    lines,
    stderr: '',
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.daemons.delete(d);
        resolve({ code, signal });
      }),
    ),
    events: (event, id) => lines.filter((l) => l.event === event && (id === undefined || l.id === id)),
    waitEvent: (event, id, timeout = 10_000) => waitFor(`event ${event}${id ? ` for ${id}` : ''}`, () => d.events(event, id)[0], timeout),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return d.exited;
    },
  };
  live.daemons.add(d);
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        lines.push({ event: 'unparsed', text: line });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (d.stderr += chunk.toString('utf8')));
  if (opts.ready !== false) {
    // "started" is logged before the watcher is up; a message dropped in that
    // gap is still found by the first scan, so this is only for pacing.
    await Promise.race([
      d.waitEvent('started'),
      d.exited.then((e) => {
        throw new Error(`spoold exited early (${e.code}): ${d.stderr}`);
      }),
    ]);
  }
  return d;
}

// ------------------------------------------------------------ the spool

/**
 * Installs Debian packages when a test needs them (a fresh root machine):
 * waits for the package manager's lock (up to 5 minutes) rather than failing
 * while another apt or unattended-upgrades runs.
 */
export function aptInstall(packages: string[]): boolean {
  if (process.getuid?.() !== 0 || spawnSync('sh', ['-c', 'command -v apt-get']).status !== 0) return false;
  const apt = `DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq`;
  const r = spawnSync('sh', ['-c', `${apt} install ${packages.join(' ')} >/dev/null 2>&1 || (${apt} update && ${apt} install ${packages.join(' ')}) >/dev/null 2>&1`]);
  return r.status === 0;
}

/** Installs a Debian package when its command is missing (the machine may be new); true when the command is there after. */
export function ensureCommand(command: string, pkg: string): boolean {
  const has = () => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (has()) return true;
  aptInstall([pkg]);
  return has();
}

/**
 * For the tests of the calling file: test/unit/close-fails-fs.py, a real
 * FUSE file system of one file (`record`) whose close(2) fails, mounted at
 * `mnt` in a temporary `base` before them, unmounted and removed after.
 * Needs root and /dev/fuse, which this project's machines and CI have:
 * missing, it fails, never skips.
 */
export function withCloseFailsFs(prefix: string): { base: string; mnt: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const mnt = path.join(base, 'mnt');
  const python = '/usr/bin/python3';
  const hasPyfuse3 = () => spawnSync(python, ['-c', 'import pyfuse3, trio'], { stdio: 'ignore' }).status === 0;
  const mounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
  let fuse: ChildProcess | null = null;
  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('mounting a FUSE file system needs root');
    if (!fs.existsSync('/dev/fuse')) throw new Error('no /dev/fuse');
    if (!hasPyfuse3()) aptInstall(['python3-pyfuse3', 'fuse3']);
    if (!hasPyfuse3()) throw new Error('python3-pyfuse3 could not be installed');
    fs.mkdirSync(mnt);
    fuse = spawn(python, [path.join(ROOT, 'test/unit/close-fails-fs.py'), mnt], { stdio: 'ignore' });
    await waitFor('the FUSE file system mounted', mounted, 10_000, 20);
  });
  after(async () => {
    spawnSync('umount', ['-l', mnt]);
    if (fuse && fuse.exitCode === null) await new Promise((r) => (fuse!.once('exit', r), fuse!.kill('SIGKILL')));
    fs.rmSync(base, { recursive: true, force: true });
  });
  return { base, mnt };
}

/** Maildir-style drop, as any language would do it: write in tmp/, rename into incoming/. */
export function drop(spool: string, id: string, message: unknown): void {
  const tmp = path.join(spool, 'tmp', `${id}.json`);
  fs.writeFileSync(tmp, typeof message === 'string' ? message : JSON.stringify(message));
  fs.renameSync(tmp, path.join(spool, 'incoming', `${id}.json`));
}

/** The spool's lock as the daemon left it (see src/lock.ts): the highest generation's holder, or null. */
export function lockState(spool: string): { pid: number; released: boolean } | null {
  const top = fs.readdirSync(spool).filter((n) => /^spoold\.lock\.\d+$/.test(n)).sort((a, b) => Number(a.slice(12)) - Number(b.slice(12))).at(-1);
  if (!top) return null;
  const m = /^(released )?(\d+)/.exec(fs.readFileSync(path.join(spool, top), 'utf8'));
  return m ? { pid: Number(m[2]), released: m[1] !== undefined } : null;
}

/** Every file under a queue folder (deferred/ buckets included), by name. */
export function filesIn(spool: string, queue: string): string[] {
  const names: string[] = [];
  // The daemon may remove a folder while we read it (an empty bucket, a finished ordering line).
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const d of entries) {
      if (d.name.startsWith('.')) continue;
      // A directory named like a message (x.json) is a message too: it was bounced whole.
      if (!d.isDirectory() || d.name.endsWith('.json')) names.push(d.name);
      if (d.isDirectory()) walk(path.join(dir, d.name));
    }
  };
  walk(path.join(spool, queue));
  return names.sort();
}

/** Ids of the messages in a queue (the name's last field). */
export function idsIn(spool: string, queue: string): string[] {
  return filesIn(spool, queue)
    .filter((n) => n.endsWith('.json'))
    .map((n) => (queue === 'incoming' ? n.slice(0, -5) : n.replace(/^(?:[^_]*_){5}/, '').slice(0, -5)))
    .sort();
}

export function spoolctl(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SPOOLCTL, ...args], { encoding: 'utf8', input: opts.input ?? '', env: { ...process.env, ...opts.env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function ensureSpoolDirs(spool: string): void {
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) fs.mkdirSync(path.join(spool, q), { recursive: true });
}

/**
 * Root ignores file modes, so tests about permissions run the daemon as
 * nobody: hands `base` (and what is below it) to nobody and returns a
 * wrapper to pass as `runAs`. Not root: undefined (the daemon runs as us).
 */
export function asNobody(base: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  execFileSync('chown', ['-R', 'nobody:nogroup', base]);
  fs.chmodSync(base, 0o755);
  const wrapper = path.join(base, 'as-nobody');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups ${process.execPath} "$@"\n`, { mode: 0o755 });
  return wrapper;
}
