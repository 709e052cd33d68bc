/**
 * The queue manager: decides which messages to claim and when, and follows
 * each through read → send → classify → move.
 *
 * Memory is bounded by the number of claimed messages (twice the global
 * concurrency), never by the backlog: the spool on disk is the queue, and
 * the only timer is one for the earliest known next attempt (or the
 * periodic rescan), so a message due in 1 s never waits behind one due in 1 h.
 *
 * Slots: at most `concurrency` requests in flight overall and
 * `perDestination` per origin. A destination may hold at most twice its
 * limit of claimed messages; beyond that a message is put back into
 * deferred/ (its attempt not spent) and passed over by the due scan until the
 * destination has room, so one slow endpoint cannot take every slot.
 */
import { claimDeferred, claimIncoming, type Claimed } from '../spool/claim.js';
import { Circuit, deadThreshold, type CircuitSettings } from './circuit.js';
import { classify, type AttemptResult, type Decision } from '../delivery/classify.js';
import type { Config, DeliveryPolicy, DestinationSettings } from '../service/config.js';
import { BLOCKED_CODE, matches, refusal } from '../delivery/guard.js';
import { scanDue } from '../spool/due.js';
import { DirectoryPass, type Spool } from '../spool/layout.js';
import type { Logger } from '../service/log.js';
import type { Message } from '../delivery/message.js';
import { describeErrorToken, destinationTag, formatEntry, isTrustedTag, parseIncomingName, type Entry } from '../spool/names.js';
import { announces, writeNotice } from '../service/notices.js';
import { KeyLines } from './ordering.js';
import { readMessage, SETTLE_MS } from '../spool/read.js';
import type { Sender } from '../delivery/send.js';
import { dropStagedTwin } from '../spool/staging.js';
import { complete, moveToBounced, moveToDeferred, type BounceRecord } from '../spool/moves.js';

const BUSY_RESCAN_MS = 50;
/**
 * A scan of deferred/ reads every name in the buckets it passes, due or not,
 * so scans are spaced to take at most 1/DUE_SCAN_SPACING of the daemon's time:
 * a retry comes due at most that many times the scan's own cost late (about
 * 100 ms with 6,000 deferred in one bucket), instead of retries arriving a
 * millisecond apart each costing a read of the whole bucket.
 */
const DUE_SCAN_SPACING = 20;
/** File events resume after incoming/ has had no backlog for this long. */
const WATCH_RESUME_AFTER_MS = 1000;
/** How long a message waits after the host failed us (EMFILE, EIO, a failed move). */
const HOST_TROUBLE_DELAY_MS = 1000;
const HOST_SIDE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'EADDRNOTAVAIL', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);
/** A wall-clock jump larger than this, against the monotonic clock, is a step. */
const CLOCK_STEP_MS = 2000;

/**
 * Told what happens, for metrics: every move between queues the daemon makes,
 * and every attempt's outcome. Must not throw, must be cheap.
 */
export interface DeliveryObserver {
  moved(from: 'incoming' | 'deferred' | 'active' | 'ordered', to: 'active' | 'deferred' | 'bounced' | 'ordered' | null): void;
  outcome(outcome: 'delivered' | 'deferred' | 'bounced', destination: string, detail: { ms?: number; attempts?: number; writtenAt?: number }): void;
}

interface Job {
  claimed: Claimed;
  message: Message;
  /** When the producer wrote the file (its mtime). */
  writtenAt: number;
  destination: Destination;
  policy: DeliveryPolicy;
  /** Sent as the one probe of a destination coming out of its cool-off. */
  probe?: boolean;
}

interface Destination {
  tag: string;
  origin: string;
  held: number;
  sending: number;
  /** The first entry of the config file's "destinations" matching this origin. */
  settings: DestinationSettings | null;
}

