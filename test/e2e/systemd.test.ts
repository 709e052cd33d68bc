/**
 * spoold under systemd: the generated unit checked by systemd itself
 * (systemd-analyze verify and security), the notify protocol against a
 * notify socket the test binds, and the whole service run by a real systemd
 * (systemd-host.ts): readiness, a lock that fails, reloads good and bad,
 * journal priorities, a delivered message's lines found from spoolctl
 * history's hint, the watchdog.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, drop, ensureCommand, ROOT, SPOOLD, spoolctl, startDaemon, startSink, tempDir, tempSpool, waitFor } from './helpers.js';
import { available, bootSystemd } from './systemd-host.js';

after(cleanup);

function systemdAnalyze(): string {
  // CI installs it (.ci/run); a fresh root machine gets it here.
  if (ensureCommand('systemd-analyze', 'systemd')) return 'systemd-analyze';
  throw new Error('systemd-analyze is needed to check the unit: install Debian\'s "systemd" package');
}

const line = (unit: string, key: string) => unit.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);

describe('systemd unit', () => {
  it('passes systemd-analyze verify, scores as exposed as little as a Node service can be, and follows the config', () => {
    const dir = tempDir('spoold-unit-');
    const spool = path.join(dir, 'spool');
    fs.mkdirSync(spool);
    const config = path.join(dir, 'spoold.json');
    fs.writeFileSync(config, JSON.stringify({ 'shutdown-grace': '60s' }));
    const secret = path.join(dir, 'secrets');
    fs.writeFileSync(secret, `whsec_${Buffer.alloc(32, 7).toString('base64')}\n`);
    const r = spawnSync(process.execPath, [SPOOLD, 'unit', '--spool', spool, '--user', 'daemon', '--config', config, '--signing-secret-file', secret, '--name', 'spoold-test'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const unit = r.stdout;
    const file = path.join(dir, 'spoold-test.service');
    fs.writeFileSync(file, unit);

    const verify = spawnSync(systemdAnalyze(), ['verify', file], { encoding: 'utf8', cwd: dir });
    assert.equal(verify.status, 0, verify.stderr);
    assert.deepEqual((verify.stdout + verify.stderr).split('\n').filter((l) => l.includes('spoold-test.service')), [], 'systemd has nothing to say about the unit');
    const security = spawnSync(systemdAnalyze(), ['security', '--offline=true', file], { encoding: 'utf8', cwd: dir });
    const exposure = Number(/Overall exposure level for .*: ([\d.]+)/.exec(security.stdout)?.[1]);
    assert.ok(exposure <= 3.5, `systemd-analyze security: ${exposure} (3.5 before; lower is better)`);
    fs.writeFileSync(path.join(dir, 'security.txt'), String(exposure));

    const spoold = `${process.execPath} ${path.join(ROOT, 'bin/spoold')}`;
    assert.match(line(unit, 'Type')!, /^notify(-reload)?$/);
    assert.equal(line(unit, 'NotifyAccess'), 'main');
    assert.equal(line(unit, 'ExecStart'), `${spoold} start --spool ${spool} --config ${config}`);
    assert.equal(line(unit, 'ExecStartPre'), `${spoold} check-config --spool ${spool} --config ${config}`);
    assert.equal(line(unit, 'ExecReload'), `${spoold} check-config --spool ${spool} --config ${config}`, 'a rejected config fails the reload');
    assert.equal(line(unit, 'User'), 'daemon');
    assert.equal(line(unit, 'Group'), 'daemon');
    const nobody = spawnSync(process.execPath, [SPOOLD, 'unit', '--spool', spool, '--user', 'nobody'], { encoding: 'utf8' });
    assert.equal(line(nobody.stdout, 'Group'), spawnSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).stdout.trim(), "the user's primary group (nogroup on Debian)");
    assert.match(nobody.stderr, /create a user of its own/, 'nobody is shared by other services');
    assert.equal(line(unit, 'TimeoutStopSec'), '72s', 'longer than the configured grace of 60 s');
    assert.equal(line(unit, 'RestartPreventExitStatus'), '2');
    assert.equal(line(unit, 'LoadCredential'), `signing-secret:${secret}`);
    assert.ok(!unit.includes('whsec_'), 'no secret in the unit');
    assert.equal(line(unit, 'ReadWritePaths'), spool);
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateDevices', 'yes'], ['ProtectProc', 'invisible'], ['ProcSubset', 'pid'], ['PrivateMounts', 'yes'], ['RemoveIPC', 'yes'], ['SystemCallFilter', '@system-service']]) assert.equal(line(unit, k!), v, k);
    // A spool under /tmp: PrivateTmp would hide it from producers.
    const tmp = spawnSync(process.execPath, [SPOOLD, 'unit', '--spool', '/tmp/spool', '--user', 'nobody'], { encoding: 'utf8' });
    assert.match(tmp.stderr, /under a temporary folder/);
    assert.equal(line(tmp.stdout, 'PrivateTmp'), undefined);
  });

  it('refuses paths that cannot stand in a unit file', () => {
    const r = spawnSync(process.execPath, [SPOOLD, 'unit', '--spool', '/srv/a b'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot be written into a unit file/);
  });
});

/** A notify socket bound by the test, as systemd binds /run/systemd/notify. */
function notifySocket(dir: string): { path: string; messages: string[]; close(): void } {
  const unix = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: string, listener: (buf: Buffer) => void): { bind(p: string): void; close(): void } };
  const messages: string[] = [];
  const socketPath = path.join(dir, 'notify');
  const socket = unix.createSocket('unix_dgram', (buf) => messages.push(buf.toString('utf8')));
  socket.bind(socketPath);
  return { path: socketPath, messages, close: () => socket.close() };
}

