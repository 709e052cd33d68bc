/**
 * Leases judge a peer dead at once only when its pid is one we can see: the
 * same kernel boot and the same pid namespace. Containers that share a host
 * name (or a kernel) must not take each other's live daemons for dead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Spool } from '../../src/spool/layout.js';
import { Leases, liveLeases } from '../../src/spool/lease.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-test-lease-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const spool = new Spool(path.join(root, 'spool'));
fs.mkdirSync(spool.dir('leases'), { recursive: true });

/** A pid that was a process a moment ago and is gone now. */
const gonePid = spawnSync(process.execPath, ['-e', '']).pid;

function ourSpace(): string {
  return `${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${fs.readlinkSync('/proc/self/ns/pid')}`;
}

function writeLease(owner: string, space: string | undefined): void {
  const record = { owner, host: os.hostname(), space, pid: gonePid, ttl: 60_000, beat: 1, at: new Date().toISOString() };
  fs.writeFileSync(spool.leasePath(owner), JSON.stringify(record) + '\n');
}

describe('leases', () => {
  it('a gone pid in our own pid space is dead at once', () => {
    writeLease(`here.${gonePid}.aaaaaa`, ourSpace());
    assert.deepEqual(new Leases(spool, 60_000).dead([`here.${gonePid}.aaaaaa`]), [`here.${gonePid}.aaaaaa`]);
    assert.deepEqual(liveLeases(spool), [], 'a single daemon starting removes it');
    assert.equal(fs.existsSync(spool.leasePath(`here.${gonePid}.aaaaaa`)), false);
  });

  it('a peer with our host name but another boot or pid namespace waits a whole lease time, like a remote one', () => {
    const peers = [`twin.${gonePid}.bbbbbb`, `ns.${gonePid}.cccccc`, `old.${gonePid}.dddddd`];
    writeLease(peers[0], `00000000-0000-0000-0000-000000000000/${fs.readlinkSync('/proc/self/ns/pid')}`);
    writeLease(peers[1], `${ourSpace().split('/')[0]}/pid:[1]`);
    writeLease(peers[2], undefined); // written by spoold 0.2.0, which named no pid space
    const leases = new Leases(spool, 60_000);
    assert.deepEqual(leases.dead(peers), [], 'first look: only starts watching');
    assert.deepEqual(leases.dead(peers), [], 'unchanged, but not for a lease time yet');
    assert.deepEqual(liveLeases(spool).sort(), [...peers].sort(), 'fresh, so live to a starting daemon');
    for (const p of peers) assert.equal(fs.existsSync(spool.leasePath(p)), true);
  });

  it('writes its own pid space into its lease', () => {
    const leases = new Leases(spool, 60_000);
    leases.renew();
    const record = JSON.parse(fs.readFileSync(spool.leasePath(leases.owner), 'utf8')) as { space: string };
    assert.equal(record.space, ourSpace());
    leases.release();
  });
});
