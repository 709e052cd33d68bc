/**
 * What the status page shows of the last hour, kept in memory: per minute,
 * the outcomes and two latency distributions (one attempt's request time;
 * a delivered message's time from arrival to its 2xx), and per destination
 * (origin) its attempts, failures, mean request time and last outcome.
 *
 * Distributions are Node's own HDR histograms (perf_hooks), at 2 significant
 * digits: about 25 KB each, 120 of them for the hour, whatever the rate.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** Destinations remembered at most; the least recently seen go first. */
const MAX_DESTINATIONS = 1000;
const HIGHEST_MS = 7 * 86_400_000;

export type Outcome = 'delivered' | 'deferred' | 'bounced';

interface Minute {
  counts: [number, number, number];
  request: RecordableHistogram;
  delivery: RecordableHistogram;
}

export interface MinuteRow {
  /** Start of the minute, epoch ms. */
  at: number;
  delivered: number;
  deferred: number;
  bounced: number;
  /** p50, p95, p99 in ms; null when nothing was measured that minute. */
  request: [number, number, number] | null;
  delivery: [number, number, number] | null;
}

export interface DestinationActivity {
  origin: string;
  attempts: number;
  /** Attempts that failed transiently (deferred: 5xx, 408, 429, network errors, timeouts). */
  failures: number;
  /** Attempts answered with a refusal that bounced the message (a 4xx): the destination is up. */
  bounced: number;
  meanMs: number;
  /** How the last attempt failed transiently (a status or an error code); null when it did not. */
  last: string | null;
}

const histogram = () => createHistogram({ lowest: 1, highest: HIGHEST_MS, figures: 2 });
const record = (h: RecordableHistogram, ms: number) => h.record(Math.min(HIGHEST_MS, Math.max(1, Math.round(ms))));
const percentiles = (h: RecordableHistogram): [number, number, number] | null => (h.count === 0 ? null : [h.percentile(50), h.percentile(95), h.percentile(99)]);

export class RecentActivity {
  private readonly perMinute = new Map<number, Minute>();
  private readonly perDestination = new Map<string, { attempts: number; failures: number; bounced: number; totalMs: number; at: number; last: string | null }>();

  constructor(private readonly now: () => number = Date.now) {}

  private minute(at: number): Minute {
    const start = Math.floor(at / MINUTE_MS) * MINUTE_MS;
    let m = this.perMinute.get(start);
    if (!m) {
      m = { counts: [0, 0, 0], request: histogram(), delivery: histogram() };
      this.perMinute.set(start, m);
      for (const k of this.perMinute.keys()) if (k <= start - HOUR_MS) this.perMinute.delete(k);
    }
    return m;
  }

  /**
   * One attempt's outcome. `requestMs` is the attempt's time (absent when no
   * request was made); `deliveryMs` a delivered message's time since arrival;
   * `last` what the attempt ended with (a status or an error code).
   */
  record(outcome: Outcome, origin: string, detail: { requestMs?: number; deliveryMs?: number; last?: string }): void {
    const at = this.now();
    const m = this.minute(at);
    m.counts[outcome === 'delivered' ? 0 : outcome === 'deferred' ? 1 : 2]++;
    if (detail.requestMs !== undefined) record(m.request, detail.requestMs);
    if (detail.deliveryMs !== undefined) record(m.delivery, detail.deliveryMs);
    if (detail.requestMs === undefined) return;
    const d = this.perDestination.get(origin) ?? { attempts: 0, failures: 0, bounced: 0, totalMs: 0, at, last: null };
    d.attempts++;
    // A bounce is the message's failure (a 4xx: the destination answered and refused it), not the destination's.
    if (outcome === 'deferred') d.failures++;
    if (outcome === 'bounced') d.bounced++;
    d.totalMs += detail.requestMs;
    d.at = at;
    d.last = outcome === 'deferred' ? (detail.last ?? 'failed') : null;
    // Most recently seen last: the oldest are the first to go.
    this.perDestination.delete(origin);
    this.perDestination.set(origin, d);
    for (const k of this.perDestination.keys()) {
      if (this.perDestination.size <= MAX_DESTINATIONS) break;
      this.perDestination.delete(k);
    }
  }

  /** The last 60 minutes, oldest first, the current one included. */
  minutes(): MinuteRow[] {
    const current = Math.floor(this.now() / MINUTE_MS) * MINUTE_MS;
    return Array.from({ length: 60 }, (_, i) => {
      const at = current - (59 - i) * MINUTE_MS;
      const m = this.perMinute.get(at);
      return { at, delivered: m?.counts[0] ?? 0, deferred: m?.counts[1] ?? 0, bounced: m?.counts[2] ?? 0, request: m ? percentiles(m.request) : null, delivery: m ? percentiles(m.delivery) : null };
    });
  }

  destinations(): DestinationActivity[] {
    const since = this.now() - HOUR_MS;
    return [...this.perDestination].filter(([, d]) => d.at >= since).map(([origin, d]) => ({ origin, attempts: d.attempts, failures: d.failures, bounced: d.bounced, meanMs: d.totalMs / Math.max(1, d.attempts), last: d.last }));
  }
}
