/**
 * The closed catalogue of log events: every line spoold logs carries one of
 * these names in `event`, at this level. One name, one meaning; the README's
 * list is generated from here, and a unit test checks that the code logs
 * exactly these, each at its level.
 */
export type EventLevel = 'debug' | 'info' | 'warn' | 'error';

export interface EventInfo {
  readonly level: EventLevel;
  readonly group: 'start and stop' | 'messages' | 'destinations' | 'configuration' | 'spool' | 'bounces' | 'shared spools' | 'side paths';
  readonly meaning: string;
}

export const EVENTS = {
  'lock-taken': { level: 'info', group: 'start and stop', meaning: 'the spool lock is held: this daemon is the only one on the spool' },
  'lock-taken-over': { level: 'warn', group: 'start and stop', meaning: 'the lock of a daemon that is gone was taken over (`stalePid`)' },
  started: { level: 'info', group: 'start and stop', meaning: 'ready: version, spool, messages per queue, settings (secrets left out)' },
  stopping: { level: 'info', group: 'start and stop', meaning: 'a SIGTERM or SIGINT arrived: claiming stops' },
  draining: { level: 'info', group: 'start and stop', meaning: 'waiting up to `--shutdown-grace` for requests in flight' },
  'cut-off': { level: 'warn', group: 'start and stop', meaning: 'the grace period is over: requests still in flight are cut and will be retried' },
  stopped: { level: 'info', group: 'start and stop', meaning: 'every claimed message is back in a queue; the daemon exits 0 (`claimsMissed`: claims that found their message taken first, by queue)' },
  'descriptors-short': { level: 'warn', group: 'start and stop', meaning: 'the open-files limit (`limit`, with `open` taken) leaves room for `room` requests in flight: the settings in `lowered` are capped at that (raise `ulimit -n` or LimitNOFILE=)' },
  'clock-stepped': { level: 'warn', group: 'start and stop', meaning: 'the wall clock moved more than the time that passed (`stepMs`; `whileStopped` across a restart): ages do not count the step' },

  received: { level: 'info', group: 'messages', meaning: 'a message claimed for its first attempt, with its destination, method and size' },
  scheduled: { level: 'info', group: 'messages', meaning: 'a message with "deliverAt" or "delay" waits in deferred/ until `deliverAt`, attempts unspent' },
  recovered: { level: 'warn', group: 'messages', meaning: 'a message in flight when the last daemon stopped (or claimed by a dead peer): delivered again' },
  attempt: { level: 'debug', group: 'messages', meaning: 'a request starts (`probe` when it tests a dead destination)' },
  delivered: { level: 'info', group: 'messages', meaning: 'answered 2xx: the message has left the queue (kept in delivered/ under `--keep-delivered`)' },
  deferred: { level: 'info', group: 'messages', meaning: 'a transient failure: `reason`, `delayMs` and `nextAttemptAt`' },
  bounced: { level: 'warn', group: 'messages', meaning: 'set aside in bounced/ with its `reason`' },
  'put-back': { level: 'info', group: 'messages', meaning: 'claimed but not sent (its destination is dead or paused, or the daemon is stopping): back to deferred/, attempts unspent' },
  ordered: { level: 'debug', group: 'messages', meaning: 'waits in ordered/ behind an older message of its `orderingKey`' },
  'not-settled': { level: 'info', group: 'messages', meaning: 'a file that does not parse but was written to just now: read again later, not bounced' },
  'read-failed': { level: 'error', group: 'messages', meaning: 'a claimed message could not be read (an I/O error): retried' },
  rescued: { level: 'warn', group: 'messages', meaning: 'found in tmp/ on its way back to incoming/ (an interrupted requeue): put into its queue' },

  'destination-dead': { level: 'warn', group: 'destinations', meaning: 'a destination failed `--dead-after` times in a row: its messages wait until `deadUntil`' },
  'destination-still-dead': { level: 'warn', group: 'destinations', meaning: 'its probe failed too: the cool-off doubles' },
  'destination-paused': { level: 'warn', group: 'destinations', meaning: 'an operator paused it (`spoolctl pause`): nothing is sent to it; its messages wait, attempts and age unspent' },
  'destination-resumed': { level: 'info', group: 'destinations', meaning: 'its pause is over (`spoolctl resume`): its messages go in their turn' },
  'destination-reopened': { level: 'info', group: 'destinations', meaning: 'its probe succeeded: sending again' },

  'config-reloaded': { level: 'info', group: 'configuration', meaning: 'SIGHUP: the settings that changed (names, never values)' },
  'config-reload-ignored': { level: 'warn', group: 'configuration', meaning: 'settings that change only on restart' },
  'config-reload-failed': { level: 'error', group: 'configuration', meaning: 'the new configuration was rejected; the running one is kept' },

  'spool-error': { level: 'error', group: 'spool', meaning: 'a scan or read of the spool failed (`step`, `error`): retried shortly' },
  'move-failed': { level: 'error', group: 'spool', meaning: 'a rename between queues failed: the message stays in active/ and the move is retried' },
  'spool-degraded': { level: 'error', group: 'spool', meaning: 'messages could not be moved: claiming stops until they can' },
  'spool-writable': { level: 'warn', group: 'spool', meaning: 'moves succeed again: claiming resumes' },
  'watch-error': { level: 'warn', group: 'spool', meaning: 'the watch on incoming/ failed: rescans every `--scan-interval` carry on' },
  'unknown-file': { level: 'warn', group: 'spool', meaning: 'a name in active/ that is not a message: left alone' },
  'pauses-pruned': { level: 'info', group: 'spool', meaning: 'records of ended pauses that no message in the spool arrived before were removed from paused/' },
  'tmp-swept': { level: 'info', group: 'spool', meaning: 'files left in tmp/ by writers that stopped were removed' },
  'orphans-removed': { level: 'info', group: 'spool', meaning: 'reason records whose message had left bounced/ were removed' },
  'delivered-pruned': { level: 'info', group: 'spool', meaning: 'hours of delivered/ older than `--keep-delivered` were removed' },
  'prune-failed': { level: 'warn', group: 'side paths', meaning: 'delivered/ could not be pruned: tried again in a minute' },
  'history-failed': { level: 'warn', group: 'side paths', meaning: 'an attempt could not be recorded in attempts/, or a delivered message kept in delivered/: delivery goes on' },
  'sweep-failed': { level: 'warn', group: 'spool', meaning: 'tmp/ or bounced/ could not be cleaned: tried again later' },
  'state-write-failed': { level: 'warn', group: 'spool', meaning: 'destinations.json could not be written (spoolctl stats shows older state)' },

  'notice-queued': { level: 'info', group: 'bounces', meaning: 'a delivered, delayed or recovered notice (`--notify`) was queued for the hook URL (`type`)' },
  'notice-command-done': { level: 'info', group: 'bounces', meaning: 'the notice command ran for a delivered, delayed or recovered notice and exited 0' },
  'notice-command-failed': { level: 'error', group: 'bounces', meaning: 'the notice command could not start, or failed, for a delivered, delayed or recovered notice' },
  'bounce-notice-queued': { level: 'info', group: 'bounces', meaning: 'a bounce notice for `--bounce-hook` is in the spool, to be delivered like any message' },
  'bounce-notice-failed': { level: 'error', group: 'bounces', meaning: 'a bounce notice could not be queued' },
  'notice-failed': { level: 'error', group: 'bounces', meaning: 'the notice outbox could not be read, or held a file that is not a notice, or a delivered, delayed or recovered notice could not be queued (tried again)' },
  'bounce-command-done': { level: 'info', group: 'bounces', meaning: '`--bounce-command` exited 0' },
  'bounce-command-failed': { level: 'error', group: 'bounces', meaning: '`--bounce-command` could not start or exited non-zero (`code`, `signal`, `stderr`)' },

  'lease-taken': { level: 'info', group: 'shared spools', meaning: 'with `--shared`: this daemon shares the spool as `owner`' },
  partition: { level: 'info', group: 'shared spools', meaning: 'the daemons sharing the spool changed: incoming/ is split into `parts`, each claimed first by one of them (a part its daemon leaves is taken by the others)' },
  'peer-dead': { level: 'warn', group: 'shared spools', meaning: 'a peer stopped renewing its lease: its claims are delivered by the others' },
  'lease-late': { level: 'warn', group: 'shared spools', meaning: 'this daemon renewed its lease after it had expired' },
  'lease-lost': { level: 'error', group: 'shared spools', meaning: 'a peer judged this daemon dead: messages it had claimed may be delivered twice' },
  'claim-lost': { level: 'error', group: 'shared spools', meaning: 'a message this daemon had claimed left active/ under it (a peer that judged this daemon dead recovered it, or an operator moved it): it may be delivered twice; nothing more is done with it here' },
  'lease-error': { level: 'error', group: 'shared spools', meaning: 'the lease could not be renewed: tried again at the next beat' },
  'lease-watch-failed': { level: 'warn', group: 'shared spools', meaning: 'leases/ cannot be watched (no inotify watches left, …): peers starting or stopping are seen at the next beat, a third of the lease time later' },

  'metrics-listening': { level: 'info', group: 'side paths', meaning: 'metrics and the status page are served on `address`' },
  'metrics-recount-failed': { level: 'warn', group: 'side paths', meaning: 'the queues could not be counted for the metrics' },
  'http-error': { level: 'error', group: 'side paths', meaning: 'a status page or metrics request failed: answered 500, delivery goes on' },
  'status-action': { level: 'info', group: 'side paths', meaning: 'an action from the status page (`action`: flush, hold, release, requeue, replay, delete, pause, resume; `queue`, `filter` for a bulk one): how many were done, refused, not found' },
  'http-uncaught': { level: 'error', group: 'side paths', meaning: 'an error escaped a status page or metrics handler (`path`, `stack`): logged, delivery goes on' },
  'status-action-refused': { level: 'warn', group: 'side paths', meaning: 'a status page action was refused (`why`: actions off, a foreign origin, …)' },
  'notify-unavailable': { level: 'warn', group: 'side paths', meaning: 'NOTIFY_SOCKET is set but cannot be reached (no unix-dgram binding, or an abstract socket)' },
  'notify-failed': { level: 'warn', group: 'side paths', meaning: 'a message to systemd (READY, WATCHDOG, …) could not be sent' },
} as const satisfies Record<string, EventInfo>;

export type EventName = keyof typeof EVENTS;
