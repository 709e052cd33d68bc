/**
 * The queue manager: claims messages from incoming/ and deferred/ into an
 * active set held in memory, queued per destination, and sends each when a
 * slot to its destination is free (Postfix's qmgr, qmgr_active.c). It
 * composes the parts, each of which owns its own state:
 *
 *   incoming-scan  claims producers' files (file events, backlogs, rescans)
 *   due-scan       finds retries whose time has come in deferred/
 *   wakeup         the one timer
 *   destinations   the destination table: window, circuit, rate, queue
 *   admission      which due message is claimed, which claimed one is sent
 *   outcome        the moves after an attempt, and put-backs
 *   ordering       orderingKey lines
 *
 * The spool on disk is the queue: the active set holds at most
 * --active-limit messages (a path, a name and a destination each, plus the
 * parsed message while --active-bytes allows), so memory is bounded whatever
 * the backlog. Like qmgr, it reads only what it can schedule: what the slots
 * need (twice --concurrency). Beyond that it reads ahead, a slice at a time,
 * only while reading ahead finds messages for destinations that could send
 * them: a slow destination's backlog must not hide another's fresh messages,
 * and a single busy destination must not fill memory with its own (holding
 * thousands costs a third more CPU per message, in the collector). Nothing
 * goes back to deferred/ because its destination is busy: a message goes
 * back unsent only when its destination is dead, or when the daemon stops.
 *
 * Time: next-attempt times are wall-clock times in filenames; every spacing,
 * timer and cool-off runs on the monotonic clock (see clock.ts), so a wall
 * clock stepped back delays only the retries written before the step.
 */
import fs from 'node:fs';
import { classify, signalOf, type AttemptResult } from '../delivery/classify.js';
import { matches, refusal } from '../delivery/guard.js';
import { scheduledAt, type Message } from '../delivery/message.js';
import type { Sender } from '../delivery/send.js';
import type { Config, DeliveryPolicy, DestinationSettings } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { claimDeferred, claimIncoming, type Claimed } from '../spool/claim.js';
import type { Spool } from '../spool/layout.js';
import { complete, completeSomewhere, UnlinkPlace, type BounceRecord } from '../spool/moves.js';
import { clearDelayed, dropAttempts, dropUnfinishedKeep, keepDelivered, type AttemptRecord } from '../spool/history.js';
import { notifies, writeMessageNotice } from '../service/notices.js';
import { isPaused, pausedFor, readPauses, type Pause } from '../spool/pauses.js';
import { describeErrorToken, incomingName, isTrustedTag, parseIncomingName, TOKENS, type Entry } from '../spool/names.js';
import { readMessage, SETTLE_MS, type ReadResult } from '../spool/read.js';
import { dropStagedTwin } from '../spool/staging.js';
import { dueVerdict, maySend, Rotation, strangerVerdict } from './admission.js';
import { realClock, wallAt, type Clock } from './clock.js';
import { DestinationTable, heldBy, type Destination } from './destinations.js';
import { DueScan } from './due-scan.js';
import type { DueEntry } from '../spool/due.js';
import { IncomingScan } from './incoming-scan.js';
import { Partition } from './partition.js';
import type { Job } from './job.js';
import { KeyLines } from './ordering.js';
import { Outcomes, type DeliveryObserver } from './outcome.js';
import { Wakeup } from './wakeup.js';

export type { DeliveryObserver } from './outcome.js';

/** How long claiming pauses after the host failed us (EMFILE, EIO, a failed move). */
const HOST_TROUBLE_DELAY_MS = 1000;
/** A wall-clock jump larger than this, against the monotonic clock, is a step. */
const CLOCK_STEP_MS = 2000;
/** How often paused/ is looked at for pauses and resumes (a stat; read when it changed). */
const PAUSE_CHECK_MS = 1000;
/**
 * Claims per turn of the event loop: a large backlog is taken in slices, so
 * requests keep flowing meanwhile. A claim (a rename, a read, a parse) holds
 * the loop 60-80 us on a disk: slices of 256 held it 10-50 ms while a slow
 * destination's retries filled its share of the active set, and another
 * destination's fresh messages waited behind them (p99 11-18 ms, 4-5 with
 * 64). Smaller slices mean more fills, each opening files between requests:
 * they hold only because the concurrency leaves descriptors free for them
 * (service/descriptors.ts; torture 4).
 */
const CLAIM_BATCH = 64;
/** Reading ahead that found nothing that could go out waits this long at first, doubling up to READ_AHEAD_MAX_MS. */
const READ_AHEAD_MIN_MS = 50;
const READ_AHEAD_MAX_MS = 1000;
/**
 * Delivered messages whose keep and unlink may be under way at once. They
 * stay held until their file is gone (see remove), so a disk slower than the
 * receiver would otherwise fill the whole active set (--active-limit) with
 * them, each with its promises and record: a keep-delivered drain on a slow
 * disk peaked at 205 MB without this bound, 129 MB with it on a slower one.
 * At this bound claiming waits, and the disk, not memory, sets the pace. At
 * 5,000 msgs/s a removal would have to take 50 ms to reach it.
 */
const REMOVALS_LIMIT = 256;
/** While the set is full, incoming/ is looked through for other destinations' messages at most this often, a slice at a time. */
const STRANGER_PASS_MS = 1000;

/** One destination as reported (spoolctl stats, the status page, metrics). */
export interface DestinationReport {
  origin: string;
  state: 'ok' | 'dead' | 'probing' | 'paused';
  /** Requests that may be in flight now, and at most. */
  window: number;
  limit: number;
  inFlight: number;
  waiting: number;
  failures: number;
  /** Held back until (ISO), when dead. */
  until: string | null;
  lastError: string | null;
}

