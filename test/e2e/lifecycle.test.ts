/**
 * The daemon's life: restarts with deferred messages, kill -9 mid-flight,
 * SIGTERM while sending, the one-daemon-per-spool lock.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { asNobody, cleanup, drop, ensureSpoolDirs, idsIn, lockState, ROOT, sleep, SPOOLD, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

afterEach(cleanup);

describe('lifecycle', () => {
  it('keeps deferred messages across a restart and sends none before its time', async () => {
    let healthy = false;
    const sink = await startSink((_req, res) => res.writeHead(healthy ? 200 : 503).end());
    const spool = tempSpool();
    let daemon = await startDaemon(spool, ['--min-backoff', '2s', '--max-backoff', '2s']);
    const ids = Array.from({ length: 5 }, (_, i) => `later-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook` });
    await waitFor('all deferred', () => ids.every((id) => daemon.events('deferred', id).length === 1));
    const due = new Map(ids.map((id) => [id, Date.parse(String(daemon.events('deferred', id)[0]!.nextAttemptAt))]));
    assert.equal((await daemon.stop()).code, 0);
    assert.deepEqual(idsIn(spool, 'deferred'), [...ids].sort());

    healthy = true;
    daemon = await startDaemon(spool, ['--min-backoff', '2s', '--max-backoff', '2s']);
    try {
      await waitFor('all delivered after restart', () => ids.every((id) => daemon.events('delivered', id).length === 1), 10_000);
      for (const id of ids) {
        const sends = sink.byId(id);
        assert.equal(sends.length, 2, `${id}: one failed attempt, one delivery`);
        assert.ok(sends[1]!.at >= due.get(id)!, `${id} was not sent before its next-attempt time`);
      }
      assert.deepEqual(idsIn(spool, 'deferred'), []);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('loses nothing when killed with SIGKILL while requests are in flight', async () => {
    let answering = false;
    const held: import('node:http').ServerResponse[] = [];
    const sink = await startSink((_req, res) => {
      if (answering) res.end('ok');
      else held.push(res);
    });
    const spool = tempSpool();
    let daemon = await startDaemon(spool, ['--concurrency', '8', '--per-destination', '8', '--timeout', '30s']);
    const ids = Array.from({ length: 30 }, (_, i) => `k9-${i}`);
    for (const id of ids) drop(spool, id, { url: `${sink.url}/hook`, body: { id } });
    // A destination starts at a window of 5 (slow start): the receiver never answers, so it stays there.
    await waitFor('5 requests in flight', () => held.length === 5);
    assert.equal((await daemon.stop('SIGKILL')).signal, 'SIGKILL');
    const inFlight = held.map((res) => String(res.req.headers['idempotency-key']));
    const inActive = idsIn(spool, 'active');
    assert.ok(inActive.length >= 5, 'claimed messages were left in active/');
    for (const id of inFlight) assert.ok(inActive.includes(id), `${id} (in flight) is in active/`);
    for (const res of held) res.destroy();

    answering = true;
    daemon = await startDaemon(spool);
    try {
      await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1), 15_000);
      assert.equal(daemon.events('recovered').length, inActive.length);
      // The one-line summary of what it found at start.
      const started = daemon.events('started')[0]!;
      assert.equal(started.recovered, inActive.length);
      assert.deepEqual(Object.keys(started.queues as object).sort(), ['bounced', 'deferred', 'hold', 'incoming']);
      assert.equal((started.queues as { deferred: number }).deferred + (started.queues as { incoming: number }).incoming, ids.length, 'the recovered ones are deferred, the rest still incoming');
      for (const id of ids) assert.ok(sink.byId(id).some((r) => JSON.parse(r.body).id === id));
      const repeats = ids.filter((id) => sink.byId(id).length > 1);
      assert.deepEqual(repeats.sort(), [...inFlight].sort(), 'only the requests in flight at the kill were sent twice');
      for (const q of ['incoming', 'active', 'deferred', 'bounced']) assert.deepEqual(idsIn(spool, q), [], `${q}/ is empty`);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('on SIGTERM stops claiming, lets requests in flight finish, strands nothing and exits 0', async () => {
    const sink = await startSink((_req, res) => setTimeout(() => res.end('ok'), 1500));
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--concurrency', '2', '--per-destination', '2']);
    for (let i = 0; i < 6; i++) drop(spool, `term-${i}`, { url: `${sink.url}/slow` });
    await waitFor('two requests in flight', () => sink.received.length === 2 || undefined, 5000, 10).catch(() => undefined);
    await waitFor('claimed', () => idsIn(spool, 'active').length >= 2);
    const t0 = Date.now();
    const exit = await daemon.stop('SIGTERM');
    const took = Date.now() - t0;
    try {
      assert.equal(exit.code, 0, daemon.stderr);
      assert.ok(took < 10_000, `exited in ${took} ms`);
      assert.equal(daemon.events('delivered').length, 2, 'the two in flight finished');
      assert.deepEqual(idsIn(spool, 'active'), [], 'nothing stranded in active/');
      const left = [...idsIn(spool, 'incoming'), ...idsIn(spool, 'deferred')];
      assert.equal(left.length, 4, 'the rest wait on disk');
      assert.equal(lockState(spool)?.released, true, 'lock released');
    } finally {
      await sink.close();
    }
  });

  it('cuts requests that outlast the grace period and defers them, still exiting 0', async () => {
    const sink = await startSink(() => undefined); // never answers
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--shutdown-grace', '500ms', '--timeout', '60s']);
    drop(spool, 'stuck', { url: `${sink.url}/never` });
    await waitFor('request in flight', () => sink.received.length === 1);
    const exit = await daemon.stop('SIGINT');
    try {
      assert.equal(exit.code, 0);
      assert.deepEqual(idsIn(spool, 'deferred'), ['stuck']);
      assert.deepEqual(idsIn(spool, 'active'), []);
    } finally {
      await sink.close();
    }
  });

  it('stops cleanly on a SIGTERM that arrives while it is still starting', async () => {
    const spool = tempSpool();
    const daemon = await startDaemon(spool, [], { ready: false });
    await daemon.waitEvent('lock-taken');
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.stderr);
    assert.equal(lockState(spool)?.released, true, 'lock released');
  });

  it('refuses a second daemon on the same spool, and takes over a lock left by a killed one', async () => {
    const spool = tempSpool();
    const first = await startDaemon(spool);
    try {
      const second = spawnSync(process.execPath, [SPOOLD, 'start', '--spool', spool], { encoding: 'utf8', timeout: 10_000 });
      assert.notEqual(second.status, 0);
      assert.match(second.stderr, /already running/);
    } finally {
      await first.stop('SIGKILL');
    }
    assert.equal(lockState(spool)?.released, false, 'a killed daemon leaves its lock');
    const third = await startDaemon(spool);
    try {
      assert.equal(third.events('lock-taken').length, 1);
      assert.equal((await third.stop()).code, 0);
    } finally {
      await third.stop();
    }
  });

  it('of several starting at once over a dead daemon\'s lock, exactly one takes it', async () => {
    // The lock alone, raced by small processes released at one instant: a daemon
    // start spreads them over tens of ms, these over microseconds.
    const racer = `
      const [root, at] = process.argv.slice(1);
      const { acquireLock } = await import(${JSON.stringify(path.join(ROOT, 'dist/spool/lock.js'))});
      while (Date.now() < Number(at)) {}
      let won = false;
      try { acquireLock(root, root + '/tmp'); won = true; } catch (e) { if (e.code !== 'SPOOL_ERR_LOCKED') throw e; }
      console.log(won ? 'won' : 'lost');
      // Alive, holding whatever it took, until every racer has answered.
      process.stdin.resume();
      await new Promise((r) => process.stdin.on('end', r));`;
    let rounds = 0;
    const winners: number[] = [];
    for (; rounds < 12; rounds++) {
      const spool = tempSpool();
      ensureSpoolDirs(spool);
      fs.writeFileSync(path.join(spool, 'spoold.lock.7'), '999998 42\n'); // held by a daemon that is gone
      const at = Date.now() + 200;
      const children = Array.from({ length: 5 }, () => spawn(process.execPath, ['--input-type=module', '-e', racer, spool, String(at)], { stdio: ['pipe', 'pipe', 'inherit'] }));
      const runs = await Promise.all(
        children.map((child) => {
          let out = '';
          return new Promise<string>((resolve) => {
            child.stdout.on('data', (c: Buffer) => {
              out += c.toString('utf8');
              if (out.includes('\n')) resolve(out.trim());
            });
            child.on('exit', () => resolve(out.trim()));
          });
        }),
      );
      for (const child of children) child.stdin.end();
      await Promise.all(children.map((child) => new Promise((r) => (child.exitCode === null ? child.on('exit', r) : r(null)))));
      winners.push(runs.filter((r) => r === 'won').length);
    }
    assert.deepEqual(winners, new Array(rounds).fill(1), 'one winner per round');
  });

  it('fits its concurrency to a low open-files limit and delivers without running out of descriptors', async () => {
    let inFlight = 0;
    let peak = 0;
    const sink = await startSink((_req, res) => {
      peak = Math.max(peak, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    });
    const spool = tempSpool();
    // 64 descriptors: Node's start-up (about 20 held, more while the module
    // graph loads in parallel) fits; 64 requests in flight do not.
    const daemon = await startDaemon(spool, ['--concurrency', '64', '--per-destination', '64'], { maxFiles: 64 });
    try {
      const short = daemon.events('descriptors-short');
      assert.equal(short.length, 1, 'the cap is announced');
      assert.equal(short[0]!.limit, 64);
      const room = Number(short[0]!.room);
      assert.ok(room >= 8 && room < 64 - Number(short[0]!.open), `room ${room} for requests`);
      const ids = Array.from({ length: 300 }, (_, i) => `fd-${i}`);
      for (const id of ids) drop(spool, id, { url: `${sink.url}/x` });
      await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1), 30_000);
      assert.ok(peak <= room && peak > 1, `at most ${room} requests in flight (${peak})`);
      const troubles = daemon.lines.filter((l) => ['read-failed', 'spool-error', 'deferred'].includes(String(l.event)));
      assert.deepEqual(troubles, [], 'no claim or request ran out of descriptors');
      assert.equal(daemon.child.exitCode, null);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('out of file descriptors all the same, retries messages instead of bouncing them, and gets them all through', async () => {
    const sink = await startSink((_req, res) => setTimeout(() => res.end('ok'), 20));
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0'], { maxFiles: 64 });
    const [host, port] = String((await daemon.waitEvent('metrics-listening')).address).split(':');
    // Something besides requests takes the descriptors: clients of the
    // metrics port that connect and say nothing.
    const hogs: net.Socket[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        const socket = net.connect(Number(port), host);
        socket.on('error', () => {});
        hogs.push(socket);
      }
      await Promise.all(hogs.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r).once('error', r) : r(null)))));
      const ids = Array.from({ length: 100 }, (_, i) => `fd-${i}`);
      for (const id of ids) drop(spool, id, { url: `${sink.url}/x` });
      await waitFor('the limit hit', () => daemon.lines.some((l) => ['read-failed', 'spool-error', 'deferred'].includes(String(l.event))), 10_000);
      for (const s of hogs) s.destroy();
      await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1), 30_000);
      assert.equal(daemon.events('bounced').length, 0, 'a host trouble never bounces a message');
      assert.ok(daemon.events('spool-error').length < 40, `no hot loop of errors (${daemon.events('spool-error').length})`);
      assert.equal(daemon.child.exitCode, null);
    } finally {
      for (const s of hogs) s.destroy();
      await daemon.stop();
      await sink.close();
    }
  });

  it('pauses when a queue folder cannot be written, says so about once a second, and recovers by itself', async () => {
    let healthy = false;
    const sink = await startSink((_req, res) => res.writeHead(healthy ? 200 : 503).end());
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const runAs = asNobody(path.dirname(spool));
    const opts = runAs ? { runAs } : {};
    const daemon = await startDaemon(spool, [], opts);
    try {
      fs.chmodSync(path.join(spool, 'deferred'), 0o500);
      for (let i = 0; i < 5; i++) {
        drop(spool, `perm-${i}`, { url: `${sink.url}/x` });
      }
      await daemon.waitEvent('move-failed');
      await sleep(3000);
      const degraded = daemon.events('spool-degraded').length;
      assert.ok(degraded >= 1 && degraded <= 6, `${degraded} degraded lines in 3 s`);
      fs.chmodSync(path.join(spool, 'deferred'), 0o700);
      healthy = true;
      await daemon.waitEvent('spool-writable', undefined, 5000);
      await waitFor('all delivered', () => [0, 1, 2, 3, 4].every((i) => daemon.events('delivered', `perm-${i}`).length === 1), 10_000);
      assert.deepEqual(idsIn(spool, 'active'), []);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('creates missing spool folders with mode 0700', async () => {
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    await daemon.stop();
    for (const q of ['incoming', 'active', 'deferred', 'hold', 'bounced', 'tmp']) {
      assert.equal(fs.statSync(path.join(spool, q)).mode & 0o777, 0o700, q);
    }
  });

  it('rejects bad options with one line that says what is wrong, and exit code 2', () => {
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const cases: [string[], RegExp][] = [
      [['--concurrency', 'lots'], /^spoold: --concurrency: "lots" is not a whole number/],
      [['--max-backoff', '5 fortnights'], /^spoold: --max-backoff: /],
      [['--min-backoff', '2h', '--max-backoff', '1h'], /^spoold: min-backoff \(2h\) is above max-backoff \(1h\)$/],
      [['--timeout', '1ms'], /^spoold: --timeout: "1ms" is out of range; expected a duration from 100ms to 1h$/],
      [['--bogus'], /^spoold: unknown option '--bogus' \(see spoold --help\)$/],
    ];
    for (const [args, expected] of cases) {
      const r = spawnSync(process.execPath, [SPOOLD, 'start', '--spool', spool, ...args], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trimEnd(), expected);
    }
  });

  it('leaves its standard output blocking, so a slow log reader is waited for, never slept on', async () => {
    // Made non-blocking (by touching process.stdout), fd 1 answers EAGAIN when
    // the pipe or journal socket is full, and pino's writer then sleeps the
    // whole daemon 100 ms at a time.
    const d = await startDaemon(tempSpool());
    const flags = Number.parseInt(/^flags:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${d.child.pid}/fdinfo/1`, 'utf8'))![1]!, 8);
    assert.equal(flags & 0o4000, 0, `fd 1 flags ${flags.toString(8)}: O_NONBLOCK set`);
    await d.stop();
  });

  it('prints its version with --version and -V', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [SPOOLD, flag], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), version);
    }
  });

  it('refuses a spool it cannot use with one line and exit code 1, no stack trace', () => {
    const base = tempSpool();
    fs.mkdirSync(base, { recursive: true });
    const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
    const oneLine = (r: ReturnType<typeof run>, expected: RegExp, what: string) => {
      assert.equal(r.status, 1, `${what}: ${r.stderr}`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr.trimEnd(), expected, what);
    };

    const file = path.join(base, 'a-file');
    fs.writeFileSync(file, 'not a spool');
    oneLine(run(process.execPath, [SPOOLD, 'start', '--spool', file]), /^spoold: cannot use .*a-file as a spool: it is a file, not a folder/, 'a file');
    oneLine(run(process.execPath, [SPOOLD, 'start', '--spool', path.join(file, 'spool')]), /^spoold: cannot use .* as a spool: a part of the path is a file, not a folder \(ENOTDIR\)$/, 'below a file');

    // A read-only bind mount of a complete spool, in a mount namespace of its own.
    const ro = path.join(base, 'ro');
    ensureSpoolDirs(ro);
    oneLine(run('unshare', ['--mount', 'sh', '-c', `mount --bind -o ro "$0" "$0" && exec "$1" "$2" start --spool "$0"`, ro, process.execPath, SPOOLD]), /^spoold: cannot use .*ro\/\w+ as a spool: the file system is read-only \(EROFS\)$/, 'read-only');

    // Owned by another user: the daemon's files would be unreadable to the service.
    const theirs = path.join(base, 'theirs');
    ensureSpoolDirs(theirs);
    for (const dir of [path.dirname(base), base]) fs.chmodSync(dir, 0o755);
    const nobody = asNobody(theirs);
    assert.ok(nobody, 'these tests run as root');
    oneLine(run(process.execPath, [SPOOLD, 'start', '--spool', theirs]), /^spoold: the spool .*theirs belongs to uid \d+, not to this user \(uid 0\): run the daemon as its owner, or chown the spool$/, 'wrong owner');

    // Its owner, but a queue folder it may not write.
    fs.chownSync(path.join(theirs, 'incoming'), 0, 0);
    fs.chmodSync(path.join(theirs, 'incoming'), 0o755);
    oneLine(run(nobody, [SPOOLD, 'start', '--spool', theirs]), /^spoold: cannot use .*theirs\/incoming as a spool: permission denied \(EACCES\)$/, 'permission denied');
  });
});


