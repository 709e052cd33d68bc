/**
 * Leases: how daemons sharing one spool (`spoold start --shared`) tell a dead
 * peer from a live one. One host only: network and FUSE file systems are
 * refused (file-system.ts), since their clients see a peer's renewed lease
 * late from a cache.
 *
 * Each daemon rewrites leases/<owner> every third of the lease time, with a
 * new beat number, through write-file-atomic (never read half-written). A peer is judged dead
 * when its lease has not changed for a whole lease time *as counted by the
 * observer's own monotonic clock*: no clocks are compared between hosts, so
 * skew cannot make a live daemon look dead, nor a dead one alive. A lease
 * whose process is gone from the pid space we share is dead at once. A pid
 * space is one kernel boot (its boot id) and one pid namespace, not a host
 * name: containers that share a name, or a kernel, see each other's pids as
 * gone while both run, and must wait the lease time like any remote peer.
 *
 * Only then are its claims (active/ names prefixed with its owner id) made
 * due again; a live daemon's claims are never touched, however long its
 * requests take.
 */
import { randomBytes } from 'node:crypto';
import writeFileAtomic from 'write-file-atomic';
import fs from 'node:fs';
import os from 'node:os';
import { systemClock } from './clock-steps.js';
import { streamDir, type Spool } from './layout.js';
import { isAlive } from './lock.js';
import { isValidOwner } from './names.js';
import { readRecord } from './staging.js';

interface LeaseRecord {
  owner: string;
  host: string;
  /** `<boot id>/<pid namespace>`; absent in leases of spoold 0.2.0 and before. */
  space?: string;
  pid: number;
  ttl: number;
  beat: number;
  at: string;
}

/** `<host>.<pid>.<random>`: unique across hosts and restarts, and valid in a filename (at most 29 characters: see MAX_OWNER). */
export function newOwnerId(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 14) || 'host';
  return `${host}.${process.pid}.${randomBytes(3).toString('hex')}`;
}

/** The shape newOwnerId makes; write-file-atomic's staging names (`<owner>.<number>`) are not. */
const OWNER_ID = /^[A-Za-z0-9-]{1,24}\.\d{1,10}\.[0-9a-f]{6}$/;

function readLease(file: string): { content: string; record: LeaseRecord | null } | null {
  let content: string;
  try {
    content = readRecord(file);
  } catch {
    return null;
  }
  try {
    return { content, record: JSON.parse(content) as LeaseRecord };
  } catch {
    return { content, record: null };
  }
}

/** Lease files present now (owner ids); staging files start with a dot. */
export function leaseOwners(spool: Spool): string[] {
  const owners: string[] = [];
  for (const d of streamDir(spool.dir('leases'))) if (OWNER_ID.test(d.name) && isValidOwner(d.name)) owners.push(d.name);
  return owners;
}

/**
 * Calls `onOwner` when a lease file appears or goes between beats (a peer
 * starting, or stopping cleanly), so the partition of incoming/ follows at
 * once: two daemons started together each see no peer at start, and would
 * race for every name until the next beat, a third of the lease time later.
 * Only a hint: beats still decide who is live, and a watch that fails leaves
 * them alone to do it.
 */
export function watchLeases(spool: Spool, onOwner: (owner: string, present: boolean) => void, onError: (err: unknown) => void): { close(): void } {
  let watcher: fs.FSWatcher | null = null;
  try {
    watcher = fs.watch(spool.dir('leases'), { persistent: false }, (_event, name) => {
      const owner = name ? String(name) : '';
      if (OWNER_ID.test(owner) && isValidOwner(owner)) onOwner(owner, fs.existsSync(spool.leasePath(owner)));
    });
    watcher.on('error', (err) => {
      watcher?.close();
      watcher = null;
      onError(err);
    });
  } catch (err) {
    onError(err);
  }
  return { close: () => watcher?.close() };
}

function readSpace(): string {
  try {
    const boot = systemClock.boot();
    const ns = fs.readlinkSync('/proc/self/ns/pid');
    return boot && ns ? `${boot}/${ns}` : '';
  } catch {
    return '';
  }
}

/** Ours, read once: empty where /proc cannot tell, and then no lease is judged by its pid. */
const SPACE = readSpace();

/** Whether this lease's pid means a process we can see. */
function samePidSpace(record: LeaseRecord | null): record is LeaseRecord {
  return record !== null && SPACE !== '' && record.space === SPACE && record.host === os.hostname();
}

