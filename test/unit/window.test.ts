/**
 * The concurrency window (queue/window.ts), driven by simulated receivers:
 * a strong one it must reach the limit of quickly, a weak one it must not
 * flood.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INITIAL_WINDOW, Window } from '../../src/queue/window.js';

/** A seeded generator (a linear congruential one): the same answers every run. */
function seeded(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A closed loop: the window's requests go out together; `answer(k)` answers the k-th of them in flight (0-based). */
function simulate(w: Window, requests: number, answer: (k: number) => 'good' | 'refused' | 'congested'): { congested: number; windows: number[] } {
  let congested = 0;
  const windows: number[] = [];
  let sent = 0;
  while (sent < requests) {
    // One round trip: as many requests as the window allows go out together.
    const n = Math.min(w.value, requests - sent);
    const rounds = Array.from({ length: n }, () => w.sent());
    sent += n;
    for (const [k, round] of rounds.entries()) {
      const a = answer(k);
      if (a !== 'good') congested++;
      w.answered(a, round);
    }
    windows.push(w.value);
  }
  return { congested, windows };
}

describe('concurrency window', () => {
  it('starts small and reaches a strong receiver\'s limit within a few round trips', () => {
    const w = new Window({ limit: 64, adaptive: true });
    assert.equal(w.value, INITIAL_WINDOW);
    const { windows } = simulate(w, 1000, () => 'good');
    assert.equal(w.value, 64);
    assert.ok(windows.indexOf(64) <= 5, `round trips to the limit: ${windows.indexOf(64)}`);
    assert.ok(Math.max(...windows) <= 64, 'never above the limit');
  });

  it('halves on congestion, once per round, and then grows by one per round trip', () => {
    const w = new Window({ limit: 64, adaptive: true });
    simulate(w, 200, () => 'good');
    const rounds = Array.from({ length: 10 }, () => w.sent());
    for (const round of rounds) w.answered('congested', round);
    assert.equal(w.value, 32, 'ten congested answers to one round: one cut');
    const before = w.value;
    for (let i = 0; i < 34; i++) w.answered('good', w.sent());
    assert.equal(w.value, before + 1, 'congestion avoidance: +1 per window of good answers');
    w.answered('failed', w.sent());
    w.answered('neutral', w.sent());
    assert.equal(w.value, before + 1, 'other failures and this host\'s trouble change nothing');
  });

  for (const kind of ['refused', 'congested'] as const) {
    it(`keeps a weak receiver (${kind === 'refused' ? '503' : 'a timeout'} above 4 in flight) mostly within its capacity`, () => {
      const w = new Window({ limit: 16, adaptive: true });
      const { congested, windows } = simulate(w, 5000, (k) => (k >= 4 ? kind : 'good'));
      // Each round trip above 4 refuses only its excess; the window sits at 2 to 5.
      assert.ok(congested / 5000 < 0.2, `${((congested / 5000) * 100).toFixed(1)}% refused`);
      assert.ok(Math.max(...windows.slice(windows.length / 2)) <= 5, `windows ${windows.slice(-20).join(' ')}`);
    });
  }

  it('keeps its size against a receiver refusing 30% at random, whatever the load', () => {
    const random = seeded(42);
    const w = new Window({ limit: 32, adaptive: true });
    const { windows } = simulate(w, 20_000, () => (random() < 0.3 ? 'refused' : 'good'));
    // Halving at every round would hold it near 2-4 (TCP's 1.2 / sqrt(p)).
    const late = windows.slice(windows.length / 2);
    assert.ok(mean(late) >= 24, `mean window ${mean(late).toFixed(1)} of 32`);
  });

  it('cuts again once a receiver that refused at random also refuses past its capacity', () => {
    const random = seeded(7);
    const w = new Window({ limit: 32, adaptive: true });
    simulate(w, 10_000, () => (random() < 0.3 ? 'refused' : 'good'));
    assert.ok(w.value >= 16, `window ${w.value} after the random refusals`);
    const overloaded = (k: number) => (k >= 4 || random() < 0.3 ? 'refused' : 'good');
    simulate(w, 10_000, overloaded);
    const { congested, windows } = simulate(w, 5_000, overloaded);
    assert.ok(mean(windows) <= 8, `mean window ${mean(windows).toFixed(1)}: it must come down to near 4`);
    // At 32 in flight 91% would be refused; at 4, the random 30%.
    assert.ok(congested / 5_000 < 0.5, `${((congested / 5_000) * 100).toFixed(1)}% refused`);
  });

  it('does not undo a cut for timeouts: a receiver that does not answer gets fewer slots', () => {
    const w = new Window({ limit: 32, adaptive: true });
    simulate(w, 2000, () => 'good');
    const { windows } = simulate(w, 2000, () => 'congested');
    assert.equal(windows.at(-1), 1);
  });

  it('never goes below 1, and a fixed window stays at its limit', () => {
    const w = new Window({ limit: 8, adaptive: true });
    for (let i = 0; i < 20; i++) w.answered('congested', w.sent());
    assert.equal(w.value, 1);
    const fixed = new Window({ limit: 8, adaptive: false });
    fixed.answered('congested', fixed.sent());
    assert.equal(fixed.value, 8);
    w.configure({ limit: 3, adaptive: true });
    for (let i = 0; i < 100; i++) w.answered('good', w.sent());
    assert.equal(w.value, 3, 'a lower limit on reload caps it');
  });
});
