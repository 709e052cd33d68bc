/**
 * Outcomes: what follows an attempt, or a message that cannot be attempted
 * (Postfix's qmgr_deliver.c and qmgr_defer.c). The classifier has chosen;
 * this carries it out, by the spool's moves:
 *
 *   delivered  unlink (spool/moves.ts): only after a confirmed 2xx, off the
 *              event loop
 *   deferred   into deferred/ with the next attempt in the name
 *   bounced    reason record (and notice) first, then into bounced/
 *   put back   into deferred/, its attempt unspent: the message was never
 *              sent (its destination is dead, the daemon is stopping, the
 *              host failed to read it)
 *
 * A move that fails leaves the message where it is and is retried by the
 * host (see QueueManager.move), so nothing here can lose a file.
 */
import type { AttemptResult, Decision } from '../delivery/classify.js';
import type { Claimed } from '../spool/claim.js';
import type { Spool } from '../spool/layout.js';
import { moveToBounced, moveToDeferred, type BounceRecord } from '../spool/moves.js';
import { describeErrorToken, destinationTag, formatEntry, TOKENS, type Entry } from '../spool/names.js';
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { announces, notifies, writeMessageNotice, writeNotice } from '../service/notices.js';
import { markDelayed } from '../spool/history.js';
import type { Job } from './job.js';
import type { KeyLines } from './ordering.js';
import { attemptRecord, recordAttempt, type AttemptRecord } from '../spool/history.js';

/**
 * Told what happens, for metrics: every move between queues the daemon makes,
 * and every attempt's outcome. Must not throw, must be cheap.
 */
export interface DeliveryObserver {
  moved(from: 'incoming' | 'deferred' | 'active' | 'ordered', to: 'active' | 'deferred' | 'bounced' | 'ordered' | null): void;
  outcome(outcome: 'delivered' | 'deferred' | 'bounced', destination: string, detail: { ms?: number; attempts?: number; dueSince?: number; bytes?: number; /** A deferral's error token. */ last?: string }): void;
  /** A message was claimed for the first time. */
  received(destination: string, bytes: number): void;
  /** A claimed message went back to deferred/ unsent. */
  putBack(reason: PutBackReason): void;
  /** A claim's rename found the message gone from `from`: another daemon (or an operator) took it first. */
  claimMissed(from: 'incoming' | 'deferred'): void;
}

/** Why a claimed message went back unsent: a closed set. */
export type PutBackReason = 'destination-dead' | 'destination-paused' | 'stopping' | 'read-failed' | 'not-settled';

export interface SettleHost {
  readonly spool: Spool;
  readonly log: Logger;
  readonly lines: KeyLines;
  config(): Config;
  observer(): DeliveryObserver | null;
  /**
   * Runs a move; a failure is logged and the move retried later, the message
   * left where it is. A step that returns false or null found the message
   * gone (another process took it): logged as such, and false is returned,
   * so that nothing more is said or done about a message that is not ours.
   */
  move(id: string, queue: 'deferred' | 'bounced' | 'ordered', step: () => unknown): boolean;
  /**
   * Removes a delivered message's file, off the event loop (kept in
   * delivered/ first, with its attempts, under --keep-delivered); `then`
   * once it is gone (or its removal stranded).
   */
  remove(job: Job, final: AttemptRecord, then: () => void): void;
  /** The message is in deferred/ at `path`, due at `entry.time`: claimed again from there when due. */
  deferred(entry: Entry, path: string): void;
  /** A bounce is in bounced/ (and its notice in the outbox). */
  bounced(record: BounceRecord): void;
  /** A notice is in the outbox. */
  noticed(): void;
}

export class Outcomes {
  constructor(private readonly host: SettleHost) {}

  /** Carries out the classifier's decision for a job whose request ended. */
  settle(job: Job, result: AttemptResult, decision: Decision, now: number): void {
    const { claimed } = job;
    const { entry } = claimed;
    const origin = job.destination.origin;
    const base = {
      id: entry.id,
      destination: origin,
      attempt: entry.attempts,
      ...(result.kind === 'response' ? { status: result.status } : { error: result.code, detail: result.message }),
      ms: result.elapsed,
    };
    const { log, lines } = this.host;
    switch (decision.outcome) {
      case 'delivered':
        // The only place a message file is removed: after a confirmed 2xx.
        // What follows waits for the file to be gone: the key's next, so that
        // a crash before the unlink cannot bring this one back after a newer
        // one was sent; and the "delivered" line, so that whoever reads it
        // finds the message out of the queue.
        this.host.remove(job, attemptRecord(result, now), () => {
          lines.done(entry.id);
          this.host.observer()?.outcome('delivered', origin, { ms: result.elapsed, attempts: entry.attempts, dueSince: job.dueSince, bytes: job.size });
          log.info({ event: 'delivered', queue: 'active', ...base }, 'delivered');
        });
        return;
      case 'deferred': {
        this.record(entry.id, result, now);
        const next: Entry = { ...entry, time: decision.nextAttempt, lastError: decision.lastError };
        const to = this.host.spool.deferredPath(next.time, formatEntry(next));
        lines.follow(entry.id, to);
        this.host.observer()?.outcome('deferred', origin, { ms: result.elapsed, last: decision.lastError });
        if (!this.host.move(entry.id, 'deferred', () => moveToDeferred(this.host.spool, claimed.path, next))) return;
        this.warnDelayed(job, next, now);
        this.host.deferred(next, to);
        log.info({ event: 'deferred', queue: 'deferred', ...base, reason: decision.reason, delayMs: decision.delay, nextAttemptAt: new Date(decision.nextAttempt).toISOString() }, `deferred: ${decision.reason}`);
        return;
      }
      case 'bounced':
        this.record(entry.id, result, now);
        this.bounce(claimed, { ...entry, time: now, lastError: decision.lastError }, decision.reason, decision.lastError, now, origin, result.elapsed, job.url);
        return;
    }
  }

