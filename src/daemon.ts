/**
 * `spoold start`: wires the pieces together and owns the process lifecycle.
 *
 *   lock → recover active/ → summary → watch incoming/ → queue manager
 *   SIGTERM/SIGINT → stop claiming → drain within the grace period → exit 0
 */
import { RELOADABLE, type Config } from './config.js';
import { Spool } from './layout.js';
import { acquireLock } from './lock.js';
import { createLogger, type Logger } from './log.js';
import { QueueManager } from './queue-manager.js';
import { countQueues, recoverActive } from './recover.js';
import { Sender } from './send.js';
import { watchIncoming, type IncomingWatch } from './watch.js';

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
  const spool = new Spool(config.spool);
  spool.ensure();
  const lock = acquireLock(spool.lockPath);
  if (lock.tookOverFrom !== null) log.warn({ event: 'lock-taken-over', spool: spool.root, stalePid: lock.tookOverFrom }, 'took over the lock of a daemon that is gone');
  log.info({ event: 'lock-taken', spool: spool.root }, 'spool locked');

  const recovered = recoverActive(spool, Date.now(), log);
  const { spool: _root, ...settings } = config;
  log.info({ event: 'started', spool: spool.root, recovered, queues: countQueues(spool), settings }, `spoold started on ${spool.root}`);

  let sender = new Sender(config);
  const manager = new QueueManager(spool, config, sender, log);
  let watcher: IncomingWatch | null = null;

  let stopping: Promise<number> | null = null;
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ event: 'stopping', signal }, `received ${signal}; finishing requests in flight`);
      await watcher?.close();
      await manager.stop(config.shutdownGrace);
      await Promise.all(retiredSenders);
      await sender.close();
      lock.release();
      log.info({ event: 'stopped' }, 'stopped');
      return 0;
    })();
    return stopping;
  };

  const retiredSenders: Promise<void>[] = [];
  // SIGHUP: settle the configuration again and apply it to what comes next;
  // requests in flight finish on the connections they have.
  const reload = (): void => {
    let next: Config;
    try {
      next = load();
    } catch (err) {
      log.error({ event: 'config-reload-failed', error: (err as Error).message }, `configuration not reloaded: ${(err as Error).message}`);
      return;
    }
    const changed = Object.fromEntries(RELOADABLE.filter((k) => next[k] !== config[k]).map((k) => [k, next[k]]));
    const fixed = (Object.keys(next) as (keyof Config)[]).filter((k) => !RELOADABLE.includes(k) && next[k] !== config[k]);
    if (fixed.length > 0) log.warn({ event: 'config-reload-ignored', settings: fixed }, `${fixed.join(', ')} change only on restart`);
    const applied: Config = { ...config, ...changed };
    if (applied.perDestination !== config.perDestination || applied.timeout !== config.timeout || applied.blockPrivate !== config.blockPrivate) {
      retiredSenders.push(sender.retire());
      sender = new Sender(applied);
    }
    config = applied;
    log.level = config.logLevel;
    manager.reconfigure(config, sender);
    log.info({ event: 'config-reloaded', changed }, 'configuration reloaded');
  };

  return new Promise<number>((resolve, reject) => {
    onReloadSignal = reload;
    onStopSignal = (signal) => void stop(signal).then(resolve, reject);
    if (earlySignal) return onStopSignal(earlySignal);
    // The first scan runs before the watch starts: with a backlog waiting,
    // the watch starts paused (see watch.ts).
    manager.start();
    watchIncoming(
      spool,
      (name) => manager.noticeIncoming(name),
      (err) => log.warn({ event: 'watch-error', err }, 'file watcher error; relying on periodic rescans'),
      manager.hasIncomingBacklog,
    ).then(
      (w) => {
        watcher = w;
        manager.onIncomingBacklog = (backlog) => w.pause(backlog);
        w.pause(manager.hasIncomingBacklog); // it may have changed while chokidar loaded
        manager.watchStarted();
        if (stopping) void w.close();
      },
      (err) => log.warn({ event: 'watch-error', err }, 'cannot watch incoming/; relying on periodic rescans'),
    );
  });
}
