/**
 * `spoold start`: wires the pieces together and owns the process lifecycle.
 *
 *   lock → recover active/ → summary → watch incoming/ → queue manager
 *   SIGTERM/SIGINT → stop claiming → drain within the grace period → exit 0
 *
 * With --shared, the lock gives way to a lease (see lease.ts): several
 * daemons claim from one spool, and each heartbeat recovers the claims of
 * peers whose lease expired.
 */
import { Outbox } from './notices.js';
import type { Metrics } from '../http/metrics.js';
import { publicSettings, RELOADABLE, type Config } from './config.js';
import { fitConcurrency, openDescriptors, openFilesLimit, requestRoom } from './descriptors.js';
import { SpoolError } from '../errors.js';
import { Spool } from '../spool/layout.js';
import { fileSystemType, remoteFileSystem } from '../spool/file-system.js';
import { leaseOwners, Leases, liveLeases, watchLeases } from '../spool/lease.js';
import { acquireLock, lockHolder, type Lock } from '../spool/lock.js';
import { createLogger, type Logger } from './log.js';
import { Notifier } from './notify.js';
import { warmUp } from '../delivery/warm.js';
import { VERSION } from '../version.js';
import { QueueManager } from '../queue/queue-manager.js';
import { countQueues, dropOrphanReasons, recoverActive, recoverPeers } from '../spool/recover.js';
import { Sender } from '../delivery/send.js';
import { ClockSteps } from '../spool/clock-steps.js';
import { sweepTmp, writeRecord } from '../spool/staging.js';
import { pruneDelivered } from '../spool/history.js';
import { oldestArrival } from '../operate/control.js';
import { PauseRecords } from '../spool/pauses.js';
import { watchIncoming, type IncomingWatch } from '../spool/watch.js';

/**
 * @param load settles the configuration again (re-reading the config file);
 *   called on SIGHUP.
 */
