/**
 * Scenario 4: the operating system says no. A full file system, few file
 * descriptors, a queue folder the daemon may not write, a clock that steps.
 * The daemon must degrade (stop claiming, log loudly, retry) and recover by
 * itself once the condition clears, losing nothing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { aptInstall, asNobody, ensureSpoolDirs, startDaemon, tempSpool, waitFor, type Daemon } from '../e2e/helpers.js';
import { countingSink, quickDrop, snapshot, sleep, type Outcome } from './common.js';

interface Part {
  name: string;
  pass: boolean | null; // null: could not run here
  text: string;
}

async function routedSink(route: (url: string) => number): Promise<{ url: string; ok: Map<string, number>; close(): Promise<void> }> {
  const ok = new Map<string, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = route(req.url ?? '/');
      if (status < 300) {
        const id = String(req.headers['idempotency-key']);
        ok.set(id, (ok.get(id) ?? 0) + 1);
      }
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ok, close: () => new Promise((r) => server.close(() => r())) };
}

/** The spool on a 4 MiB tmpfs that is filled to the brim, then emptied. */
async function fullDisk(): Promise<Part> {
  const name = 'full file system';
  const mountpoint = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-small-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountpoint], { encoding: 'utf8' });
  if (mount.status !== 0) return { name, pass: null, text: `not run: cannot mount a size-limited tmpfs here (${(mount.stderr || 'mount failed').trim()})` };
  let daemon: Daemon | null = null;
  let healthy = false;
  const sink = await routedSink((u) => (u.startsWith('/bounce') ? 404 : u.startsWith('/defer') && !healthy ? 503 : 200));
  try {
    const spool = path.join(mountpoint, 'spool');
    ensureSpoolDirs(spool);
    daemon = await startDaemon(spool, ['--min-backoff', '300ms', '--max-backoff', '600ms']);
    const ids = { ok: [] as string[], bounce: [] as string[], defer: [] as string[] };
    // Staged before the disk fills: a rename needs no free space.
    for (let i = 0; i < 30; i++) {
      const kind = (['ok', 'bounce', 'defer'] as const)[i % 3]!;
      fs.writeFileSync(path.join(spool, 'tmp', `${kind}-${i}.json`), JSON.stringify({ url: `${sink.url}/${kind}` }));
      ids[kind].push(`${kind}-${i}`);
    }
    const filler = path.join(mountpoint, 'filler');
    const fd = fs.openSync(filler, 'w');
    // Keep the disk full: every delivered message's unlink frees a page, and
    // the filler takes it back at once.
    const fill = (block: Buffer) => {
      try {
        for (;;) fs.writeSync(fd, block);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    };
    fill(Buffer.alloc(64 * 1024));
    const page = Buffer.alloc(4096);
    const topUp = setInterval(() => fill(page), 2);
    for (const kind of ['ok', 'bounce', 'defer'] as const) for (const id of ids[kind]) fs.renameSync(path.join(spool, 'tmp', `${id}.json`), path.join(spool, 'incoming', `${id}.json`));
    const d = daemon;
    await waitFor('the daemon notices', () => d.events('move-failed').length > 0 || d.events('spool-degraded').length > 0, 15_000).catch(() => undefined);
    await sleep(2000);
    const degraded = d.events('spool-degraded').length + d.events('move-failed').length;
    clearInterval(topUp);
    fs.closeSync(fd);
    fs.unlinkSync(filler);
    healthy = true;
    await waitFor('recovered', () => ids.ok.every((id) => sink.ok.has(id)) && ids.defer.every((id) => sink.ok.has(id)) && ids.bounce.every((id) => snapshot(spool).get(id)?.includes('bounced')), 30_000).catch(() => undefined);
    const left = snapshot(spool);
    const delivered = [...ids.ok, ...ids.defer].filter((id) => sink.ok.has(id)).length;
    const bounced = ids.bounce.filter((id) => left.get(id)?.includes('bounced')).length;
    const lost = [...ids.ok, ...ids.defer, ...ids.bounce].filter((id) => !sink.ok.has(id) && !left.has(id)).length;
    const up = d.child.exitCode === null;
    const recovered = d.events('spool-writable').length > 0 || degraded === 0;
    const pass = up && lost === 0 && delivered === 20 && bounced === 10 && degraded > 0 && recovered;
    return { name, pass, text: `4 MiB tmpfs filled: ${degraded} failed-move/degraded lines, claiming paused; after space was freed: ${delivered}/20 delivered, ${bounced}/10 bounced with their reasons, lost ${lost}, daemon up ${up}` };
  } finally {
    await daemon?.stop();
    await sink.close();
    spawnSync('umount', ['-l', mountpoint]);
    fs.rmSync(mountpoint, { recursive: true, force: true });
  }
}