export class QueueManager {
  private readonly table: DestinationTable;
  private readonly rotation = new Rotation();
  private readonly partition: Partition;
  private readonly incoming: IncomingScan;
  private readonly due: DueScan;
  private readonly wakeup: Wakeup;
  private readonly lines: KeyLines;
  private readonly outcomes: Outcomes;

  /** Ids of the messages in the active set. */
  private readonly held = new Set<string>();
  /** Bytes of parsed messages kept in the active set (see --active-bytes). */
  private keptBytes = 0;
  private sending = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Delivered messages whose unlink is under way (see remove). */
  private readonly removing = new Set<Promise<void>>();
  /** Whether those unlinks are done on the event loop or in the thread pool. */
  private readonly unlinkPlace = new UnlinkPlace();
  /** Senders with requests in flight, by how many (an old one lingers after a reload until its last answer). */
  private readonly senders = new Map<Sender, number>();
  /** Moves that failed (disk full, permissions): retried on every tick; no claiming meanwhile. */
  private readonly stranded = new Map<string, () => void>();
  private troubleUntil = -Infinity;
  /** Due messages were passed over because their destination held its share: look again as it empties. */
  private passedOver = false;
  private fillQueued = false;
  /** Reading ahead (see fill) may go on from this time (monotonic), after this pause. */
  private readAheadAt = -Infinity;
  private readAheadPause = 0;
  /** Claims for a destination that could send them soon, counted to tell whether reading ahead finds any. */
  private usefulClaims = 0;
  /** The next look for strangers may be made from this time (monotonic; see fill). */
  private strangersAt = -Infinity;
  private stopping = false;
  /** Pauses in force and over (spool/pauses.ts), as last read; when paused/ last changed, and was looked at. */
  private pauses: Pause[] = [];
  private pausesChanged = -1;
  private pausesCheckedAt = -Infinity;
  private lastClock: { wall: number; mono: number };
  private lastDispose: number;
  /** Claims whose rename found the file gone: another daemon sharing the spool (or an operator) took it first. */
  readonly claimsMissed = { incoming: 0, deferred: 0 };

  /** Metrics, when they are on. */
  observer: DeliveryObserver | null = null;
  /** Told of every bounce once it is in bounced/ (its notice, if any, is in the outbox). */
  onBounced: (record: BounceRecord) => void = () => undefined;
  /** Told when a delivered, delayed or recovered notice is in the outbox. */
  onNotice: () => void = () => undefined;
  /** Told when a destination dies or reopens (spoolctl stats should hear of it soon). */
  onDestinationsChanged: () => void = () => undefined;
  /** Told of a wall-clock step: how far, and the wall time just before it. */
  onClockStep: (stepMs: number, before: number) => void = () => undefined;
  /** How much older a message is than the wall clock says (clock steps since it arrived): its arrival, corrected. */
  arrivalOf: (arrival: number) => number = (arrival) => arrival;

  constructor(
    private readonly spool: Spool,
    private config: Config,
    private sender: Sender,
    private readonly log: Logger,
    /** This daemon's owner id in a shared spool, written into its claims' names; null alone. */
    private readonly owner: string | null = null,
    private readonly clock: Clock = realClock,
  ) {
    this.table = new DestinationTable(this.tablePolicy(), () => clock.mono());
    this.lastClock = { wall: clock.wall(), mono: clock.mono() };
    this.lastDispose = clock.mono();
    this.wakeup = new Wakeup(clock, () => this.tick());
    this.partition = new Partition(owner);
    this.incoming = new IncomingScan(spool, clock, {
      isHeld: (id) => this.held.has(id),
      claim: (id) => this.claim(claimIncoming(this.spool, id, this.clock.wall(), this.owner), 'incoming'),
      mine: (id) => this.partition.mine(id),
      backlogChanged: () => undefined,
      readEnded: () => this.lines.incomingRead(),
    });
    this.due = new DueScan(spool, clock);
    this.lines = new KeyLines({
      spool,
      clock,
      shared: owner !== null,
      isHeld: (id) => this.held.has(id),
      incomingReadStartedAt: () => this.incoming.readStartedAt,
      readIncoming: () => {
        this.incoming.dirty = true;
        this.scheduleFill();
      },
      stopping: () => this.stopping,
      guard: (what, step) => this.guard(what, step),
      madeDue: () => {
        this.observer?.moved('ordered', 'deferred');
        this.dueChanged();
      },
    });
    this.outcomes = new Outcomes({
      spool,
      log,
      lines: this.lines,
      config: () => this.config,
      observer: () => this.observer,
      move: (id, queue, step) => this.move(id, queue, step),
      remove: (job, final, then) => this.remove(job, final, then),
      deferred: (entry, path) => {
        this.due.added(entry, path);
        this.wakeup.atWall(entry.time);
      },
      bounced: (record) => this.onBounced(record),
      noticed: () => this.onNotice(),
    });
  }

  /**
   * Alone, the active set holds up to --active-limit. Sharing the spool, a
   * daemon holds at most twice its concurrency, so that a burst is shared
   * with its peers instead of claimed whole by the first to see it.
   */
  private get activeLimit(): number {
    return this.owner === null ? this.config.activeLimit : Math.min(this.config.activeLimit, 2 * this.config.concurrency);
  }

  private tablePolicy() {
    const { perDestination, deadAfter, deadCoolOff, deadMaxCoolOff } = this.config;
    return { perDestination, deadAfter, deadCoolOff, deadMaxCoolOff, settingsFor: (origin: string) => this.settingsFor(origin) };
  }

