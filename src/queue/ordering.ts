/**
 * Per-key ordering: messages with the same `orderingKey` are delivered one at
 * a time, in arrival order (the message file's write time, its mtime, which
 * renames between queues keep; then the id); a failing one holds back only
 * its own key.
 *
 * Each key has a line, ordered/<key tag>/, and at most one message out of it
 * at a time, the head, named in <key tag>/.head with where it is:
 *
 *   a keyed message claimed that is not its key's head goes into the line
 *   (its attempt unspent), named by its write time so the line sorts itself;
 *   when the key has no head, the oldest in the line is elected once a read
 *   of incoming/ begun after that has reached its end (so a burst whose file
 *   events come out of order, or a backlog found in directory order, still
 *   goes out oldest first): the record is written, then the message is made
 *   due now in deferred/;
 *   the head goes through the usual queues (and retries) like any message;
 *   the record follows it (written before each move), so that a head waiting
 *   for a retry keeps its key held back however long it waits;
 *   delivered or bounced, the head leaves the record, and the next is elected.
 *
 * A record naming a message that is not where it says, and that no daemon
 * holds in memory, is stale (an operator deleted or held the head, a crash
 * came between a record and its move): the next in line is elected. Records
 * are repointed when start-up recovery moves a head out of active/. So a
 * record can delay its key, never block it for good.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Spool } from '../spool/layout.js';
import { clearHead, enterLine, before, headIsAt, lineTags, oldestInLine, readHead, writeHead, type InLine } from '../spool/lines.js';
import { formatEntry, keyTag, type Entry } from '../spool/names.js';
import { moveToDeferred } from '../spool/moves.js';
import type { Clock } from './clock.js';

/** What the key lines need of the queue manager. */
export interface LineHost {
  readonly spool: Spool;
  readonly clock: Clock;
  /** Other daemons claim from this spool too (--shared). */
  readonly shared: boolean;
  /** This daemon holds the message (claimed, in memory). */
  isHeld(id: string): boolean;
  /**
   * When the last complete read of incoming/ (from its start to its end)
   * began, on the host's monotonic clock; -Infinity if none yet.
   */
  incomingReadStartedAt(): number;
  /** Asks for a new read of incoming/ soon. */
  readIncoming(): void;
  stopping(): boolean;
  /** Runs a step that may fail for the host's reasons (logged; the sweep retries). */
  guard(what: string, step: () => void): void;
  /** A key's next was made due in deferred/. */
  madeDue(): void;
}

/** How often stale records are looked for. */
const SWEEP_MS = 30_000;
/** Longest a key's next waits for incoming/ to be read to the end. */
const ELECTION_WAIT_MS = 5_000;
const ELECTION_POLL_MS = 50;
/** How many of a line's oldest are read in one pass when electing. */
const READ_AHEAD = 256;
/** Lines whose oldest are kept in memory at once: only an optimisation, so memory wins. */
const CACHED_LINES = 1000;

/** The queue manager's side of ordering: which key each held head belongs to, and elections. */
export class KeyLines {
  /** Keys whose head this daemon holds, by message id. */
  private readonly heads = new Map<string, string>();
  /** Keys waiting for their next to be elected, with when that was asked (monotonic ms). */
  private readonly elections = new Map<string, number>();
  private pollTimer: NodeJS.Timeout | null = null;
  /**
   * The oldest few of each long line, read in one pass, so that electing the
   * next of a key with thousands waiting does not read the whole line each
   * time. Newcomers older than the last of them join them.
   */
  private readonly oldest = new Map<string, { oldest: InLine[]; complete: boolean }>();
  private lastSweep: number;

  constructor(private readonly host: LineHost) {
    this.lastSweep = host.clock.mono();
  }

  /**
   * A claimed keyed message: 'head' if it is its key's head (it goes on);
   * otherwise it is moved into its key's line through `moveToLine` (the
   * caller's move, which retries a failing rename), its attempt unspent.
   */
  admit(claimed: { entry: Entry; path: string }, key: string, writtenAt: number, moveToLine: (step: () => void) => void): 'head' | 'line' {
    const { spool } = this.host;
    const { entry } = claimed;
    const tag = keyTag(key);
    const head = readHead(spool, tag);
    if (head?.id === entry.id) {
      // Alone, the record may go on saying where it was in deferred/: this
      // daemon holds it, and start-up recovery repoints the record if it dies
      // holding it. Shared, a peer cannot see what this daemon holds: the
      // record says it is in active/, or the peer would take it for stale and
      // elect a second head (a peer's recovery repoints it if we die).
      this.heads.set(entry.id, tag);
      if (this.host.shared) this.host.guard('ordering', () => writeHead(spool, tag, entry.id, claimed.path));
      return 'head';
    }
    const stale = head !== null && !this.host.isHeld(head.id) && !headIsAt(spool, head);
    const waiting: Entry = { ...entry, attempts: entry.attempts - 1 };
    moveToLine(() => this.noteInLine(tag, enterLine(spool, tag, claimed.path, waiting, writtenAt)));
    if (head === null || stale) this.electSoon(tag);
    return 'line';
  }

