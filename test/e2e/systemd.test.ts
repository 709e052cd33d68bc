/**
 * The generated unit is checked by systemd itself (systemd-analyze verify):
 * every directive known, every path absolute and present.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, ROOT, SPOOLD, tempDir } from './helpers.js';

after(cleanup);

function systemdAnalyze(): string {
  const found = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  // CI installs it (.ci/run); a fresh root machine gets it here.
  if (process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null'], { stdio: 'inherit' });
    return 'systemd-analyze';
  }
  throw new Error('systemd-analyze is needed to check the unit: install Debian\'s "systemd" package');
}

describe('systemd unit', () => {
  it('passes systemd-analyze verify with absolute paths, hardening and reload', () => {
    const dir = tempDir('spoold-unit-');
    const spool = path.join(dir, 'spool');
    fs.mkdirSync(spool);
    const config = path.join(dir, 'spoold.json');
    fs.writeFileSync(config, '{}');
    const unit = execFileSync(process.execPath, [SPOOLD, 'unit', '--spool', spool, '--user', 'spoold', '--config', config, '--name', 'spoold-test'], { encoding: 'utf8' });
    const file = path.join(dir, 'spoold-test.service');
    fs.writeFileSync(file, unit);

    const verify = spawnSync(systemdAnalyze(), ['verify', file], { encoding: 'utf8', cwd: dir });
    assert.equal(verify.status, 0, verify.stderr);
    const complaints = (verify.stdout + verify.stderr).split('\n').filter((l) => l.includes('spoold-test.service'));
    assert.deepEqual(complaints, [], 'systemd has nothing to say about the unit');

    const line = (key: string) => unit.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
    assert.equal(line('Type'), 'exec');
    assert.equal(line('ExecStart'), `${process.execPath} ${path.join(ROOT, 'bin/spoold')} start --spool ${spool} --config ${config}`);
    assert.equal(line('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(line('Restart'), 'on-failure');
    assert.equal(line('KillSignal'), 'SIGTERM');
    assert.ok(parseInt(line('TimeoutStopSec')!, 10) > 8, 'longer than the daemon\'s grace period');
    assert.equal(line('User'), 'spoold');
    assert.equal(line('ReadWritePaths'), spool);
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'], ['PrivateDevices', 'yes']]) assert.equal(line(k!), v, k);
    assert.match(line('ProtectHome')!, /^(yes|read-only)$/);
  });

  it('refuses paths that cannot stand in a unit file', () => {
    const r = spawnSync(process.execPath, [SPOOLD, 'unit', '--spool', '/srv/a b'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot be written into a unit file/);
  });
});