describe('sd_notify', () => {
  it('says READY=1 once it holds the spool, RELOADING=1 and READY=1 around a reload, pings the watchdog, and STOPPING=1', async () => {
    const dir = tempDir();
    const listener = notifySocket(dir);
    const spool = tempSpool();
    const daemon = await startDaemon(spool, [], { env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' } });
    try {
      await waitFor('READY=1', () => listener.messages.some((m) => m.includes('READY=1')));
      const ready = listener.messages.find((m) => m.includes('READY=1'))!;
      assert.match(ready, new RegExp(`MAINPID=${daemon.child.pid}`));
      assert.ok(daemon.events('lock-taken').length === 1, 'after the lock');
      await waitFor('watchdog pings', () => listener.messages.filter((m) => m.includes('WATCHDOG=1')).length >= 3, 2000);

      // A second daemon on the spool cannot lock it: it never says it is ready.
      const second = notifySocket(tempDir());
      const r = await new Promise<number | null>((resolve) => {
        const c = spawn(process.execPath, [SPOOLD, 'start', '--spool', spool], { env: { ...process.env, NOTIFY_SOCKET: second.path }, stdio: 'ignore' });
        c.on('exit', resolve);
      });
      assert.equal(r, 1);
      assert.deepEqual(second.messages.filter((m) => m.includes('READY=1')), []);
      second.close();

      const before = listener.messages.length;
      daemon.child.kill('SIGHUP');
      await waitFor('reloaded', () => daemon.events('config-reloaded').length === 1);
      await waitFor('READY=1 again', () => listener.messages.slice(before).some((m) => m.includes('READY=1')));
      const reload = listener.messages.slice(before).filter((m) => !m.startsWith('WATCHDOG'));
      assert.match(reload[0]!, /RELOADING=1\nMONOTONIC_USEC=\d+\n/);
      const usec = Number(/MONOTONIC_USEC=(\d+)/.exec(reload[0]!)![1]);
      assert.ok(Math.abs(usec / 1000 - Number(process.hrtime.bigint() / 1_000_000n)) < 5000, 'CLOCK_MONOTONIC, in µs');
      assert.match(reload[1]!, /READY=1/);
    } finally {
      await daemon.stop();
    }
    assert.ok(listener.messages.some((m) => m.includes('STOPPING=1')));
    listener.close();
  });
});

describe('under a real systemd', () => {
  it('starts when ready, fails when the spool is taken, answers history from the journal, reloads or refuses a config, logs with priorities, takes V8 heap flags from a drop-in, and restarts a stuck daemon', async () => {
    systemdAnalyze(); // installs Debian's systemd where it is missing
    const missing = available();
    assert.equal(missing, null, `a real systemd cannot run here (${missing}); this test needs root, overlayfs and Debian's systemd`);
    const sink = await startSink();
    const dir = tempDir('spoold-service-');
    const spool = path.join(dir, 'spool');
    fs.mkdirSync(spool);
    const config = path.join(dir, 'spoold.json');
    fs.writeFileSync(config, JSON.stringify({ 'shutdown-grace': '2s' }));
    fs.chmodSync(dir, 0o755);
    const sd = await bootSystemd([dir]);
    try {
      const must = (cmd: string) => {
        const r = sd.run(cmd);
        assert.equal(r.status, 0, `${cmd}: ${r.stdout}${r.stderr}`);
        return r.stdout;
      };
      must(`useradd --system --no-create-home spoold && chown spoold: ${spool} ${config}`);
      const unit = must(`${process.execPath} ${SPOOLD} unit --spool ${spool} --user spoold --config ${config}`);
      fs.writeFileSync(path.join(dir, 'spoold.service'), unit);
      must(`cp ${dir}/spoold.service /run/systemd/system/ && systemctl daemon-reload`);
      // Type=notify: systemctl start returns once READY=1 came.
      must('systemctl start spoold');
      assert.equal(sd.run('systemctl is-active spoold').stdout.trim(), 'active');
      drop(spool, 'via-systemd', { url: `${sink.url}/hook` });
      await waitFor('delivered by the service', () => sink.byId('via-systemd').length === 1, 10_000);

      // Asked after the fact, with nothing kept (the default): spoolctl
      // history names the journal query, and the journal answers it.
      const asked = spoolctl(['history', 'via-systemd', '--spool', spool]);
      assert.equal(asked.status, 1);
      const query = /under systemd: (journalctl [^)]*)\)/.exec(asked.stderr)?.[1];
      assert.ok(query, `spoolctl history names a journal query: ${asked.stderr}`);
      const story = () => sd.run(`${query} --no-pager`).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; id: string; status?: number });
      await waitFor('its delivered line in the journal', () => story().some((l) => l.event === 'delivered'), 10_000);
      assert.deepEqual(story().map((l) => [l.event, l.id, l.status]), [['received', 'via-systemd', undefined], ['delivered', 'via-systemd', 200]]);

      // A second service on the same spool cannot take it: its start fails, and exit 1 is retried, not 2.
      must(`sed -e 's/^Description=.*/Description=second/' /run/systemd/system/spoold.service > /run/systemd/system/spoold-b.service && systemctl daemon-reload`);
      assert.notEqual(sd.run('systemctl start spoold-b').status, 0, 'the start of a second daemon fails');
      assert.match(sd.run('journalctl -u spoold-b -o cat --no-pager').stdout, /already running/);
      sd.run('systemctl stop spoold-b');

      // A reload with a good config succeeds; with a bad one systemctl reload fails and the daemon keeps running.
      must('systemctl reload spoold');
      fs.writeFileSync(config, JSON.stringify({ concurrency: 'lots' }));
      const bad = sd.run('systemctl reload spoold');
      assert.notEqual(bad.status, 0, 'a rejected config fails the reload');
      assert.equal(sd.run('systemctl is-active spoold').stdout.trim(), 'active');

      // Errors reach the journal as errors: SIGHUP straight to the daemon meets the bad config.
      must('systemctl kill -s HUP spoold');
      await waitFor('an error in the journal', () => /config-reload-failed/.test(sd.run('journalctl -u spoold -p err -o cat --no-pager').stdout), 10_000);
      assert.doesNotMatch(sd.run('journalctl -u spoold -p err -o cat --no-pager').stdout, /"event":"delivered"/, 'info lines are not errors');
      fs.writeFileSync(config, JSON.stringify({ 'shutdown-grace': '2s' }));

      // The watchdog: a daemon whose event loop stops is killed and started again.
      // The README's memory drop-in (Node's heap flags) rides along: the daemon gets them and delivers.
      must('mkdir -p /run/systemd/system/spoold.service.d && printf "[Service]\\nWatchdogSec=2s\\n" > /run/systemd/system/spoold.service.d/watchdog.conf');
      must(`printf '[Service]\\nEnvironment=NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=512"\\n' > /run/systemd/system/spoold.service.d/memory.conf && systemctl daemon-reload && systemctl restart spoold`);
      const pid = must('systemctl show -p MainPID --value spoold').trim();
      assert.ok(must(`cat /proc/${pid}/environ`).split('\0').includes('NODE_OPTIONS=--max-semi-space-size=4 --max-old-space-size=512'), 'the drop-in reaches the daemon');
      drop(spool, 'with-heap-flags', { url: `${sink.url}/hook` });
      await waitFor('delivered with the heap flags', () => sink.byId('with-heap-flags').length === 1, 10_000);
      must(`kill -STOP ${pid}`);
      await waitFor('restarted by the watchdog', () => {
        const now = sd.run('systemctl show -p MainPID --value spoold').stdout.trim();
        return now !== pid && now !== '0' && sd.run('systemctl is-active spoold').stdout.trim() === 'active';
      }, 20_000, 250);
      assert.match(sd.run('journalctl -u spoold -o cat --no-pager').stdout, /[Ww]atchdog timeout/);

      must('systemctl stop spoold');
      assert.equal(sd.run('systemctl is-active spoold').stdout.trim(), 'inactive');
    } finally {
      await sd.stop();
      await sink.close();
    }
  });
});
