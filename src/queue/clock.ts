/**
 * The queue manager's clocks, injected so that its scheduling is tested with
 * node:test's mock timers instead of real sleeps.
 *
 *   wall  epoch ms: what filenames record (next attempts, arrivals). It can
 *         be stepped (NTP, an operator): never used to space or time work.
 *   mono  monotonic ms: every spacing, timer, cool-off and duration.
 */
export interface Clock {
  wall(): number;
  mono(): number;
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout): void;
}

export const realClock: Clock = {
  wall: () => Date.now(),
  mono: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

/** The monotonic time at which the wall clock will read `wall`, as of now. */
export function monoAt(clock: Clock, wall: number): number {
  return clock.mono() + (wall - clock.wall());
}

/** The wall time the monotonic instant `mono` corresponds to, as of now. */
export function wallAt(clock: Clock, mono: number): number {
  return clock.wall() + (mono - clock.mono());
}