  private settingsFor(origin: string): DestinationSettings | null {
    const url = new URL(origin);
    return this.config.destinationSettings.find((r) => r.match.some((p) => matches(url, p))) ?? null;
  }

  /** Requests in flight now. */
  get inFlightCount(): number {
    return this.sending;
  }

  /** Messages in the active set now (claimed, waiting or in flight). */
  get activeCount(): number {
    return this.held.size;
  }

  /** Messages were made due from outside (a peer's claims recovered, the status page): look at deferred/ now. */
  dueChanged(): void {
    this.due.changed();
    this.scheduleFill();
  }

  /**
   * The watch has just started: files renamed in while chokidar was setting
   * it up raised no event. Scan again once it surely is in place.
   */
  watchStarted(): void {
    for (const delay of [50, 500]) {
      this.clock.setTimeout(() => ((this.incoming.dirty = true), this.scheduleFill()), delay).unref?.();
    }
  }

  /** New settings and sender for what comes next; work in flight is left alone. */
  reconfigure(config: Config, sender: Sender): void {
    this.config = config;
    this.sender = sender;
    this.table.reconfigure(this.tablePolicy(), this.clock.mono());
    this.pump();
    this.scheduleFill();
  }

  start(): void {
    this.refreshPauses(true);
    this.fill();
  }