  /**
   * One delayed notice per message, at the first attempt after it has waited
   * --delay-warning (as Postfix checks delay_warning_time at its attempts).
   * Written before the move into deferred/; a side path: a failure is logged.
   */
  private warnDelayed(job: Job, next: Entry, now: number): void {
    const config = this.host.config();
    const { id, arrival, attempts } = next;
    if (now - arrival < config.delayWarning || !notifies({ url: config.bounceHook, command: config.bounceCommand }, config.notify, 'delayed', id)) return;
    try {
      if (!markDelayed(this.host.spool, id)) return;
      writeMessageNotice(this.host.spool, 'delayed', { id, url: job.url, attempts, arrival: new Date(arrival).toISOString(), at: new Date(now).toISOString(), lastError: describeErrorToken(next.lastError), nextAttemptAt: new Date(next.time).toISOString() });
      this.host.noticed();
    } catch (err) {
      this.host.log.warn({ event: 'history-failed', id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${id}: its delayed notice could not be written`);
    }
  }

  /** An attempt's line in the message's history: a side path, so its failure is logged, never fatal. */
  private record(id: string, result: AttemptResult, now: number): void {
    try {
      recordAttempt(this.host.spool, id, attemptRecord(result, now));
    } catch (err) {
      this.host.log.warn({ event: 'history-failed', id, queue: 'active', error: (err as NodeJS.ErrnoException).code ?? String(err) }, `message ${id}: its attempt could not be recorded`);
    }
  }

  /** `origin` and `ms`: the destination and the last request's time, when the bounce follows one. */
  bounce(claimed: Claimed, entry: Entry, reason: string, lastError: string, now: number, origin?: string, ms?: number, url?: string): void {
    const record: BounceRecord = {
      id: entry.id,
      reason,
      lastError: describeErrorToken(lastError),
      attempts: entry.attempts,
      arrival: new Date(entry.arrival).toISOString(),
      bouncedAt: new Date(now).toISOString(),
      ...(url && { url }),
    };
    const config = this.host.config();
    const bounced: Entry = { ...entry, time: now, lastError };
    const announce = announces({ url: config.bounceHook, command: config.bounceCommand }, entry.id) ? (name: string) => writeNotice(this.host.spool, name, record) : undefined;
    if (!this.host.move(entry.id, 'bounced', () => moveToBounced(this.host.spool, claimed.path, bounced, record, announce))) return this.host.lines.done(entry.id);
    this.host.log.warn({ event: 'bounced', id: entry.id, queue: 'bounced', attempts: entry.attempts, reason }, `bounced: ${reason}`);
    this.host.observer()?.outcome('bounced', origin ?? '-', ms === undefined ? {} : { ms });
    this.host.lines.done(entry.id);
    this.host.bounced(record);
  }

  /**
   * A message scheduled for later ("deliverAt", "delay") waits in deferred/
   * for its time, attempts unspent, its arrival set to that time so that its
   * age (--max-age) counts from it.
   */
  schedule(claimed: Claimed, at: number, origin: string): void {
    const { entry } = claimed;
    // The tag lets the due scan pass it over while its destination is dead.
    const later: Entry = { ...entry, time: at, arrival: at, attempts: entry.attempts - 1, destination: destinationTag(origin), lastError: TOKENS.scheduled };
    const to = this.host.spool.deferredPath(later.time, formatEntry(later));
    this.host.lines.follow(entry.id, to);
    if (!this.host.move(entry.id, 'deferred', () => moveToDeferred(this.host.spool, claimed.path, later))) return;
    this.host.deferred(later, to);
    this.host.log.info({ event: 'scheduled', id: entry.id, queue: 'deferred', deliverAt: new Date(at).toISOString() }, `scheduled for ${new Date(at).toISOString()}`);
  }

  /** Back to deferred/, due at `at` (wall), its attempt not spent: it was never sent. */
  putBack(claimed: Claimed, at: number, reason: PutBackReason, lastError?: string): void {
    const { entry } = claimed;
    const back: Entry = { ...entry, time: at, attempts: entry.attempts - 1, ...(lastError && { lastError }) };
    const to = this.host.spool.deferredPath(back.time, formatEntry(back));
    this.host.lines.follow(entry.id, to);
    if (!this.host.move(entry.id, 'deferred', () => moveToDeferred(this.host.spool, claimed.path, back))) return;
    this.host.observer()?.putBack(reason);
    this.host.deferred(back, to);
    this.host.log.info({ event: 'put-back', id: entry.id, queue: 'deferred', reason }, `not sent (${reason}); back to deferred`);
  }
}