function deadHere(record: LeaseRecord | null): boolean {
  return samePidSpace(record) && !isAlive(record.pid);
}

export class Leases {
  readonly owner = newOwnerId();
  private beat = 0;
  private lastRenew: number | null = null;
  /** What each peer's lease said when we last saw it change, and when (monotonic). */
  private readonly seen = new Map<string, { content: string; since: number }>();

  constructor(
    private readonly spool: Spool,
    readonly ttl: number,
  ) {}

  get interval(): number {
    return Math.max(100, Math.floor(this.ttl / 3));
  }

  /**
   * Writes our lease again. `lost`: it had vanished, so a peer judged us dead
   * and may have recovered our claims. `lateMs`: how far past the lease time
   * this beat came (the event loop or the host stalled).
   */
  renew(): { lost: boolean; lateMs: number } {
    const file = this.spool.leasePath(this.owner);
    const lost = this.beat > 0 && !fs.existsSync(file);
    const now = performance.now();
    const lateMs = this.lastRenew === null ? 0 : Math.max(0, Math.round(now - this.lastRenew - this.ttl));
    this.beat++;
    const record: LeaseRecord = { owner: this.owner, host: os.hostname(), space: SPACE, pid: process.pid, ttl: this.ttl, beat: this.beat, at: new Date().toISOString() };
    // Liveness, not data: no fsync. A lease lost in a power cut belongs to a daemon that is gone too.
    writeFileAtomic.sync(file, JSON.stringify(record) + '\n', { mode: 0o600, fsync: false });
    this.lastRenew = now;
    return { lost, lateMs };
  }

  release(): void {
    fs.rmSync(this.spool.leasePath(this.owner), { force: true });
  }

  /**
   * Which of these peers are dead. A peer must be watched for a whole lease
   * time without a change (a missing lease counts as unchanging) unless it
   * is on this host and its process is gone.
   */
  dead(owners: Iterable<string>): string[] {
    const now = performance.now();
    const dead: string[] = [];
    const current = new Set<string>();
    for (const owner of owners) {
      if (owner === this.owner || current.has(owner)) continue;
      current.add(owner);
      const lease = readLease(this.spool.leasePath(owner));
      const content = lease?.content ?? '';
      if (deadHere(lease?.record ?? null)) {
        this.seen.set(owner, { content, since: now });
        dead.push(owner);
        continue;
      }
      const prev = this.seen.get(owner);
      if (!prev || prev.content !== content) {
        this.seen.set(owner, { content, since: now });
        continue;
      }
      const ttl = Math.max(this.ttl, lease?.record?.ttl ?? 0);
      if (now - prev.since >= ttl) dead.push(owner);
    }
    for (const owner of this.seen.keys()) if (!current.has(owner)) this.seen.delete(owner);
    return dead;
  }

  /** Removes a dead peer's lease after its claims were recovered, unless it has beaten since. */
  bury(owner: string): void {
    const file = this.spool.leasePath(owner);
    const lease = readLease(file);
    if (lease && lease.content !== this.seen.get(owner)?.content) return;
    fs.rmSync(file, { force: true });
    this.seen.delete(owner);
    // write-file-atomic's staging file, if the peer was killed while renewing.
    for (const d of streamDir(this.spool.dir('leases'))) if (d.name.startsWith(`${owner}.`)) fs.rmSync(this.spool.path('leases', d.name), { force: true });
  }
}

/**
 * Leases that may belong to running daemons, for a single daemon about to
 * start: written within two lease times (by the wall clock: a start-up cannot
 * watch for a whole lease time), or held by a live process on this host.
 * Leases of processes gone from this host are removed.
 */
export function liveLeases(spool: Spool, now: number = Date.now()): string[] {
  const live: string[] = [];
  for (const owner of leaseOwners(spool)) {
    const file = spool.leasePath(owner);
    const lease = readLease(file);
    if (!lease) continue;
    if (deadHere(lease.record)) {
      fs.rmSync(file, { force: true });
      continue;
    }
    const sameHost = samePidSpace(lease.record);
    let mtime = 0;
    try {
      mtime = fs.statSync(file).mtimeMs;
    } catch {
      continue;
    }
    if (sameHost || now - mtime < 2 * Math.max(lease.record?.ttl ?? 0, 1000)) live.push(owner);
  }
  return live;
}