/** `ulimit -n 64` with 64 requests allowed in flight. */
async function fewDescriptors(messages: number): Promise<Part> {
  const sink = await countingSink(0, { delayMs: 20 });
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const daemon = await startDaemon(spool, ['--concurrency', '64', '--per-destination', '64', '--log-level', 'warn'], { maxFiles: 64, ready: false });
  try {
    for (let i = 0; i < messages; i++) quickDrop(spool, `fd-${i}`, { url: `${sink.url}/x` });
    const done = await waitFor('all delivered', () => sink.delivered.size >= messages, 120_000, 100).then(() => true, () => false);
    const errors = daemon.lines.filter((l) => ['spool-error', 'read-failed', 'watch-error'].includes(String(l.event))).length;
    const bounced = daemon.events('bounced').length;
    const up = daemon.child.exitCode === null;
    const room = daemon.events('descriptors-short')[0]?.room ?? 'not';
    return { name: 'few file descriptors', pass: done && bounced === 0 && up, text: `ulimit -n 64, concurrency 64 (capped at ${room}): ${sink.delivered.size}/${messages} delivered, ${bounced} bounced, ${errors} error lines (EMFILE), daemon up ${up}` };
  } finally {
    await daemon.stop();
    await sink.close();
  }
}

/** deferred/ made read-only under a daemon that is not root. */
async function permissionDenied(): Promise<Part> {
  const name = 'permission denied on a queue folder';
  let healthy = false;
  const sink = await routedSink(() => (healthy ? 200 : 503));
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-perm-'));
  const spool = path.join(base, 'spool');
  ensureSpoolDirs(spool);
  // Root ignores permissions: the daemon runs as nobody for this part.
  const runAs = asNobody(base);
  const daemon = await startDaemon(spool, ['--min-backoff', '300ms', '--max-backoff', '600ms'], { ...(runAs && { runAs }) });
  try {
    const ids = Array.from({ length: 20 }, (_, i) => `p-${i}`);
    fs.chmodSync(path.join(spool, 'deferred'), 0o500);
    for (const id of ids) {
      fs.writeFileSync(path.join(spool, 'incoming', `${id}.json`), JSON.stringify({ url: `${sink.url}/x` }));
    }
    await waitFor('degraded', () => daemon.events('spool-degraded').length > 0 || daemon.events('move-failed').length > 0, 15_000).catch(() => undefined);
    await sleep(1500);
    const failed = daemon.events('move-failed').length;
    const degraded = daemon.events('spool-degraded').length;
    fs.chmodSync(path.join(spool, 'deferred'), 0o700);
    healthy = true;
    const done = await waitFor('all delivered', () => ids.every((id) => sink.ok.has(id)), 30_000).then(() => true, () => false);
    const up = daemon.child.exitCode === null;
    const lost = ids.filter((id) => !sink.ok.has(id) && !snapshot(spool).has(id)).length;
    return {
      name,
      pass: done && up && lost === 0 && failed > 0 && daemon.events('spool-writable').length > 0,
      text: `deferred/ read-only for the daemon (running as ${runAs ? 'nobody' : 'this user'}): ${failed} failed moves, ${degraded} degraded lines, claiming paused; after chmod back: ${ids.filter((id) => sink.ok.has(id)).length}/20 delivered, lost ${lost}, daemon up ${up}`,
    };
  } finally {
    await daemon.stop();
    await sink.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** The wall clock stepped back and forth (libfaketime) between attempts. */
async function clockSteps(): Promise<Part> {
  const name = 'clock steps';
  const candidates = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'];
  if (!candidates.some((p) => fs.existsSync(p))) aptInstall(['faketime']);
  const lib = candidates.find((p) => fs.existsSync(p));
  if (!lib) return { name, pass: null, text: 'not run: libfaketime is not installed (apt-get install faketime)' };
  const control = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-clock-')), 'offset');
  fs.writeFileSync(control, '+0\n');
  let healthy = false;
  const sink = await routedSink(() => (healthy ? 200 : 503));
  const spool = tempSpool();
  const daemon = await startDaemon(spool, ['--min-backoff', '2s', '--max-backoff', '2s', '--scan-interval', '300ms', '--dead-after', '0'], {
    ready: false,
    env: { LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: control, FAKETIME_NO_CACHE: '1', DONT_FAKE_MONOTONIC: '1' },
  });
  try {
    await sleep(800);
    const back = Array.from({ length: 10 }, (_, i) => `back-${i}`);
    for (const id of back) quickDrop(spool, id, { url: `${sink.url}/x` });
    await waitFor('deferred', () => back.every((id) => daemon.events('deferred', id).length > 0), 10_000);
    fs.writeFileSync(control, '-10s\n'); // 10 s back: retries due in 2 s now wait 12 s
    healthy = true;
    const t0 = Date.now();
    const delivered = await waitFor('delivered after the step back', () => back.every((id) => sink.ok.has(id)), 30_000).then(() => true, () => false);
    const waited = Date.now() - t0;
    healthy = false;
    const fwd = Array.from({ length: 10 }, (_, i) => `fwd-${i}`);
    for (const id of fwd) quickDrop(spool, id, { url: `${sink.url}/x` });
    await waitFor('deferred', () => fwd.every((id) => daemon.events('deferred', id).length > 0), 10_000);
    healthy = true;
    fs.writeFileSync(control, '+1h\n');
    const t1 = Date.now();
    const deliveredFwd = await waitFor('delivered after the step forward', () => fwd.every((id) => sink.ok.has(id)), 30_000).then(() => true, () => false);
    const early = Date.now() - t1;
    const steps = daemon.events('clock-stepped').map((l) => Number(l.stepMs));
    const up = daemon.child.exitCode === null;
    const lost = [...back, ...fwd].filter((id) => !sink.ok.has(id) && !snapshot(spool).has(id)).length;
    return {
      name,
      pass: delivered && deliveredFwd && up && lost === 0 && steps.some((s) => s < -5000) && steps.some((s) => s > 3_000_000),
      text: `stepped back 10 s: retries due in 2 s came after ${(waited / 1000).toFixed(1)} s (the step is added, as documented); stepped forward 1 h: came due at once (${(early / 1000).toFixed(1)} s); steps logged: ${steps.map((s) => `${Math.round(s / 1000)} s`).join(', ')}; lost ${lost}, daemon up ${up}`,
    };
  } finally {
    await daemon.stop();
    await sink.close();
    fs.rmSync(path.dirname(control), { recursive: true, force: true });
  }
}

/**
 * The wall clock ten years behind (a machine whose clock starts in the past),
 * then corrected: once while the daemon runs, once while it is stopped. Also
 * stepped back an hour: fresh failures and flushed messages still go on time.
 */
async function clockCorrected(): Promise<Part> {
  const name = 'clock corrected';
  const lib = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => fs.existsSync(p));
  if (!lib) return { name, pass: null, text: 'not run: libfaketime is not installed (apt-get install faketime)' };
  const control = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-clock-')), 'offset');
  let healthy = false;
  const sink = await routedSink(() => (healthy ? 200 : 503));
  const spool = tempSpool();
  const env = { LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: control, FAKETIME_NO_CACHE: '1', DONT_FAKE_MONOTONIC: '1' };
  const args = ['--min-backoff', '1s', '--max-backoff', '1s', '--scan-interval', '300ms', '--dead-after', '0'];
  const texts: string[] = [];
  let pass = true;
  const fail = (msg: string) => ((pass = false), texts.push(`FAILED ${msg}`));
  try {
    // 1. Corrected while running.
    fs.writeFileSync(control, '-3650d\n');
    let daemon = await startDaemon(spool, args, { ready: false, env });
    await sleep(800);
    const running = Array.from({ length: 10 }, (_, i) => `run-${i}`);
    for (const id of running) quickDrop(spool, id, { url: `${sink.url}/x` });
    await waitFor('deferred', () => running.every((id) => daemon.events('deferred', id).length > 0), 10_000);
    fs.writeFileSync(control, '+0\n');
    healthy = true;
    const ok1 = await waitFor('delivered after the correction', () => running.every((id) => sink.ok.has(id)), 20_000).then(() => true, () => false);
    const bounced1 = running.filter((id) => daemon.events('bounced', id).length > 0).length;
    if (!ok1 || bounced1 > 0) fail(`corrected while running: delivered ${running.filter((id) => sink.ok.has(id)).length}/10, bounced ${bounced1}`);
    else texts.push('ten years behind, corrected while running: 10/10 delivered, none bounced as expired');
    // 2. Stepped back an hour: a fresh failure and a flushed message go on time.
    healthy = false;
    fs.writeFileSync(control, '-1h\n');
    await sleep(1000);
    quickDrop(spool, 'after-back', { url: `${sink.url}/x` });
    await waitFor('deferred', () => daemon.events('deferred', 'after-back').length > 0, 10_000);
    healthy = true;
    const t0 = Date.now();
    const ok2 = await waitFor('retried on time after the step back', () => sink.ok.has('after-back'), 10_000).then(() => true, () => false);
    if (!ok2) fail('stepped back 1 h: a fresh failure was not retried');
    else texts.push(`stepped back 1 h: a fresh failure retried after ${((Date.now() - t0) / 1000).toFixed(1)} s (back-off 1 s)`);
    await daemon.stop();
    // 3. Corrected while stopped.
    healthy = false;
    fs.writeFileSync(control, '-3650d\n');
    daemon = await startDaemon(spool, args, { ready: false, env });
    await sleep(800);
    const stopped = Array.from({ length: 10 }, (_, i) => `stop-${i}`);
    for (const id of stopped) quickDrop(spool, id, { url: `${sink.url}/x` });
    await waitFor('deferred', () => stopped.every((id) => daemon.events('deferred', id).length > 0), 10_000);
    await daemon.stop();
    healthy = true;
    daemon = await startDaemon(spool, args, { ready: false });
    const ok3 = await waitFor('delivered after a restart on the right clock', () => stopped.every((id) => sink.ok.has(id)), 20_000).then(() => true, () => false);
    const bounced3 = stopped.filter((id) => daemon.events('bounced', id).length > 0).length;
    const seen = daemon.events('clock-stepped').some((l) => l.whileStopped === true);
    if (!ok3 || bounced3 > 0 || !seen) fail(`corrected while stopped: delivered ${stopped.filter((id) => sink.ok.has(id)).length}/10, bounced ${bounced3}, step seen ${seen}`);
    else texts.push('ten years behind, corrected while stopped: the step seen at start, 10/10 delivered, none bounced');
    await daemon.stop();
  } finally {
    await sink.close();
    fs.rmSync(path.dirname(control), { recursive: true, force: true });
  }
  return { name, pass, text: texts.join('; ') };
}

export async function osLimits(opts: { fdMessages: number }): Promise<Outcome> {
  const parts: Part[] = [];
  for (const run of [fullDisk, () => fewDescriptors(opts.fdMessages), permissionDenied, clockSteps, clockCorrected]) {
    try {
      parts.push(await run());
    } catch (err) {
      parts.push({ name: run.name, pass: false, text: `failed to run: ${(err as Error).message}` });
    }
  }
  return {
    scenario: '4. operating-system limits',
    pass: parts.every((p) => p.pass !== false),
    figures: parts.map((p) => `${p.name}: ${p.pass === null ? '' : p.pass ? '' : 'FAILED: '}${p.text}`).join(' — '),
  };
}
