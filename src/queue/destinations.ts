/**
 * The destination table: one record per origin the daemon holds work for
 * (Postfix's per-destination queue, qmgr_queue.c), with everything kept per
 * destination: settings, the claimed messages waiting for a slot, requests in
 * flight, the concurrency window, the dead-destination circuit, the rate
 * bucket.
 *
 * Records are keyed by the full origin, never by the tag in filenames (a tag
 * only finds a record for the due scan, see admission.ts), so two origins can
 * never share settings, credentials, a window or a circuit.
 *
 * Lifecycle: a record is made when a message for its origin is claimed, and
 * disposed of once it has been idle (nothing waiting, nothing in flight) for
 * IDLE_MS, its circuit healthy or its cool-off long over, and its rate bucket
 * full again: the way qmgr_queue_done() disposes of an empty queue. So the
 * table, and everything reported from it, holds the destinations in use, not
 * every origin a producer ever named; MAX_RECORDS bounds it whatever happens.
 */
import type { DestinationSettings } from '../service/config.js';
import { destinationTag } from '../spool/names.js';
import { Circuit, deadThreshold, type CircuitSettings } from './circuit.js';
import type { Job } from './job.js';
import { TokenBucket } from './rate.js';
import { Window } from './window.js';

/** An idle record is kept this long (its learned window with it), then disposed of. */
export const IDLE_MS = 60_000;
/** Records kept at most; beyond, the longest idle go first. */
export const MAX_RECORDS = 10_000;

export interface Destination {
  readonly origin: string;
  readonly tag: string;
  settings: DestinationSettings | null;
  /** Claimed messages waiting for a slot, oldest first. */
  readonly waiting: Job[];
  sending: number;
  readonly window: Window;
  /** Made at its first transient failure; null while it has never failed. */
  circuit: Circuit | null;
  bucket: TokenBucket | null;
  /** Since when it has held nothing (monotonic ms); null while it holds work. */
  idleSince: number | null;
  /** The last failed attempt's error token, for reports. */
  lastError: string | null;
  /** An operator paused it (spool/pauses.ts): nothing is sent; its record is kept meanwhile. */
  paused: boolean;
}

export interface TablePolicy {
  perDestination: number;
  deadAfter: number;
  deadCoolOff: number;
  deadMaxCoolOff: number;
  settingsFor(origin: string): DestinationSettings | null;
}

export function heldBy(d: Destination): number {
  return d.waiting.length + d.sending;
}

function limitOf(d: { settings: DestinationSettings | null }, policy: TablePolicy): number {
  return d.settings?.concurrency ?? policy.perDestination;
}

export class DestinationTable {
  private readonly byOrigin = new Map<string, Destination>();
  private readonly byTag = new Map<string, Destination>();

  constructor(
    private policy: TablePolicy,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.byOrigin.size;
  }

  values(): IterableIterator<Destination> {
    return this.byOrigin.values();
  }

  /** The record for an origin, made if there is none. */
  get(origin: string): Destination {
    let d = this.byOrigin.get(origin);
    if (!d) {
      const settings = this.policy.settingsFor(origin);
      d = {
        origin,
        tag: destinationTag(origin),
        settings,
        waiting: [],
        sending: 0,
        window: new Window({ limit: limitOf({ settings }, this.policy), adaptive: settings?.adaptive !== false }),
        circuit: null,
        bucket: settings?.rps ? new TokenBucket(settings.rps, this.now()) : null,
        idleSince: null,
        lastError: null,
        paused: false,
      };
      this.byOrigin.set(origin, d);
      this.byTag.set(d.tag, d);
    }
    return d;
  }

  peek(origin: string): Destination | undefined {
    return this.byOrigin.get(origin);
  }

  /** The record a (trusted, 64-bit) tag stands for, if the table holds it. */
  tagged(tag: string): Destination | undefined {
    return this.byTag.get(tag);
  }

  circuitSettings(d: Destination): CircuitSettings {
    return { deadAfter: deadThreshold(this.policy.deadAfter, limitOf(d, this.policy)), coolOff: this.policy.deadCoolOff, maxCoolOff: this.policy.deadMaxCoolOff };
  }

  circuitOf(d: Destination): Circuit {
    return (d.circuit ??= new Circuit(this.circuitSettings(d)));
  }

  /** New settings for every record; learned windows and circuits are kept. */
  reconfigure(policy: TablePolicy, now: number): void {
    this.policy = policy;
    for (const d of this.byOrigin.values()) {
      d.settings = policy.settingsFor(d.origin);
      d.window.configure({ limit: limitOf(d, policy), adaptive: d.settings?.adaptive !== false });
      d.circuit?.configure(this.circuitSettings(d));
      if (d.settings?.rps) d.bucket ? d.bucket.configure(d.settings.rps) : (d.bucket = new TokenBucket(d.settings.rps, now));
      else d.bucket = null;
    }
  }

  /** Notes whether a record holds work now (call when that may have changed). */
  touched(d: Destination, now: number): void {
    d.idleSince = heldBy(d) === 0 ? (d.idleSince ?? now) : null;
  }

  private disposable(d: Destination, now: number): boolean {
    // A paused one is kept: the due scan passes its messages over by its tag.
    if (d.paused || d.idleSince === null || now - d.idleSince < IDLE_MS) return false;
    // A dead destination is kept while it holds messages back: until IDLE_MS
    // after its cool-off ended with no message claimed as its probe (none is
    // due for it, then: they were delivered elsewhere, deleted, or expired).
    const c = d.circuit;
    if (c && c.state !== 'ok' && (!c.admits(now) || now - c.deadUntil < IDLE_MS)) return false;
    return d.bucket === null || d.bucket.full(now);
  }

  /** Disposes of idle records (see the header). O(records). */
  dispose(now: number): Destination[] {
    const gone: Destination[] = [];
    for (const d of this.byOrigin.values()) if (this.disposable(d, now)) gone.push(d);
    if (this.byOrigin.size - gone.length > MAX_RECORDS) {
      const idle = [...this.byOrigin.values()].filter((d) => d.idleSince !== null && !gone.includes(d)).sort((a, b) => a.idleSince! - b.idleSince!);
      gone.push(...idle.slice(0, this.byOrigin.size - gone.length - MAX_RECORDS));
    }
    for (const d of gone) {
      this.byOrigin.delete(d.origin);
      if (this.byTag.get(d.tag) === d) this.byTag.delete(d.tag);
    }
    return gone;
  }
}