export class QueueManager {
  private held = 0;
  private sending = 0;
  private readonly destinations = new Map<string, Destination>();
  private readonly heldIds = new Set<string>();
  private readonly waiting: Job[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Moves that failed (disk full, permissions): retried on every tick. */
  private readonly stranded = new Map<string, () => void>();
  /** Senders with requests in flight (an old one lingers after a reload). */
  private readonly senders = new Set<Sender>();

  private incomingDirty = true;
  /** When the last read of incoming/ that reached its end began (monotonic ms). */
  private incomingReadStartedAt = -Infinity;
  /** File events are paused: incoming/ held more than one fill could claim, and has not been quiet for long. */
  private incomingBacklog = false;
  private quietSince: number | null = null;
  private dueDirty = true;
  /** No scan of deferred/ before this time (see DUE_SCAN_SPACING). */
  private dueScanAfter = 0;
  private passedOverBusy = false;
  private nextDue: number | null = null;
  private lastIncomingScan = 0;
  /** The read of incoming/ under way, carried from fill to fill (null: none). */
  private incomingPass: DirectoryPass | null = null;
  private fillQueued = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private stopping = false;
  private troubleUntil = 0;
  private clock = { wall: Date.now(), mono: performance.now() };

  constructor(
    private readonly spool: Spool,
    private config: Config,
    private sender: Sender,
    private readonly log: Logger,
    /** This daemon's owner id in a shared spool, written into its claims' names; null alone. */
    private readonly owner: string | null = null,
  ) {
    this.lines = new KeyLines({
      spool,
      isHeld: (id) => this.heldIds.has(id),
      incomingReadStartedAt: () => this.incomingReadStartedAt,
      readIncoming: () => {
        this.incomingDirty = true;
        this.scheduleFill();
      },
      stopping: () => this.stopping,
      guard: (what, step) => this.guard(what, step),
      madeDue: () => {
        this.observer?.moved('ordered', 'deferred');
        this.dueChanged();
      },
    });
  }

  /** Ordering keys: their lines, and which of their messages this daemon holds (see ordering.ts). */
  private readonly lines: KeyLines;
  /** Metrics, when they are on. */
  observer: DeliveryObserver | null = null;

  /** Requests in flight now. */
  get inFlightCount(): number {
    return this.sending;
  }

  /** Messages were made due from outside (a peer's claims recovered): look at deferred/ now. */
  dueChanged(): void {
    this.dueDirty = true;
    this.scheduleFill();
  }

  /**
   * Told when incoming/ starts or stops holding more than the daemon can
   * claim at once: file events are useless then (the daemon scans), and
   * costly to keep watching.
   */
  onIncomingBacklog: (backlog: boolean) => void = () => undefined;

  get hasIncomingBacklog(): boolean {
    return this.incomingBacklog;
  }

  /**
   * The watch has just started: files renamed in while chokidar was setting
   * it up raised no event. Scan again once it surely is in place.
   */
  watchStarted(): void {
    for (const delay of [BUSY_RESCAN_MS, 10 * BUSY_RESCAN_MS]) {
      setTimeout(() => ((this.incomingDirty = true), this.scheduleFill()), delay).unref();
    }
  }

  /** New settings and sender for what comes next; work in flight is left alone. */
  reconfigure(config: Config, sender: Sender): void {
    this.config = config;
    this.sender = sender;
    for (const d of this.destinations.values()) d.settings = this.settingsFor(d.origin);
    for (const [origin, c] of this.circuits) c.configure(this.circuitSettings(this.settingsFor(origin)));
    this.buckets.clear();
    this.pump();
    this.scheduleFill();
  }

  private get maxHeld(): number {
    return this.config.concurrency * 2;
  }

  private limitOf(d: Destination | undefined): number {
    return d?.settings?.concurrency ?? this.config.perDestination;
  }

  private maxHeldPerDestination(d: Destination | undefined): number {
    return this.limitOf(d) * 2;
  }

  start(): void {
    this.fill();
  }

  /** A name appeared in incoming/ (a hint from the watcher). */
  noticeIncoming(name: string): void {
    const id = parseIncomingName(name);
    // Our own claim's rename shows up here too: the id is held by then.
    if (!id || this.stopping || this.heldIds.has(id)) return;
    if (this.held < this.maxHeld && Date.now() >= this.troubleUntil && this.stranded.size === 0) {
      this.guard('claim', () => {
        const claimed = claimIncoming(this.spool, id, Date.now(), this.owner);
        if (claimed) this.observer?.moved('incoming', 'active');
        if (claimed) this.run(claimed);
      });
    } else {
      this.incomingDirty = true;
    }
  }

  /**
   * Runs a step; a failure (out of file descriptors, an unreadable folder) is
   * logged and pauses claiming for a moment, so a host in trouble gets one
   * line a second rather than a hot loop of them.
   */
  private guard(what: string, step: () => void): void {
    try {
      step();
    } catch (err) {
      this.troubleUntil = Date.now() + HOST_TROUBLE_DELAY_MS;
      this.log.error({ event: 'spool-error', step: what, error: (err as NodeJS.ErrnoException).code ?? String(err), message: (err as Error).message }, `${what} failed; retrying shortly`);
    }
  }

  private scheduleFill(): void {
    if (this.fillQueued || this.stopping) return;
    this.fillQueued = true;
    setImmediate(() => {
      this.fillQueued = false;
      this.fill();
    });
  }

  private fill(): void {
    if (this.stopping) return;
    // While a move is failing (disk full, permissions), claiming more would
    // only strand more: wait for the tick that finds the spool writable again.
    if (this.stranded.size > 0 || Date.now() < this.troubleUntil) return this.armTimer();
    let room = this.maxHeld - this.held;
    const dueScan = () => this.dueDirty && Date.now() >= this.dueScanAfter;
    if (room > 0 && dueScan()) room -= this.fillFromDeferred(this.incomingDirty ? Math.ceil(room / 2) : room);
    if (room > 0 && this.incomingDirty) room -= this.fillFromIncoming(room);
    if (room > 0 && dueScan()) room -= this.fillFromDeferred(room);
    if (room > 0 && this.dueDirty && Date.now() < this.dueScanAfter) this.wakeAt(this.dueScanAfter);
    this.armTimer();
  }

  private fillFromDeferred(limit: number): number {
    let claimedCount = 0;
    this.guard('deferred scan', () => {
      const now = Date.now();
      const picked = new Map<string, number>();
      let busy = false;
      let deadUntil = Infinity;
      const scanStarted = performance.now();
      const scan = scanDue(this.spool, now, limit, (e) => {
        if (this.heldIds.has(e.id)) return true;
        // The tag is a hint for passing names over, never the destination
        // itself: a message is only ever judged by the origin it names. A
        // legacy 32-bit tag (collisions are easy to find) passes nothing over.
        const origin = isTrustedTag(e.destination) ? this.tagged.get(e.destination) : undefined;
        if (origin === undefined) return false;
        const n = picked.get(origin) ?? 0;
        const d = this.destinations.get(origin);
        // A dead destination's messages stay where they are, attempts unspent;
        // once its cool-off is over, one is claimed as the probe.
        const circuit = this.circuits.get(origin);
        if (circuit && circuit.state !== 'ok' && !(circuit.admits(now) && (d?.held ?? 0) + n === 0)) {
          if (circuit.state === 'dead') deadUntil = Math.min(deadUntil, circuit.deadUntil);
          return true;
        }
        if ((d?.held ?? 0) + n >= this.maxHeldPerDestination(d)) return (busy = true);
        picked.set(origin, n + 1);
        return false;
      });
      this.dueScanAfter = now + (performance.now() - scanStarted) * DUE_SCAN_SPACING;
      this.dueDirty = scan.more;
      this.passedOverBusy = busy;
      this.nextDue = scan.nextDue;
      if (deadUntil !== Infinity) this.wakeAt(deadUntil);
      for (const { entry, path } of scan.due) {
        if (this.heldIds.has(entry.id)) continue;
        const claimed = claimDeferred(this.spool, path, entry, Date.now(), this.owner);
        if (claimed) {
          this.observer?.moved('deferred', 'active');
          claimedCount++;
          this.run(claimed);
        }
      }
    });
    return claimedCount;
  }

  private fillFromIncoming(limit: number): number {
    let claimedCount = 0;
    this.guard('incoming scan', () => {
      this.lastIncomingScan = Date.now();
      let exhausted = false;
      // A pass over incoming/ carries on from fill to fill while a backlog
      // lasts. Only a pass begun in this call and read to its end proves that
      // nothing is left (one begun earlier may have missed names added since),
      // so an old pass's end starts a new one at once.
      for (let fresh = this.incomingPass === null; !exhausted; fresh = true) {
        const pass = (this.incomingPass ??= new DirectoryPass(this.spool.dir('incoming')));
        let d: ReturnType<DirectoryPass['read']> = null;
        try {
          while ((d = pass.read()) !== null) {
            const id = parseIncomingName(d.name);
            if (!id || this.heldIds.has(id)) continue;
            if (claimedCount >= limit) {
              pass.unread(d);
              break;
            }
            const claimed = claimIncoming(this.spool, id, Date.now(), this.owner);
            if (claimed) {
              this.observer?.moved('incoming', 'active');
              claimedCount++;
              this.run(claimed);
            }
          }
        } catch (err) {
          // A read or a claim failed (EIO, EMFILE): this pass ends unfinished; the next starts afresh.
          pass.close();
          this.incomingPass = null;
          throw err;
        }
        if (d !== null) break;
        this.incomingPass = null;
        this.incomingReadStartedAt = pass.startedAt;
        this.lines.incomingRead();
        exhausted = fresh;
      }
      // Busy: stop the file events and scan instead (on every completion, and
      // every BUSY_RESCAN_MS). Resume them only after a quiet second, so that
      // a bursty producer does not make the watch restart (and chokidar re-read
      // the directory) at every lull.
      const now = Date.now();
      if (!exhausted) {
        this.quietSince = null;
        if (!this.incomingBacklog) {
          this.incomingBacklog = true;
          this.onIncomingBacklog(true);
        }
      } else if (this.incomingBacklog) {
        this.quietSince ??= now;
        if (now - this.quietSince >= WATCH_RESUME_AFTER_MS) {
          this.incomingBacklog = false;
          this.onIncomingBacklog(false);
          this.watchStarted();
        }
      }
      this.incomingDirty = !exhausted || this.incomingBacklog;
    });
    return claimedCount;
  }

  private wakeAt(at: number): void {
    if (this.nextDue === null || at < this.nextDue) this.nextDue = at;
  }

  private armTimer(): void {
    if (this.stopping) return;
    const now = Date.now();
    let at = Math.max(this.lastIncomingScan, now - this.config.scanInterval) + this.config.scanInterval;
    if (this.nextDue !== null) at = Math.min(at, Math.max(this.nextDue, this.dueScanAfter));
    if (this.incomingBacklog) at = Math.min(at, now + BUSY_RESCAN_MS);
    // In trouble, nothing else may wake the daemon sooner: past-due times
    // would otherwise make a hot loop of failing ticks.
    if (this.stranded.size > 0) at = now + HOST_TROUBLE_DELAY_MS;
    else if (this.troubleUntil > now) at = this.troubleUntil;
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - now));
  }

  /**
   * Next-attempt times are wall-clock times in filenames. A clock stepped
   * back by D makes retries scheduled before the step wait D longer; stepped
   * forward, they come due early. Nothing is lost either way; say so loudly.
   */
  private checkClock(): void {
    const wall = Date.now();
    const mono = performance.now();
    const step = wall - this.clock.wall - (mono - this.clock.mono);
    if (Math.abs(step) > CLOCK_STEP_MS) {
      this.log.warn(
        { event: 'clock-stepped', stepMs: Math.round(step) },
        step < 0 ? `the clock went back ${Math.round(-step / 1000)} s: retries scheduled before now wait that much longer` : `the clock jumped ${Math.round(step / 1000)} s ahead: retries scheduled before now come due early`,
      );
    }
    this.clock = { wall, mono };
  }

  private tick(): void {
    this.timer = null;
    this.timerAt = Infinity;
    this.checkClock();
    const now = Date.now();
    if (this.stranded.size > 0) {
      for (const [key, retry] of this.stranded) {
        try {
          retry();
          this.stranded.delete(key);
        } catch {
          /* still failing: said when it first failed */
        }
      }
      if (this.stranded.size === 0) this.log.warn({ event: 'spool-writable' }, 'moves succeed again; claiming resumes');
      else this.log.error({ event: 'spool-degraded', stranded: this.stranded.size }, `${this.stranded.size} message(s) could not be moved; not claiming until they can`);
    }
    this.dueDirty = true;
    if (this.incomingBacklog || now - this.lastIncomingScan >= this.config.scanInterval) this.incomingDirty = true;
    this.lines.sweep();
    this.fill();
  }

  /** A message is claimed (in active/): read it and queue it for sending. */
  private run(claimed: Claimed): void {
    const { entry } = claimed;
    this.held++;
    this.heldIds.add(entry.id);
    let read: ReturnType<typeof readMessage>;
    try {
      read = readMessage(claimed.path, this.config.maxSize, Date.now(), (st) => dropStagedTwin(this.spool, entry.id, st));
    } catch (err) {
      // Out of file descriptors, an I/O error: the host's trouble. Back to
      // deferred, no attempt spent, and a loud line.
      const later: Entry = { ...entry, time: Date.now() + HOST_TROUBLE_DELAY_MS, attempts: entry.attempts - 1 };
      this.move(entry.id, 'deferred', () => moveToDeferred(this.spool, claimed.path, later));
      this.wakeAt(later.time);
      this.log.error({ event: 'read-failed', id: entry.id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${entry.id} could not be read; retrying`);
      this.release(entry.id);
      return;
    }
    if (read.kind === 'gone') {
      this.release(entry.id);
      return;
    }
    if (read.kind === 'incomplete') {
      // Looked at again once the writer has had time to finish; no attempt spent.
      const later: Entry = { ...entry, time: Date.now() + SETTLE_MS, attempts: entry.attempts - 1, lastError: 'INCOMPLETE' };
      this.move(entry.id, 'deferred', () => moveToDeferred(this.spool, claimed.path, later));
      this.wakeAt(later.time);
      this.log.info({ event: 'not-settled', id: entry.id, queue: 'deferred', reason: read.reason }, `${read.reason}, and written to just now: reading again later`);
      this.release(entry.id);
      return;
    }
    if (read.kind === 'invalid') {
      // Nothing was sent: the attempt the claim counted is not spent.
      this.bounce(claimed, { ...entry, attempts: entry.attempts - 1 }, `invalid message: ${read.reason}`, 'INVALID');
      this.release(entry.id);
      return;
    }
    const message = read.message;
    if (message.orderingKey !== undefined && !this.admitOrdered(claimed, message.orderingKey, read.writtenAt)) return;
    const destination = this.destination(message.origin);
    const rule = destination.settings;
    const plain = rule === null && message.maxAttempts === undefined && message.maxAge === undefined && message.timeout === undefined;
    const policy: DeliveryPolicy = plain ? this.config : {
      minBackoff: this.config.minBackoff,
      maxBackoff: this.config.maxBackoff,
      maxAttempts: this.config.maxAttempts,
      maxAge: this.config.maxAge,
      timeout: this.config.timeout,
      ...(rule?.minBackoff !== undefined && { minBackoff: rule.minBackoff }),
      ...(rule?.maxBackoff !== undefined && { maxBackoff: rule.maxBackoff }),
      ...(rule?.maxAttempts !== undefined && { maxAttempts: rule.maxAttempts }),
      ...(rule?.timeout !== undefined && { timeout: rule.timeout }),
      ...(message.maxAttempts !== undefined && { maxAttempts: message.maxAttempts }),
      ...(message.maxAge !== undefined && { maxAge: message.maxAge }),
      ...(message.timeout !== undefined && { timeout: message.timeout }),
    };
    const now = Date.now();
    const expiry = Math.min(entry.arrival + policy.maxAge, message.expiresAt ?? Infinity);
    if (now >= expiry) {
      const made = entry.attempts - 1;
      const last = describeErrorToken(entry.lastError);
      this.bounce(claimed, { ...entry, attempts: made }, `expired after ${made} attempt${made === 1 ? '' : 's'}${last ? ` (last: ${last})` : ''}`, entry.lastError === '-' ? 'EXPIRED' : entry.lastError);
      this.release(entry.id);
      return;
    }

    const refused = refusal(message.url, { allow: this.config.allowDestinations, deny: this.config.denyDestinations, blockPrivate: this.config.blockPrivate });
    if (refused) {
      this.bounce(claimed, { ...entry, attempts: entry.attempts - 1 }, refused, 'REFUSED', message.url.href);
      this.release(entry.id);
      return;
    }

    entry.destination = destination.tag;
    if (entry.attempts === 1) this.log.info({ event: 'received', id: entry.id, queue: 'active', destination: message.origin, method: message.method, bytes: message.body?.length ?? 0 }, 'received');
    destination.held++;
    const job: Job = { claimed, message, writtenAt: read.writtenAt, destination, policy };
    if (destination.held > this.maxHeldPerDestination(destination)) {
      this.putBack(job, 'destination busy');
      return;
    }
    this.waiting.push(job);
    this.pump();
  }

  /** Per-destination state is keyed by the full origin; the tag only indexes it for the due scan. */
  private destination(origin: string): Destination {
    let d = this.destinations.get(origin);
    if (!d) {
      d = { tag: destinationTag(origin), origin, held: 0, sending: 0, settings: this.settingsFor(origin) };
      this.destinations.set(origin, d);
      this.tagged.set(d.tag, origin);
    }
    return d;
  }

  /** Which origin a trusted tag stands for, while this daemon keeps state for it (destinations and circuits). */
  private readonly tagged = new Map<string, string>();

  private untag(origin: string): void {
    if (!this.destinations.has(origin) && !this.circuits.has(origin)) this.tagged.delete(destinationTag(origin));
  }

  /**
   * A keyed message: goes on if it is its key's head; otherwise into its
   * key's line, its attempt unspent (see ordering.ts).
   */
  private admitOrdered(claimed: Claimed, key: string, writtenAt: number): boolean {
    const { entry } = claimed;
    if (this.lines.admit(claimed, key, writtenAt, (step) => this.move(entry.id, 'ordered', step)) === 'head') return true;
    this.log.debug({ event: 'ordered', id: entry.id, queue: 'ordered' }, 'waiting behind an older message of its key');
    this.release(entry.id);
    return false;
  }

  private settingsFor(origin: string): DestinationSettings | null {
    const url = new URL(origin);
    return this.config.destinationSettings.find((r) => r.match.some((p) => matches(url, p))) ?? null;
  }

  /** Back to deferred/, due at `at` (now), its attempt not spent: it was never sent. */
  private putBack(job: Job, why: string, at = Date.now()): void {
    const { entry } = job.claimed;
    const back: Entry = { ...entry, time: at, attempts: entry.attempts - 1 };
    this.lines.follow(entry.id, this.spool.deferredPath(back.time, formatEntry(back)));
    this.move(entry.id, 'deferred', () => moveToDeferred(this.spool, job.claimed.path, back));
    this.log.debug({ event: 'put-back', id: entry.id, queue: 'deferred', destination: job.destination.origin, why }, 'not sent; back to deferred');
    this.finish(job);
  }

  private circuitSettings(settings: DestinationSettings | null): CircuitSettings {
    const concurrency = settings?.concurrency ?? this.config.perDestination;
    return { deadAfter: deadThreshold(this.config.deadAfter, concurrency), coolOff: this.config.deadCoolOff, maxCoolOff: this.config.deadMaxCoolOff };
  }

  private circuit(d: Destination): Circuit {
    let c = this.circuits.get(d.origin);
    if (!c) {
      this.circuits.set(d.origin, (c = new Circuit(this.circuitSettings(d.settings))));
      this.tagged.set(d.tag, d.origin);
    }
    return c;
  }

  private forget(origin: string): void {
    this.circuits.delete(origin);
    this.untag(origin);
  }

  /** Dead destinations, for `spoolctl stats` and the status page. */
  deadDestinations(): { tag: string; origin: string; state: string; failures: number; until: string }[] {
    return [...this.circuits]
      .filter(([, c]) => c.state !== 'ok')
      .map(([origin, c]) => ({ tag: destinationTag(origin), origin, state: c.state, failures: c.failures, until: new Date(c.deadUntil).toISOString() }));
  }

  /** A dead destination's state is written where spoolctl can read it (rarely: on changes only). */
  onDestinationsChanged: () => void = () => undefined;

  private circuitEnded(job: Job, result: AttemptResult, now: number): void {
    // This host's trouble (no file descriptors or ports left, our own cut at
    // shutdown) says nothing about the destination.
    if (result.kind === 'error' && HOST_SIDE_ERRORS.has(result.code)) return;
    const transient = result.kind === 'error' ? result.code !== BLOCKED_CODE : result.status >= 500 || result.status === 408 || result.status === 429;
    // A healthy destination has no record: nothing to count, nothing to make.
    if (!transient && !this.circuits.has(job.destination.origin)) return;
    const c = this.circuit(job.destination);
    const change = c.ended(transient, now, job.probe === true);
    if (change === null) {
      if (c.forgettable) this.forget(job.destination.origin);
      return;
    }
    const d = { destination: job.destination.origin, failures: c.failures, deadUntil: new Date(c.deadUntil).toISOString() };
    if (change === 'died') this.log.warn({ event: 'destination-dead', ...d }, `${job.destination.origin} failed ${c.failures} times in a row: not sending to it until ${d.deadUntil}`);
    else if (change === 'still-dead') this.log.warn({ event: 'destination-still-dead', ...d }, `${job.destination.origin} failed its probe: not sending to it until ${d.deadUntil}`);
    else {
      this.log.info({ event: 'destination-reopened', destination: job.destination.origin }, `${job.destination.origin} answered its probe: sending again`);
      this.forget(job.destination.origin);
      this.dueChanged();
    }
    this.onDestinationsChanged();
  }

  /**
   * Takes one request from the destination's per-second budget, if it has
   * one; false (and a wake-up when the next token is due) when it is spent.
   */
  private takeToken(d: Destination): boolean {
    const rps = d.settings?.rps;
    if (!rps) return true;
    const now = performance.now();
    const burst = Math.max(1, rps);
    let b = this.buckets.get(d.origin);
    if (!b) {
      // Kept apart from the destination (which goes when idle), so a budget spent is not refilled by a lull.
      if (this.buckets.size >= 10_000) for (const [origin, old] of this.buckets) if (now - old.at > 60_000) this.buckets.delete(origin);
      this.buckets.set(d.origin, (b = { tokens: burst, at: now }));
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rps) / 1000);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    const wait = Math.ceil(((1 - b.tokens) * 1000) / rps);
    if (!this.pumpTimer) this.pumpTimer = setTimeout(() => ((this.pumpTimer = null), this.pump()), wait);
    return false;
  }

  private pumpTimer: NodeJS.Timeout | null = null;
  /** Destinations failing in a row, dead or probing, by origin (kept while the destination is idle). */
  private readonly circuits = new Map<string, Circuit>();
  /** Requests-per-second budgets (settings.rps) by origin: tokens left as of `at` (monotonic ms). */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  private pump(): void {
    const now = Date.now();
    for (let i = 0; i < this.waiting.length && this.sending < this.config.concurrency; ) {
      const job = this.waiting[i]!;
      const circuit = this.circuits.get(job.destination.origin);
      if (circuit && !circuit.admits(now)) {
        // Dead: back to deferred until the cool-off ends. Probing: wait here for the probe's answer.
        if (circuit.state === 'dead') {
          this.waiting.splice(i, 1);
          this.wakeAt(circuit.deadUntil);
          return this.putBack(job, 'destination dead', circuit.deadUntil); // which pumps again
        }
        i++;
        continue;
      }
      if (job.destination.sending >= this.limitOf(job.destination) || !this.takeToken(job.destination)) {
        i++;
        continue;
      }
      if (circuit) {
        circuit.started(now);
        job.probe = circuit.state === 'probing';
      }
      this.waiting.splice(i, 1);
      this.sending++;
      job.destination.sending++;
      const p = this.deliver(job).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
  }

  private async deliver(job: Job): Promise<void> {
    const { claimed, message, policy } = job;
    const { entry } = claimed;
    const sender = this.sender;
    this.senders.add(sender);
    let result: AttemptResult;
    try {
      if (this.log.isLevelEnabled('debug')) this.log.debug({ event: 'attempt', id: entry.id, destination: message.origin, attempt: entry.attempts, ...(job.probe && { probe: true }) }, 'sending');
      const rule = job.destination.settings;
      result = await sender.send(message, {
        id: entry.id,
        timeout: policy.timeout,
        signingKeys: rule?.signingKeys ?? this.config.signingKeys,
        ...(rule?.headers && { headers: rule.headers }),
      });
    } catch (err) {
      result = { kind: 'error', code: 'ERROR', message: String(err), elapsed: 0 };
    }
    const now = Date.now();
    const decision = classify(result, { attempts: entry.attempts, arrival: entry.arrival, now, policy, expiresAt: message.expiresAt });
    this.circuitEnded(job, result, now);
    this.settle(job, result, decision, now);
    this.sending--;
    job.destination.sending--;
    this.finish(job);
  }

  private settle(job: Job, result: AttemptResult, decision: Decision, now: number): void {
    const { claimed, message } = job;
    const { entry } = claimed;
    const base = {
      id: entry.id,
      destination: message.origin,
      attempt: entry.attempts,
      ...(result.kind === 'response' ? { status: result.status } : { error: result.code, detail: result.message }),
      ms: result.elapsed,
    };
    switch (decision.outcome) {
      case 'delivered':
        // The only place a message file is removed: after a confirmed 2xx.
        this.move(entry.id, 'delivered', () => complete(claimed.path));
        this.lines.done(entry.id);
        this.observer?.outcome('delivered', message.origin, { ms: result.elapsed, attempts: entry.attempts, writtenAt: job.writtenAt });
        this.log.info({ event: 'delivered', queue: 'active', ...base }, 'delivered');
        return;
      case 'deferred': {
        const next: Entry = { ...entry, time: decision.nextAttempt, lastError: decision.lastError };
        this.lines.follow(entry.id, this.spool.deferredPath(next.time, formatEntry(next)));
        this.move(entry.id, 'deferred', () => moveToDeferred(this.spool, claimed.path, next));
        this.observer?.outcome('deferred', message.origin, { ms: result.elapsed });
        this.wakeAt(decision.nextAttempt);
        this.log.info({ event: 'deferred', queue: 'deferred', ...base, reason: decision.reason, delayMs: decision.delay, nextAttemptAt: new Date(decision.nextAttempt).toISOString() }, `deferred: ${decision.reason}`);
        return;
      }
      case 'bounced':
        this.bounce(claimed, { ...entry, time: now, lastError: decision.lastError }, decision.reason, decision.lastError, message.url.href, result.elapsed);
        return;
    }
  }

  /** `ms`: the last request's time, when the bounce follows one. */
  private bounce(claimed: Claimed, entry: Entry, reason: string, lastError: string, url?: string, ms?: number): void {
    const now = Date.now();
    const record: BounceRecord = {
      id: entry.id,
      reason,
      lastError: describeErrorToken(lastError),
      attempts: entry.attempts,
      arrival: new Date(entry.arrival).toISOString(),
      bouncedAt: new Date(now).toISOString(),
      ...(url && { url }),
    };
    const bounced: Entry = { ...entry, time: now, lastError };
    const announce = announces({ url: this.config.bounceHook, command: this.config.bounceCommand }, entry.id) ? (name: string) => writeNotice(this.spool, name, record) : undefined;
    this.move(entry.id, 'bounced', () => moveToBounced(this.spool, claimed.path, bounced, record, announce));
    this.log.warn({ event: 'bounced', id: entry.id, queue: 'bounced', attempts: entry.attempts, reason }, `bounced: ${reason}`);
    this.observer?.outcome('bounced', url ? new URL(url).origin : '-', ms === undefined ? {} : { ms });
    this.lines.done(entry.id);
    this.onBounced(record);
  }

  /** Told of every bounce once its record is in bounced/ (its notice, if any, is in the outbox). */
  onBounced: (record: BounceRecord) => void = () => undefined;

  /** A failed move leaves the message where it is (still safe) and is retried on each tick. */
  private move(id: string, queue: 'delivered' | 'deferred' | 'bounced' | 'ordered', step: () => void): void {
    try {
      step();
      this.observer?.moved('active', queue === 'delivered' ? null : queue);
    } catch (err) {
      this.log.error({ event: 'move-failed', id, queue, err }, `message ${id}: move to ${queue} failed; left in active/, retrying`);
      this.stranded.set(`${id}:${queue}`, step);
    }
  }

  private finish(job: Job): void {
    job.destination.held--;
    if (job.destination.held === 0 && job.destination.sending === 0) {
      this.destinations.delete(job.destination.origin);
      this.untag(job.destination.origin);
    }
    this.release(job.claimed.entry.id);
    // Due messages were passed over for a busy destination: look again soon,
    // but not on every completion (the passed-over names are re-read each time).
    if (this.passedOverBusy) this.wakeAt(Date.now() + BUSY_RESCAN_MS);
    this.pump();
  }

  private release(id: string): void {
    this.held--;
    this.heldIds.delete(id);
    this.scheduleFill();
  }

  /**
   * Stops claiming; messages waiting for a slot go back to deferred/ unsent;
   * requests in flight get `grace` ms, then are cut and deferred. Nothing is
   * left in active/ unless a move itself fails.
   */
  async stop(grace: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.incomingPass?.close();
    this.incomingPass = null;
    for (const job of this.waiting.splice(0)) this.putBack(job, 'shutting down');
    if (this.inFlight.size > 0) {
      this.log.info({ event: 'draining', inFlight: this.inFlight.size, graceMs: grace }, 'waiting for requests in flight');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, grace)))]);
      clearTimeout(timer);
    }
    if (this.inFlight.size > 0) {
      this.log.warn({ event: 'cut-off', inFlight: this.inFlight.size }, 'grace period over; cutting requests in flight, they will be retried');
      await this.cutOff();
      await Promise.allSettled([...this.inFlight]);
    }
    for (const [, retry] of this.stranded) {
      try {
        retry();
      } catch {
        /* left in active/: recovered at the next start */
      }
    }
  }

  private async cutOff(): Promise<void> {
    await Promise.all([...this.senders].map((s) => s.close()));
  }
}
