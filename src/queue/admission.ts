/**
 * Admission: which due message may be claimed, and which claimed message is
 * sent next. Pure rules over the destination table; no I/O, no clock.
 *
 *   the active set  claimed messages wait in memory, per destination, until
 *                   a slot to their destination is free; at most activeLimit
 *                   of them, so memory stays bounded whatever the backlog
 *   due messages    are passed over by the tag in their name, unopened, while
 *                   their destination is paused, dead (one goes as the probe
 *                   once its cool-off is over) or holds its share of the set
 *   a full set      still takes a fresh message for a destination holding
 *                   less than its share, into a reserve beyond the limit, so
 *                   that one destination's backlog (a slow receiver's, larger
 *                   than the set) never holds up another's fresh messages
 *   slots           at most `concurrency` requests in flight, and at most a
 *                   destination's window to it; destinations with work take
 *                   turns (round robin), so a fresh message to one goes out
 *                   at the next free slot, whatever another's backlog
 */
import { heldBy, type Destination } from './destinations.js';

/** A destination takes at most this share of the active set through the due scan. */
export const DUE_SHARE = 0.5;

function shareOf(activeLimit: number): number {
  return Math.max(1, Math.floor(activeLimit * DUE_SHARE));
}

export function dueVerdict(d: Destination | undefined, picked: number, activeLimit: number, now: number): 'claim' | 'pass' {
  if (!d) return 'claim';
  if (d.paused) return 'pass';
  const c = d.circuit;
  if (c && c.state !== 'ok') return c.admits(now) && heldBy(d) + picked === 0 ? 'claim' : 'pass';
  return heldBy(d) + picked >= shareOf(activeLimit) ? 'pass' : 'claim';
}

/**
 * The active set is full and a message appeared in incoming/, for `d` (as
 * read from its file; undefined when the daemon holds nothing for it):
 * claimed into the reserve unless its destination already holds its share.
 */
export function strangerVerdict(d: Destination | undefined, activeLimit: number): 'claim' | 'leave' {
  return d === undefined || heldBy(d) < shareOf(activeLimit) ? 'claim' : 'leave';
}

/** Whether a request to this destination may start now (its rate bucket aside). */
export function maySend(d: Destination, now: number): boolean {
  if (d.paused || d.waiting.length === 0 || d.sending >= d.window.value) return false;
  return d.circuit === null || d.circuit.admits(now);
}

/** Destinations with messages waiting, taking turns. */
export class Rotation {
  private readonly ring = new Set<Destination>();

  add(d: Destination): void {
    this.ring.add(d);
  }

  remove(d: Destination): void {
    this.ring.delete(d);
  }

  get size(): number {
    return this.ring.size;
  }

  /** The first destination, in turn, that `ready` accepts; it goes to the back of the line. */
  next(ready: (d: Destination) => boolean): Destination | null {
    for (const d of this.ring) {
      if (!ready(d)) continue;
      this.ring.delete(d);
      this.ring.add(d);
      return d;
    }
    return null;
  }
}