  /** A head moves to deferred/ (a retry, a put-back): its record follows it, first. */
  follow(id: string, deferredPath: string): void {
    const tag = this.heads.get(id);
    if (!tag) return;
    this.heads.delete(id);
    this.host.guard('ordering', () => writeHead(this.host.spool, tag, id, deferredPath));
  }

  /** A head was delivered or bounced: the next in line goes. */
  done(id: string): void {
    const tag = this.heads.get(id);
    if (!tag) return;
    this.heads.delete(id);
    this.host.guard('ordering', () => {
      clearHead(this.host.spool, tag, id);
      this.electSoon(tag);
    });
  }

  /**
   * Keys whose record is stale (the head was deleted or held by an operator,
   * or a crash came between a record and its move) get their next elected.
   * O(keys with a line), at most every SWEEP_MS.
   */
  sweep(): void {
    if (this.host.clock.mono() - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = this.host.clock.mono();
    const { spool } = this.host;
    this.host.guard('ordering sweep', () => {
      for (const tag of lineTags(spool)) {
        const head = readHead(spool, tag);
        if (head && (this.host.isHeld(head.id) || headIsAt(spool, head))) continue;
        if (head) clearHead(spool, tag, head.id);
        this.electNext(tag);
      }
    });
  }

  /** A key's next is to be elected (see holdElections for when). */
  private electSoon(tag: string): void {
    if (!this.elections.has(tag)) this.elections.set(tag, this.host.clock.mono());
    this.host.readIncoming();
    this.pollElections();
  }

  /** Told by the host each time a read of incoming/ has reached its end. */
  incomingRead(): void {
    if (this.elections.size > 0) this.holdElections();
  }

  /**
   * A key's next is elected once a read of incoming/ that began after the
   * election was asked for has reached its end: every message of the key
   * already in incoming/ then (an older one whose file event came late, or a
   * backlog read in directory order) has been claimed and put in line.
   * Under a backlog that does not clear, it waits at most ELECTION_WAIT_MS.
   */
  private holdElections(): void {
    if (this.host.stopping()) return;
    const readFrom = this.host.incomingReadStartedAt();
    const now = this.host.clock.mono();
    const ready = [...this.elections].filter(([, asked]) => asked <= readFrom || now - asked >= ELECTION_WAIT_MS).map(([tag]) => tag);
    for (const t of ready) {
      this.elections.delete(t);
      this.host.guard('ordering', () => this.electNext(t));
    }
    this.pollElections();
  }

  /** The fallback for when no read of incoming/ comes to an end (a backlog, the spool in trouble). */
  private pollElections(): void {
    if (this.elections.size === 0 || this.pollTimer) return;
    this.pollTimer = this.host.clock.setTimeout(() => {
      this.pollTimer = null;
      this.holdElections();
    }, ELECTION_POLL_MS).unref();
  }

  private noteInLine(tag: string, item: InLine): void {
    const cached = this.oldest.get(tag);
    if (!cached) return;
    const last = cached.oldest.at(-1);
    if (!cached.complete && last && !before(item, last)) return;
    let i = cached.oldest.length;
    while (i > 0 && before(item, cached.oldest[i - 1]!)) i--;
    cached.oldest.splice(i, 0, item);
  }

  /** The oldest in the key's line becomes its head: recorded, then made due now. */
  private electNext(tag: string): void {
    const { spool } = this.host;
    let next: InLine | undefined;
    for (;;) {
      let cached = this.oldest.get(tag);
      if (!cached || cached.oldest.length === 0) {
        cached = oldestInLine(spool, tag, READ_AHEAD);
        if (this.oldest.size >= CACHED_LINES) this.oldest.clear();
        this.oldest.set(tag, cached);
      }
      next = cached.oldest.shift();
      // Gone since it was read (an operator deleted it): the next one.
      if (!next || fs.existsSync(path.join(spool.lineDir(tag), next.name))) break;
    }
    if (!next) {
      this.oldest.delete(tag);
      try {
        fs.rmdirSync(spool.lineDir(tag));
      } catch {
        /* a head record or a newcomer is there: not empty after all */
      }
      return;
    }
    const due: Entry = { ...next.entry, time: this.host.clock.wall() };
    writeHead(spool, tag, due.id, spool.deferredPath(due.time, formatEntry(due)));
    moveToDeferred(spool, path.join(spool.lineDir(tag), next.name), due);
    this.host.madeDue();
  }
}