export async function runDaemon(load: () => Config): Promise<number> {
  // Signals are caught from the first moment: a SIGTERM during start-up
  // (systemd stopping a unit it just started) must still end in a clean stop.
  let onStopSignal: ((signal: string) => void) | null = null;
  let earlySignal: string | null = null;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => (onStopSignal ? onStopSignal(signal) : (earlySignal ??= signal)));
  }
  let onReloadSignal: (() => void) | null = null;
  // A reload asked for during start-up is moot: the configuration is being read now.
  process.on('SIGHUP', () => onReloadSignal?.());
  let config = load();
  const log: Logger = await createLogger(config.logLevel, config.logFormat);
  const notify = new Notifier(log);
  const spool = new Spool(config.spool);
  if (config.shared) refuseUntestedSharing(spool.root);
  spool.ensure();
  const { lock, leases } = config.shared ? { lock: null, leases: joinShared(spool, config.leaseTtl, log) } : { lock: lockAlone(spool, log), leases: null };

  // Alone, everything in active/ is from a daemon that is gone. Shared, only
  // a single daemon's claims are (none can be running now); peers' claims
  // wait for their leases to expire.
  const recovered = recoverActive(spool, Date.now(), log, (owner) => !leases || owner === null);
  const pauseRecords = new PauseRecords(spool, (floor) => oldestArrival(spool, floor));
  sweep(spool, log, pauseRecords);
  try {
    const orphans = dropOrphanReasons(spool);
    if (orphans > 0) log.info({ event: 'orphans-removed', queue: 'bounced', count: orphans }, `removed ${orphans} reason record(s) whose message had left bounced/`);
  } catch (err) {
    log.warn({ event: 'sweep-failed', queue: 'bounced', error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not look for orphan reason records');
  }
  // Measured once the daemon holds what it keeps open (log, lock, leases),
  // before any request; a reload is fitted to the same room.
  const fdLimit = openFilesLimit();
  const fdOpen = openDescriptors();
  const room = requestRoom(fdLimit, fdOpen);
  const fit = (c: Config): Config => {
    const { config: fitted, lowered } = fitConcurrency(c, room);
    if (lowered.length > 0) log.warn({ event: 'descriptors-short', limit: fdLimit, open: fdOpen, room, lowered, concurrency: c.concurrency }, `an open-files limit of ${fdLimit} leaves room for ${room} requests in flight: ${lowered.join(', ')} capped at ${room}`);
    return fitted;
  };
  config = fit(config);
  log.info({ event: 'started', version: VERSION, spool: spool.root, recovered, queues: countQueues(spool), ...(leases && { owner: leases.owner }), settings: publicSettings(config) }, `spoold started on ${spool.root}`);

  let sender = new Sender(config);
  const manager = new QueueManager(spool, config, sender, log, leases?.owner ?? null);
  // The peers the partition of incoming/ is made over: the live leases at each beat, and between beats a lease that appears or goes.
  let peers = new Set(leases ? leaseOwners(spool) : []);
  const share = (owners: Iterable<string>) => {
    peers = new Set(owners);
    manager.sharedWith(peers);
  };
  if (leases) share(peers);
  const leaseWatch =
    leases &&
    watchLeases(
      spool,
      (owner, present) => {
        if (present === peers.has(owner)) return;
        share(present ? [...peers, owner] : [...peers].filter((o) => o !== owner));
      },
      (err) => log.warn({ event: 'lease-watch-failed', owner: leases.owner, error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, 'cannot watch leases/: peers starting or stopping are seen at the next beat'),
    );
  // Ages survive clock steps (see spool/clock-steps.ts).
  const steps = new ClockSteps(spool);
  const downStep = steps.load();
  if (downStep !== null) log.warn({ event: 'clock-stepped', stepMs: Math.round(downStep), whileStopped: true }, `the clock moved ${Math.round(downStep / 1000)} s more than the time that passed while the daemon was stopped`);
  manager.onClockStep = (delta, before) => steps.stepped(delta, before);
  manager.arrivalOf = (arrival) => steps.arrivalOf(arrival);
  const clockTimer = setInterval(() => steps.save(), 60_000).unref();
  let watcher: IncomingWatch | null = null;
  const state = new DestinationState(spool, manager, log);
  const stateTimer = setInterval(() => state.write(), STATE_INTERVAL_MS).unref();
  manager.onDestinationsChanged = () => state.soon();
  // Notices left by a daemon that was killed before they went out go now.
  const outbox = new Outbox(spool, () => ({ url: config.bounceHook, command: config.bounceCommand }), log);
  manager.onBounced = () => outbox.kick();
  manager.onNotice = () => outbox.kick();
  outbox.kick();
  let metrics: Metrics | null = null;
  if (config.metrics) {
    // Loaded only when asked for: prom-client is not needed otherwise.
    const { startMetrics } = await import('../http/metrics.js');
    try {
      metrics = await startMetrics(config.metrics, spool, manager, log, { statusActions: config.statusActions, labelCount: config.metricsDestinations, settings: () => publicSettings(config) });
    } catch (err) {
      lock?.release();
      leases?.release();
      throw new SpoolError(`cannot serve metrics on ${config.metrics}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'SPOOL_ERR_METRICS');
    }
    manager.observer = metrics.observer;
  }
  const heartbeat = leases && setInterval(() => beat(spool, leases, manager, share, log), leases.interval);
  const sweeper = setInterval(() => sweep(spool, log, pauseRecords), SWEEP_INTERVAL_MS).unref();
  const pruner = setInterval(() => void prune(spool, config.keepDelivered, log), PRUNE_INTERVAL_MS).unref();

  let stopping: Promise<number> | null = null;
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      notify.stopping();
      log.info({ event: 'stopping', signal }, `received ${signal}; finishing requests in flight`);
      await watcher?.close();
      await manager.stop(config.shutdownGrace);
      await outbox.stop();
      await metrics?.close();
      await Promise.all(retiredSenders);
      await sender.close();
      if (heartbeat) clearInterval(heartbeat);
      leaseWatch?.close();
      clearInterval(stateTimer);
      clearInterval(clockTimer);
      steps.save();
      state.write(true);
      clearInterval(sweeper);
      clearInterval(pruner);
      lock?.release();
      leases?.release();
      log.info({ event: 'stopped', claimsMissed: manager.claimsMissed }, 'stopped');
      return 0;
    })();
    return stopping;
  };

  const retiredSenders: Promise<void>[] = [];
  // SIGHUP: settle the configuration again and apply it to what comes next;
  // requests in flight finish on the connections they have.
  const reload = (): void => {
    notify.reloading();
    try {
      applyReload();
      notify.ready(`delivering from ${spool.root}`);
    } catch (err) {
      // A side path: the running settings stay, delivery goes on. (systemctl
      // reload hears of it from `spoold check-config`, run first: see unit.ts.)
      log.error({ event: 'config-reload-failed', error: (err as Error).message }, `configuration not reloaded: ${(err as Error).message}`);
      notify.ready(`delivering from ${spool.root}; configuration not reloaded: ${(err as Error).message}`);
    }
  };
  const applyReload = (): void => {
    const next = fit(load());
    const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);
    const changed = Object.fromEntries(RELOADABLE.filter((k) => !same(next[k], config[k])).map((k) => [k, next[k]]));
    const fixed = (Object.keys(next) as (keyof Config)[]).filter((k) => !RELOADABLE.includes(k) && !same(next[k], config[k]));
    if (fixed.length > 0) log.warn({ event: 'config-reload-ignored', settings: fixed }, `${fixed.join(', ')} change only on restart`);
    const applied: Config = { ...config, ...changed };
    if (applied.perDestination !== config.perDestination || applied.timeout !== config.timeout || applied.blockPrivate !== config.blockPrivate || 'destinationSettings' in changed) {
      retiredSenders.push(sender.retire());
      sender = new Sender(applied);
    }
    config = applied;
    log.level = config.logLevel;
    manager.reconfigure(config, sender);
    // Names only: values may be secrets.
    log.info({ event: 'config-reloaded', changed: Object.keys(changed) }, 'configuration reloaded');
  };

  return new Promise<number>((resolve, reject) => {
    onReloadSignal = reload;
    onStopSignal = (signal) => void stop(signal).then(resolve, reject);
    if (earlySignal) return onStopSignal(earlySignal);
    // Ready waits for it, so the first messages after a start go out at the speed of the rest.
    const warmed = warmUp();
    manager.start();
    watchIncoming(
      spool,
      config.watch,
      (name) => manager.noticeIncoming(name),
      (err) => log.warn({ event: 'watch-error', error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'file watcher error; relying on periodic rescans'),
    ).then(
      async (w) => {
        watcher = w;
        manager.watchStarted();
        if (stopping) return void w.close();
        await warmed;
        // Locked (or leased), checked, recovered, watched, warmed: ready.
        if (!stopping) notify.ready(`delivering from ${spool.root}`);
      },
      async (err) => {
        log.warn({ event: 'watch-error', error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'cannot watch incoming/; relying on periodic rescans');
        await warmed;
        if (!stopping) notify.ready(`delivering from ${spool.root} (no file events: rescanning every ${config.scanInterval} ms)`);
      },
    );
  });
}

function lockAlone(spool: Spool, log: Logger): Lock {
  const lock = acquireLock(spool.root, spool.dir('tmp'));
  // Shared daemons write their lease before looking for the lock, and this
  // one takes the lock before looking for leases: of two starting at once,
  // at least one sees the other.
  const live = liveLeases(spool);
  if (live.length > 0) {
    lock.release();
    throw new SpoolError(`daemons sharing this spool are running (${live.join(', ')}); start this one with --shared too, or stop them first`, 'SPOOL_ERR_LOCKED');
  }
  if (lock.tookOverFrom !== null) log.warn({ event: 'lock-taken-over', spool: spool.root, stalePid: lock.tookOverFrom }, 'took over the lock of a daemon that is gone');
  log.info({ event: 'lock-taken', spool: spool.root }, 'spool locked');
  return lock;
}

/** Before anything is made in the spool: a refusal leaves it as it was. */
function refuseUntestedSharing(root: string): void {
  const type = fileSystemType(root);
  const remote = type === null ? null : remoteFileSystem(type);
  if (remote === null) return;
  throw new SpoolError(
    `--shared is not supported on ${remote} (${root}): it is tested only on local file systems, where a peer's renames and leases are seen at once; run one spool per host instead, without --shared`,
    'SPOOL_ERR_UNSUPPORTED',
  );
}

function joinShared(spool: Spool, ttl: number, log: Logger): Leases {
  const leases = new Leases(spool, ttl);
  leases.renew();
  const holder = lockHolder(spool.root);
  if (holder !== null) {
    leases.release();
    throw new SpoolError(`a spoold without --shared (pid ${holder}) holds this spool; stop it, or start every daemon on it with --shared`, 'SPOOL_ERR_LOCKED');
  }
  log.info({ event: 'lease-taken', spool: spool.root, owner: leases.owner, leaseTtlMs: ttl }, `sharing the spool as ${leases.owner}`);
  return leases;
}

/** How often the destinations state is written for spoolctl (when it changed). */
const STATE_INTERVAL_MS = 2000;
/** A death or a reopening is written within this. */
const SOON_MS = 250;
/** Destinations written into it at most: the busiest (and every dead one first). */
const STATE_ROWS = 200;

/**
 * destinations.json, for spoolctl stats: what the daemon holds per
 * destination (window, requests in flight, dead or not). Written at most
 * every STATE_INTERVAL_MS and only when it changed, with at most STATE_ROWS
 * rows, so its cost never grows with the number of destinations ever seen.
 * Informational: no fsync. A side path: a failure is logged, never fatal.
 */
class DestinationState {
  private last = '';
  private lastAt = 0;
  private pending: NodeJS.Timeout | null = null;

  constructor(
    private readonly spool: Spool,
    private readonly manager: QueueManager,
    private readonly log: Logger,
  ) {}

  /** A destination died or reopened: written at once, or within SOON_MS when written just now. */
  soon(): void {
    if (this.pending) return;
    const wait = Math.max(0, this.lastAt + SOON_MS - Date.now());
    this.pending = setTimeout(() => {
      this.pending = null;
      this.write();
    }, wait);
    this.pending.unref();
  }

  write(stopped = false): void {
    if (stopped && this.pending) clearTimeout(this.pending);
    this.lastAt = Date.now();
    try {
      const rows = stopped ? [] : this.manager.destinations(STATE_ROWS);
      const body = JSON.stringify({ destinations: rows, total: stopped ? 0 : this.manager.destinationCount });
      if (body === this.last) return;
      this.last = body;
      writeRecord(this.spool, this.spool.destinationStatePath, JSON.stringify({ updatedAt: new Date().toISOString(), ...JSON.parse(body) }, null, 2) + '\n', false);
    } catch (err) {
      this.log.warn({ event: 'state-write-failed', file: this.spool.destinationStatePath, error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not write the destinations state');
    }
  }
}

/** How often tmp/ is cleaned of what killed writers left there (see staging.ts). */
const SWEEP_INTERVAL_MS = 10 * 60_000;

/** A side path: a failure is logged and tried again at the next sweep, never fatal. */
function sweep(spool: Spool, log: Logger, pauses: PauseRecords): void {
  try {
    const removed = pauses.prune();
    if (removed > 0) log.info({ event: 'pauses-pruned', count: removed }, `removed ${removed} record(s) of ended pauses that no message arrived before`);
  } catch (err) {
    log.warn({ event: 'sweep-failed', queue: 'paused', error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, 'could not prune paused/; trying again later');
  }
  try {
    const r = sweepTmp(spool);
    for (const { id, queue } of r.rescued) log.warn({ event: 'rescued', id, queue }, `found in tmp/ on its way back to incoming/ (a requeue was interrupted); put into ${queue}/`);
    if (r.removed + r.twins > 0) log.info({ event: 'tmp-swept', removed: r.removed, twins: r.twins }, `removed ${r.removed + r.twins} file(s) left in tmp/ by writers that stopped`);
  } catch (err) {
    log.warn({ event: 'sweep-failed', error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, 'could not clean tmp/; trying again later');
  }
}

/** How often delivered/ is pruned of the hours older than --keep-delivered. */
const PRUNE_INTERVAL_MS = 60_000;

/**
 * A side path, like sweep. Off (--keep-delivered 0), delivered/ is left as it
 * is: a restart without the option must not erase what was kept.
 */
async function prune(spool: Spool, keepMs: number, log: Logger): Promise<void> {
  if (keepMs <= 0) return;
  try {
    const hours = await pruneDelivered(spool, keepMs, Date.now());
    if (hours > 0) log.info({ event: 'delivered-pruned', hours }, `removed ${hours} hour(s) of delivered messages older than --keep-delivered`);
  } catch (err) {
    log.warn({ event: 'prune-failed', error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, 'could not prune delivered/; trying again later');
  }
}

/** Renews our lease and recovers the claims of peers whose lease expired. */
function beat(spool: Spool, leases: Leases, manager: QueueManager, share: (owners: string[]) => void, log: Logger): void {
  try {
    const { lost, lateMs } = leases.renew();
    if (lost) log.error({ event: 'lease-lost', owner: leases.owner }, 'a peer judged this daemon dead and may have recovered its claims: those messages may be delivered twice');
    else if (lateMs > 0) log.warn({ event: 'lease-late', owner: leases.owner, lateMs }, `lease renewed ${lateMs} ms past its expiry: peers may have recovered this daemon's claims`);
    const { recovered, live } = recoverPeers(spool, leases, Date.now(), log);
    share(live);
    if (recovered > 0) manager.dueChanged();
  } catch (err) {
    log.error({ event: 'lease-error', owner: leases.owner, error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, 'could not renew the lease or look at peers; trying again at the next beat');
  }
}