  /**
   * Pauses take effect, and resumes, within a second or a tick: paused/ is
   * stat'ed, and read only when it changed. A side path: an unreadable
   * folder keeps the pauses last read.
   */
  private refreshPauses(force = false): void {
    const now = this.clock.mono();
    if (!force && now - this.pausesCheckedAt < PAUSE_CHECK_MS) return;
    this.pausesCheckedAt = now;
    try {
      let changed: number;
      try {
        changed = fs.statSync(this.spool.dir('paused')).mtimeMs;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        changed = 0;
      }
      if (changed === this.pausesChanged) return;
      this.pauses = readPauses(this.spool);
      this.pausesChanged = changed;
    } catch (err) {
      this.log.error({ event: 'spool-error', step: 'pauses', error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not read paused/; the pauses last read stay in force');
      return;
    }
    for (const d of this.table.values()) this.applyPause(d);
  }

  /** paused/ was changed from inside the daemon (the status page): in force at once, not within a second. */
  reloadPauses(): void {
    this.refreshPauses(true);
  }

  /** Whether the pauses cover this destination now; a change is carried out (messages put back, or made due again). */
  private applyPause(d: Destination): void {
    const paused = this.pauses.length > 0 && isPaused(this.pauses, new URL(d.origin));
    if (paused === d.paused) return;
    d.paused = paused;
    if (paused) {
      this.log.warn({ event: 'destination-paused', destination: d.origin }, `${d.origin} is paused: nothing is sent to it until it is resumed`);
      this.putBackWaiting(d, this.clock.wall(), 'destination-paused');
    } else {
      this.log.info({ event: 'destination-resumed', destination: d.origin }, `${d.origin} is resumed: sending again`);
      this.table.touched(d, this.clock.mono());
      this.dueChanged();
    }
    this.onDestinationsChanged();
  }

  /** When a message's age (--max-age) counts from: its arrival, corrected for clock steps, later by the time its destination was paused. */
  private ageFrom(arrival: number, url: URL, now: number): number {
    return this.arrivalOf(arrival) + (this.pauses.length > 0 ? pausedFor(this.pauses, url, arrival, now) : 0);
  }

  /** A name appeared in incoming/ (a hint from the watcher). */
  noticeIncoming(name: string): void {
    const id = parseIncomingName(name);
    // Our own claim's rename shows up here too: the id is held by then. Another
    // daemon's part is its to claim (partition.ts); scans take what it leaves.
    if (!id || this.stopping || this.held.has(id) || !this.partition.mine(id)) return;
    // A named file is no blind read: claimed whenever the set has room, or
    // into the reserve when the set is full of other destinations' messages.
    if (!this.inTrouble() && !this.removalsFull && (this.held.size < this.activeLimit || (this.held.size < this.activeLimit + this.config.concurrency && this.isStranger(id)))) {
      this.guard('claim', () => void this.claim(claimIncoming(this.spool, id, this.clock.wall(), this.owner), 'incoming'));
    } else {
      this.incoming.dirty = true;
      this.scheduleFill();
    }
  }

  /**
   * Whether a message still in incoming/ is for a destination holding less
   * than its share of the set (see admission.ts). Read, not claimed: only
   * while the set is full. What cannot be read here is left to the claim,
   * which bounces or retries it as usual.
   */
  private isStranger(id: string): boolean {
    let read: ReadResult;
    try {
      read = readMessage(this.spool.path('incoming', incomingName(id)), this.config.maxSize, this.clock.wall());
    } catch {
      return false;
    }
    if (read.kind === 'gone') return false;
    return read.kind !== 'message' || strangerVerdict(this.table.peek(read.message.origin), this.activeLimit) === 'claim';
  }

  /** In a shared spool: the owners of the live leases, among which incoming/ is partitioned. */
  sharedWith(owners: Iterable<string>): void {
    if (this.partition.peers(owners)) this.log.info({ event: 'partition', parts: this.partition.parts }, `incoming/ is split among ${this.partition.parts} daemons`);
  }

  /** A claim was made (or not): takes the message up. */
  private claim(claimed: Claimed | null, from: 'incoming' | 'deferred'): boolean {
    if (!claimed) {
      this.claimsMissed[from]++;
      this.observer?.claimMissed(from);
      return false;
    }
    this.observer?.moved(from, 'active');
    this.run(claimed);
    return true;
  }

  private inTrouble(): boolean {
    return this.stranded.size > 0 || this.clock.mono() < this.troubleUntil;
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
      this.troubleUntil = this.clock.mono() + HOST_TROUBLE_DELAY_MS;
      this.wakeup.at(this.troubleUntil);
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

  /** Claims the slots need now (twice the concurrency, less what is held). */
  private get needed(): number {
    return Math.max(0, 2 * this.config.concurrency - this.held.size);
  }

  /** Whether claiming waits for delivered messages' files to be gone (see REMOVALS_LIMIT). */
  private get removalsFull(): boolean {
    return this.removing.size >= REMOVALS_LIMIT;
  }

  /** How many may be claimed now: what the slots need, or a slice of reading ahead when it may help (see the header). */
  private allowance(): number {
    if (this.removalsFull) return 0;
    const room = this.activeLimit - this.held.size;
    const ahead = this.sending < this.config.concurrency && this.clock.mono() >= this.readAheadAt ? CLAIM_BATCH : 0;
    return Math.min(room, Math.max(this.needed, ahead), CLAIM_BATCH);
  }

  /** Claims what there is room for, a slice at a time. */
  private fill(): void {
    if (this.stopping) return;
    // While a move is failing (disk full, permissions), claiming more would
    // only strand more: wait for the tick that finds the spool writable again.
    if (this.inTrouble()) return this.arm();
    // Waiting for the disk: the removal that ends below the bound fills again.
    if (this.removalsFull) return this.arm();
    const needed = this.needed;
    const room = this.allowance();
    this.usefulClaims = 0;
    let claimed = 0;
    // Retries and fresh messages share a fill, so neither starves the other.
    if (room > claimed && this.due.wanted()) claimed += this.fillFromDeferred(this.incoming.dirty ? Math.ceil(room / 2) : room);
    if (room > claimed && this.incoming.dirty) this.guard('incoming scan', () => (claimed += this.incoming.fill(room - claimed)));
    if (room > claimed && this.due.wanted()) claimed += this.fillFromDeferred(room - claimed);
    // Full: a fresh message for another destination whose file event was
    // missed (a watch starting, an overflow) must not wait behind the backlog.
    if (this.held.size >= this.activeLimit && this.incoming.dirty && this.clock.mono() >= this.strangersAt) {
      this.strangersAt = this.clock.mono() + STRANGER_PASS_MS;
      const reserve = this.activeLimit + this.config.concurrency;
      this.guard('incoming scan', () => (claimed += this.incoming.findStrangers(CLAIM_BATCH, (id) => this.held.size < reserve && this.isStranger(id))));
    }
    // Read ahead (allowed beyond what the slots need): on at once if it found
    // messages that can go out, else after a pause that doubles, found nothing
    // included: arm() wakes at readAheadAt, and one left in the past is a 0 ms
    // timer, each a read of incoming/, while the slots need no claims.
    if (room > needed) {
      this.readAheadPause = this.usefulClaims > 0 ? 0 : Math.min(READ_AHEAD_MAX_MS, Math.max(READ_AHEAD_MIN_MS, this.readAheadPause * 2));
      this.readAheadAt = this.clock.mono() + this.readAheadPause;
    }
    // A slice was taken and there may be more: the next one after this turn's requests are out.
    if (claimed >= room && room > 0 && this.allowance() > 0 && (this.incoming.dirty || this.due.waiting)) this.scheduleFill();
    this.arm();
  }

  private fillFromDeferred(limit: number): number {
    let claimed = 0;
    this.guard('deferred scan', () => {
      const now = this.clock.mono();
      const picked = new Map<Destination, number>();
      let deadUntil = Infinity;
      const pass = (e: Entry) => {
        if (this.held.has(e.id)) return true;
        // The tag only finds the record; a legacy 32-bit tag passes nothing over.
        const d = isTrustedTag(e.destination) ? this.table.tagged(e.destination) : undefined;
        if (!d) return false;
        const n = picked.get(d) ?? 0;
        if (dueVerdict(d, n, this.activeLimit, now) === 'pass') {
          if (d.circuit && d.circuit.state !== 'ok') deadUntil = Math.min(deadUntil, d.circuit.deadUntil);
          else this.passedOver = true;
          return true;
        }
        picked.set(d, n + 1);
        return false;
      };
      const take = (due: DueEntry[]) => {
        for (const { entry, path } of due) {
          if (this.held.has(entry.id)) continue;
          if (this.claim(claimDeferred(this.spool, path, entry, this.clock.wall(), this.owner), 'deferred')) claimed++;
        }
      };
      // What the upcoming list holds costs no reading of deferred/, so it is not spaced.
      if (this.due.listDue()) take(this.due.take(limit, pass));
      if (claimed < limit && this.due.ready()) take(this.due.scan(limit - claimed, pass));
      if (deadUntil !== Infinity) {
        this.due.scanBy(deadUntil);
        this.wakeup.at(deadUntil);
      }
    });
    return claimed;
  }

  /** Sets the timer for the earliest thing that needs a look. */
  private arm(): void {
    if (this.stopping) return;
    const now = this.clock.mono();
    // In trouble, nothing else may wake the daemon sooner: past-due times
    // would otherwise make a hot loop of failing ticks.
    if (this.stranded.size > 0) return this.wakeup.at(now + HOST_TROUBLE_DELAY_MS);
    if (now < this.troubleUntil) return this.wakeup.at(this.troubleUntil);
    // Nothing may be claimed now: room, not time, is what claiming waits for
    // (release() fills again), or the pause of reading ahead.
    if (this.held.size >= this.activeLimit && this.incoming.dirty) this.wakeup.at(Math.max(now, this.strangersAt));
    if (this.removalsFull || (this.needed === 0 && (this.held.size >= this.activeLimit || this.sending >= this.config.concurrency))) return this.wakeup.at(now + this.config.scanInterval);
    if (this.needed === 0 && (this.incoming.dirty || this.due.waiting)) this.wakeup.at(this.readAheadAt);
    this.wakeup.at(this.incoming.nextScanAt(this.config.scanInterval));
    // Nothing may be claimed before one of the above: a due retry would only wake it to find no room.
    if (this.allowance() === 0) return;
    this.wakeup.at(this.due.wakeAt(this.config.scanInterval));
  }

  /**
   * Next-attempt times are wall-clock times in filenames. A clock stepped
   * back by D makes retries scheduled before the step wait D longer; stepped
   * forward, they come due early. Nothing is lost either way; say so loudly.
   */
  private checkClock(): void {
    const wall = this.clock.wall();
    const mono = this.clock.mono();
    const step = wall - this.lastClock.wall - (mono - this.lastClock.mono);
    if (Math.abs(step) > CLOCK_STEP_MS) {
      this.log.warn(
        { event: 'clock-stepped', stepMs: Math.round(step) },
        step < 0 ? `the clock went back ${Math.round(-step / 1000)} s: retries scheduled before now wait that much longer` : `the clock jumped ${Math.round(step / 1000)} s ahead: retries scheduled before now come due early`,
      );
      this.onClockStep(step, this.lastClock.wall + (mono - this.lastClock.mono));
    }
    this.lastClock = { wall, mono };
  }

  private tick(): void {
    this.checkClock();
    this.refreshPauses();
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
    const now = this.clock.mono();
    // Messages made due by others (spoolctl flush and release, peers) are found here, within --scan-interval.
    this.due.rescanEvery(this.config.scanInterval);
    if (this.incoming.backlog || now - this.incoming.lastScan >= this.config.scanInterval) this.incoming.dirty = true;
    this.lines.sweep();
    if (now - this.lastDispose >= 1000) {
      this.lastDispose = now;
      this.table.dispose(now);
    }
    this.pump();
    this.fill();
  }

  /** A message is claimed (in active/): read it and queue it for its destination. */
  private run(claimed: Claimed): void {
    const { entry } = claimed;
    this.held.add(entry.id);
    const read = this.read(claimed);
    if (read === null) return;
    const message = read.message;
    // A scheduled first delivery waits in deferred/ like a retry, its time in
    // its name: no timer held, restarts lose nothing. Looked at until the
    // message has been scheduled or tried (a last error of its own), so a kill
    // between the claim and the move cannot send it early (recovery keeps
    // the token of a message never tried), and once it is scheduled a flush
    // sends it at once.
    const scheduled = scheduledAt(message, read.writtenAt);
    const at = entry.lastError === '-' || entry.lastError === TOKENS.incomplete ? scheduled : null;
    if (at !== null && at > this.clock.wall()) {
      if (message.expiresAt !== undefined && at >= message.expiresAt) {
        this.outcomes.bounce(claimed, { ...entry, attempts: 0 }, 'scheduled after its expiresAt: it would expire before its first attempt', TOKENS.expired, this.clock.wall(), message.origin, undefined, message.url.href);
      } else this.outcomes.schedule(claimed, at, message.origin);
      return this.release(entry.id);
    }
    if (message.orderingKey !== undefined && !this.admitOrdered(claimed, message.orderingKey, read.writtenAt)) return;
    const destination = this.table.get(message.origin);
    this.applyPause(destination);
    if (destination.paused) {
      // Back unsent, its attempt unspent, tagged so that the due scan passes it over.
      entry.destination = destination.tag;
      this.outcomes.putBack(claimed, this.clock.wall(), 'destination-paused');
      return this.release(entry.id);
    }
    const policy = this.policyFor(destination.settings, message);
    const wallNow = this.clock.wall();
    const expiry = Math.min(this.ageFrom(entry.arrival, message.url, wallNow) + policy.maxAge, message.expiresAt ?? Infinity);
    if (wallNow >= expiry) {
      const made = entry.attempts - 1;
      const last = describeErrorToken(entry.lastError);
      this.outcomes.bounce(claimed, { ...entry, attempts: made }, `expired after ${made} attempt${made === 1 ? '' : 's'}${last ? ` (last: ${last})` : ''}`, entry.lastError === '-' ? TOKENS.expired : entry.lastError, wallNow, message.origin, undefined, message.url.href);
      return this.release(entry.id);
    }
    const refused = refusal(message.url, { allow: this.config.allowDestinations, deny: this.config.denyDestinations, blockPrivate: this.config.blockPrivate });
    if (refused) {
      this.outcomes.bounce(claimed, { ...entry, attempts: entry.attempts - 1 }, refused, TOKENS.refused, wallNow, message.origin, undefined, message.url.href);
      return this.release(entry.id);
    }
    entry.destination = destination.tag;
    if (entry.attempts === 1) {
      this.log.info({ event: 'received', id: entry.id, queue: 'active', destination: message.origin, method: message.method, bytes: message.body?.length ?? 0 }, 'received');
      this.observer?.received(message.origin, read.size);
    }
    const keep = this.keptBytes + read.size <= this.config.activeBytes;
    if (keep) this.keptBytes += read.size;
    const dueSince = Math.min(wallNow, Math.max(read.writtenAt, scheduled ?? 0));
    const job: Job = { claimed, destination, policy, dueSince, url: message.url.href, size: read.size, message: keep ? message : null, probe: false, round: 0 };
    destination.waiting.push(job);
    // Worth claiming: its destination can send it within a round or two.
    if (destination.waiting.length <= 2 * destination.window.value) this.usefulClaims++;
    this.table.touched(destination, this.clock.mono());
    const c = destination.circuit;
    if (c && c.state === 'dead' && !c.admits(this.clock.mono())) return this.holdBack(destination);
    this.rotation.add(destination);
    this.pump();
  }

  /**
   * Reads a claimed message. A message that cannot be sent is taken care of
   * here (bounced, or put back when the host failed to read it), and null
   * is returned.
   */
  private read(claimed: Claimed): Extract<ReadResult, { kind: 'message' }> | null {
    const { entry } = claimed;
    let read: ReadResult;
    try {
      read = readMessage(claimed.path, this.config.maxSize, this.clock.wall(), (st, links) => dropStagedTwin(this.spool, entry.id, st, links) || dropUnfinishedKeep(this.spool, entry.id, st));
    } catch (err) {
      // Out of file descriptors, an I/O error: the host's trouble. Back to
      // deferred, no attempt spent, and a loud line.
      this.outcomes.putBack(claimed, this.clock.wall() + HOST_TROUBLE_DELAY_MS, 'read-failed');
      this.log.error({ event: 'read-failed', id: entry.id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${entry.id} could not be read; retrying`);
      this.release(entry.id);
      return null;
    }
    if (read.kind === 'message') return read;
    if (read.kind === 'incomplete') {
      // Looked at again once the writer has had time to finish; no attempt spent.
      this.outcomes.putBack(claimed, this.clock.wall() + SETTLE_MS, 'not-settled', TOKENS.incomplete);
      this.log.info({ event: 'not-settled', id: entry.id, queue: 'deferred', reason: read.reason }, `${read.reason}, and written to just now: reading again later`);
    } else if (read.kind === 'invalid') {
      // Nothing was sent: the attempt the claim counted is not spent.
      this.outcomes.bounce(claimed, { ...entry, attempts: entry.attempts - 1 }, `invalid message: ${read.reason}`, TOKENS.invalid, this.clock.wall());
    }
    this.release(entry.id);
    return null;
  }

  private policyFor(rule: DestinationSettings | null, message: Message): DeliveryPolicy {
    if (rule === null && message.maxAttempts === undefined && message.maxAge === undefined && message.timeout === undefined) return this.config;
    return {
      minBackoff: rule?.minBackoff ?? this.config.minBackoff,
      maxBackoff: rule?.maxBackoff ?? this.config.maxBackoff,
      maxAttempts: message.maxAttempts ?? rule?.maxAttempts ?? this.config.maxAttempts,
      maxAge: message.maxAge ?? this.config.maxAge,
      timeout: message.timeout ?? rule?.timeout ?? this.config.timeout,
    };
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

  /** A dead destination's waiting messages go back to deferred/ until its cool-off ends, attempts unspent. */
  private holdBack(d: Destination): void {
    this.putBackWaiting(d, wallAt(this.clock, d.circuit!.deadUntil), 'destination-dead');
    this.wakeup.at(d.circuit!.deadUntil);
  }

  private putBackWaiting(d: Destination, at: number, reason: 'destination-dead' | 'destination-paused'): void {
    for (const job of d.waiting.splice(0)) {
      job.claimed.entry.destination = d.tag;
      this.outcomes.putBack(job.claimed, at, reason);
      this.finish(job);
    }
    this.rotation.remove(d);
  }

  /** Starts requests while there are slots: destinations take turns. */
  private pump(): void {
    if (this.stopping) return;
    const now = this.clock.mono();
    let tokenWait = Infinity;
    const ready = (d: Destination): boolean => {
      if (!maySend(d, now)) return false;
      if (d.bucket === null || d.bucket.take(now)) return true;
      tokenWait = Math.min(tokenWait, d.bucket.wait(now));
      return false;
    };
    while (this.sending < this.config.concurrency) {
      const d = this.rotation.next(ready);
      if (!d) break;
      const job = d.waiting.shift()!;
      if (d.waiting.length === 0) this.rotation.remove(d);
      if (d.circuit) {
        d.circuit.started(now);
        job.probe = d.circuit.state === 'probing';
      }
      job.round = d.window.sent();
      this.sending++;
      d.sending++;
      const p = this.deliver(job).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
    if (tokenWait !== Infinity) this.wakeup.at(now + tokenWait);
  }

  private async deliver(job: Job): Promise<void> {
    const { claimed, policy, destination: d } = job;
    const { entry } = claimed;
    const sender = this.sender;
    this.senders.set(sender, (this.senders.get(sender) ?? 0) + 1);
    let result: AttemptResult;
    let message = job.message;
    try {
      // Not kept in the active set: read again now (the file is ours, in active/).
      message ??= this.read(claimed)?.message ?? null;
      if (message === null) return this.abandon(job);
      if (this.log.isLevelEnabled('debug')) this.log.debug({ event: 'attempt', id: entry.id, destination: message.origin, attempt: entry.attempts, ...(job.probe && { probe: true }) }, 'sending');
      const rule = d.settings;
      result = await sender.send(message, {
        id: entry.id,
        timeout: policy.timeout,
        signingKeys: rule?.signingKeys ?? this.config.signingKeys,
        ...(rule?.headers && { headers: rule.headers }),
      });
    } catch (err) {
      result = { kind: 'error', code: 'ERROR', message: String(err), elapsed: 0 };
    } finally {
      const left = (this.senders.get(sender) ?? 1) - 1;
      if (left === 0) this.senders.delete(sender);
      else this.senders.set(sender, left);
    }
    const wallNow = this.clock.wall();
    const sent = job.message ?? message;
    const arrival = sent ? this.ageFrom(entry.arrival, sent.url, wallNow) : this.arrivalOf(entry.arrival);
    const decision = classify(result, { attempts: entry.attempts, arrival, now: wallNow, policy, expiresAt: sent?.expiresAt });
    this.answered(job, result);
    this.outcomes.settle(job, result, decision, wallNow);
    this.sending--;
    d.sending--;
    // A delivered message stays held until its file is gone (see remove).
    this.finish(job, decision.outcome !== 'delivered');
  }

  /** A job whose message could not be read again at send time (taken care of by read()). */
  private abandon(job: Job): void {
    this.sending--;
    job.destination.sending--;
    if (job.probe) job.destination.circuit?.probeAbandoned();
    this.table.touched(job.destination, this.clock.mono());
    this.pump();
  }

  /** What an answer says about its destination: its window and its circuit learn from it. */
  private answered(job: Job, result: AttemptResult): void {
    const d = job.destination;
    const signal = signalOf(result);
    d.window.answered(signal, job.round);
    if (signal !== 'good') d.lastError = result.kind === 'response' ? `HTTP ${result.status}` : result.code;
    if (signal === 'neutral') {
      if (job.probe) d.circuit?.probeAbandoned();
      return;
    }
    // A healthy destination has no circuit: nothing to count, nothing to make.
    if (signal === 'good' && d.circuit === null) return;
    const now = this.clock.mono();
    const c = this.table.circuitOf(d);
    const change = c.ended(signal !== 'good', now, job.probe);
    if (change === null) {
      if (c.forgettable) d.circuit = null;
      return;
    }
    const report = { destination: d.origin, failures: c.failures, deadUntil: new Date(wallAt(this.clock, c.deadUntil)).toISOString() };
    if (change === 'died') this.log.warn({ event: 'destination-dead', ...report }, `${d.origin} failed ${c.failures} times in a row: not sending to it until ${report.deadUntil}`);
    else if (change === 'still-dead') this.log.warn({ event: 'destination-still-dead', ...report }, `${d.origin} failed its probe: not sending to it until ${report.deadUntil}`);
    else {
      this.log.info({ event: 'destination-reopened', destination: d.origin }, `${d.origin} answered its probe: sending again`);
      d.circuit = null;
      this.dueChanged();
    }
    this.onDestinationsChanged();
    if (change !== 'reopened') this.holdBack(d);
  }

  /**
   * A delivered message's file is removed through the thread pool while the
   * disk makes unlinks wait, so that the wait holds up no other message, and
   * on the event loop while they are quick (see UnlinkPlace). Until it is
   * gone the file stays in active/, as it did between the answer and a
   * synchronous unlink: a crash then means one more send, as before. A
   * removal that fails is retried on each tick like any failed move. The id
   * stays held until then: an ordering line's sweep must not take a head
   * that is still in active/, unheld, for a stale record, and elect its next.
   */
  private remove(job: Job, final: AttemptRecord, then: () => void): void {
    const { id } = job.claimed.entry;
    const activePath = job.claimed.path;
    const retried = job.claimed.entry.attempts > 1;
    const p = this.keepOrForget(id, activePath, final, retried)
      .then(() => this.announceDelivery(job, final, retried))
      .then(() => completeSomewhere(activePath, this.unlinkPlace))
      .then(
        (removed) => (removed ? 'removed' : 'lost'),
        () => 'failed',
      )
      .then((removal) =>
        this.guard('delivered', () => {
          if (removal === 'removed') this.observer?.moved('active', null);
          else if (removal === 'lost') this.claimLost(id, 'delivered');
          else this.move(id, 'delivered', () => complete(activePath));
          then();
        }),
      )
      .finally(() => {
        const wasFull = this.removalsFull;
        this.removing.delete(p);
        this.release(id);
        if (wasFull && (this.incoming.dirty || this.due.waiting)) this.scheduleFill();
      });
    this.removing.add(p);
  }

  /** Resolves once every removal of a delivered message begun so far has ended (its id released). */
  removals(): Promise<void> {
    return Promise.allSettled([...this.removing]).then(() => undefined);
  }

  /**
   * Delivered and recovered notices (--notify), into the outbox before the
   * file leaves active/: a kill in between sends the message again and the
   * notice at least once. A side path.
   */
  private announceDelivery(job: Job, final: AttemptRecord, retried: boolean): void {
    const { entry } = job.claimed;
    const config = this.config;
    const channels = { url: config.bounceHook, command: config.bounceCommand };
    try {
      const recovered = retried && clearDelayed(this.spool, entry.id);
      const record = { id: entry.id, url: job.url, attempts: entry.attempts, arrival: new Date(entry.arrival).toISOString(), at: new Date(final.at).toISOString(), latencyMs: Math.max(0, final.at - job.dueSince) };
      let wrote = false;
      for (const type of ['delivered', 'recovered'] as const) {
        if ((type === 'delivered' || recovered) && notifies(channels, config.notify, type, entry.id)) {
          writeMessageNotice(this.spool, type, record);
          wrote = true;
        }
      }
      if (wrote) this.onNotice();
    } catch (err) {
      this.log.warn({ event: 'history-failed', id: entry.id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${entry.id}: delivered, but its notice could not be written`);
    }
  }

  /** Its history: kept with it in delivered/ (--keep-delivered), or gone with it. A side path: never stops the removal. */
  private async keepOrForget(id: string, activePath: string, final: AttemptRecord, retried: boolean): Promise<void> {
    try {
      if (this.config.keepDelivered > 0) await keepDelivered(this.spool, activePath, id, final);
      else if (retried) await dropAttempts(this.spool, id);
    } catch (err) {
      this.log.warn({ event: 'history-failed', id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${id}: delivered, but its record could not be kept`);
    }
  }

  /**
   * A failed move leaves the message where it is (still safe) and is retried
   * on each tick. A step that says false or null found the claim gone: another
   * process moved it out of active/ while this daemon held it, which a peer
   * does only when it has judged this daemon dead (--shared), and an operator
   * only by hand. The one reliable sign of a lost lease where the lease itself
   * is seen through a cache; the message is that process's now, not counted here.
   * False only then (a failed move is retried: the message is still ours).
   */
  private move(id: string, queue: 'delivered' | 'deferred' | 'bounced' | 'ordered', step: () => unknown): boolean {
    try {
      const done = step();
      if (done === false || done === null) {
        this.claimLost(id, queue);
        return false;
      }
      this.observer?.moved('active', queue === 'delivered' ? null : queue);
      return true;
    } catch (err) {
      this.log.error({ event: 'move-failed', id, queue, err }, `message ${id}: move to ${queue} failed; left in active/, retrying`);
      this.stranded.set(`${id}:${queue}`, step);
      this.wakeup.at(this.clock.mono() + HOST_TROUBLE_DELAY_MS);
      return true;
    }
  }

  private claimLost(id: string, queue: 'delivered' | 'deferred' | 'bounced' | 'ordered'): void {
    this.log.error(
      { event: 'claim-lost', id, queue: 'active', to: queue },
      `message ${id}: no longer in active/ when it was to go to ${queue}/: another process took it (a peer that judged this daemon dead, or an operator); it may be sent twice`,
    );
  }

  /** A job leaves the active set (its id too, unless `release` is false: the caller releases it later). */
  private finish(job: Job, release = true): void {
    // A delivered message's job lives on until its file is gone: not its body.
    if (job.message) this.keptBytes -= job.size;
    job.message = null;
    this.table.touched(job.destination, this.clock.mono());
    if (release) this.release(job.claimed.entry.id);
    // Due messages were passed over for a destination holding its share: it holds less now.
    if (this.passedOver) {
      this.passedOver = false;
      this.due.changed();
    }
    this.pump();
  }

  private release(id: string): void {
    this.held.delete(id);
    if ((this.incoming.dirty || this.due.waiting) && this.needed > 0) this.scheduleFill();
  }

  /** The destinations the daemon holds work or state for, busiest first (at most `limit`). */
  destinations(limit = Infinity): DestinationReport[] {
    const rows = [...this.table.values()].map((d): DestinationReport => {
      const c = d.circuit;
      return {
        origin: d.origin,
        state: d.paused ? 'paused' : (c?.state ?? 'ok'),
        window: d.window.value,
        limit: d.window.limit,
        inFlight: d.sending,
        waiting: d.waiting.length,
        failures: c?.failures ?? 0,
        until: c && c.state !== 'ok' ? new Date(wallAt(this.clock, c.deadUntil)).toISOString() : null,
        lastError: d.lastError,
      };
    });
    rows.sort((a, b) => Number(b.state !== 'ok') - Number(a.state !== 'ok') || b.inFlight + b.waiting - (a.inFlight + a.waiting) || a.origin.localeCompare(b.origin));
    return rows.slice(0, limit);
  }

  /** Dead destinations, for `spoolctl stats`, the status page and metrics. */
  deadDestinations(): { origin: string; state: string; failures: number; until: string }[] {
    return this.destinations()
      .filter((d) => d.state === 'dead' || d.state === 'probing')
      .map((d) => ({ origin: d.origin, state: d.state, failures: d.failures, until: d.until! }));
  }

  /** How many destination records the daemon keeps (bounded: see destinations.ts). */
  get destinationCount(): number {
    return this.table.size;
  }

  /**
   * Stops claiming; messages waiting for a slot go back to deferred/ unsent;
   * requests in flight get `grace` ms, then are cut and deferred. Nothing is
   * left in active/ unless a move itself fails.
   */
  async stop(grace: number): Promise<void> {
    this.stopping = true;
    this.wakeup.cancel();
    this.incoming.close();
    const now = this.clock.wall();
    for (const d of this.table.values()) {
      for (const job of d.waiting.splice(0)) {
        this.outcomes.putBack(job.claimed, now, 'stopping');
        if (job.message) this.keptBytes -= job.size;
        this.held.delete(job.claimed.entry.id);
      }
      this.rotation.remove(d);
    }
    if (this.inFlight.size > 0) {
      this.log.info({ event: 'draining', inFlight: this.inFlight.size, graceMs: grace }, 'waiting for requests in flight');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = this.clock.setTimeout(() => r(null), grace)))]);
      if (timer) this.clock.clearTimeout(timer);
    }
    if (this.inFlight.size > 0) {
      this.log.warn({ event: 'cut-off', inFlight: this.inFlight.size }, 'grace period over; cutting requests in flight, they will be retried');
      await Promise.all([...this.senders.keys()].map((s) => s.close()));
      await Promise.allSettled([...this.inFlight]);
    }
    // Settled and answered: their files must be gone before the daemon is.
    await this.removals();
    for (const [, retry] of this.stranded) {
      try {
        retry();
      } catch {
        /* left in active/: recovered at the next start */
      }
    }
  }
}
