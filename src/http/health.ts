/**
 * A destination's health as the status page shows it: one word from a
 * closed set, chosen by one pure function from what the daemon holds
 * (its circuit, an operator's pause) and what the last hour saw.
 */
import type { DestinationActivity } from './activity.js';

export const HEALTHS = ['paused', 'dead', 'probing', 'failing', 'slow', 'ok'] as const;
export type Health = (typeof HEALTHS)[number];

/** Mean request time above which a destination that answers is slow. */
export const SLOW_MS = 2000;

/**
 * In this order: paused by an operator; held back by its circuit (dead, or
 * being probed); failing when its last attempt failed transiently or more
 * than a fifth of the hour's did, whatever the failure (a refused connection
 * fails fast: it is failing, never slow); slow when it answers, but slowly.
 * A 4xx that bounces a message is the message's failure: the destination
 * answered.
 */
export function healthOf(state: string | undefined, paused: boolean, seen: DestinationActivity | undefined): Health {
  if (paused || state === 'paused') return 'paused';
  if (state === 'dead' || state === 'probing') return state;
  if (!seen || seen.attempts === 0) return 'ok';
  if (seen.last !== null || seen.failures / seen.attempts > 0.2) return 'failing';
  return seen.meanMs > SLOW_MS ? 'slow' : 'ok';
}
