import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Circuit, deadThreshold, type CircuitChange } from '../../src/queue/circuit.js';

const settings = { deadAfter: 3, coolOff: 1000, maxCoolOff: 3000 };

type Step = ['start', number, boolean] | ['end', number, boolean, CircuitChange] | ['state', string];

/** Runs a script of starts (with whether they are admitted) and results (with the change they cause). */
function play(steps: Step[]): void {
  const c = new Circuit(settings);
  let probe = false;
  for (const [i, step] of steps.entries()) {
    if (step[0] === 'start') {
      assert.equal(c.admits(step[1]), step[2], `step ${i}: admits at ${step[1]}`);
      if (step[2]) {
        c.started(step[1]);
        probe = c.state === 'probing';
      }
    } else if (step[0] === 'end') {
      assert.equal(c.ended(step[2], step[1], probe), step[3], `step ${i}: change`);
      probe = false;
    } else assert.equal(c.state, step[1], `step ${i}: state`);
  }
}

describe('dead destinations (circuit)', () => {
  it('dies after deadAfter transient failures in a row, not before', () => {
    play([['end', 0, true, null], ['end', 0, true, null], ['state', 'ok'], ['end', 0, true, 'died'], ['state', 'dead'], ['start', 500, false]]);
  });

  it('any other answer resets the count', () => {
    play([['end', 0, true, null], ['end', 0, true, null], ['end', 0, false, null], ['end', 0, true, null], ['end', 0, true, null], ['state', 'ok']]);
  });

  it('lets exactly one probe through after the cool-off; its success reopens', () => {
    play([['end', 0, true, null], ['end', 0, true, null], ['end', 0, true, 'died'], ['start', 999, false], ['start', 1000, true], ['state', 'probing'], ['start', 1001, false], ['end', 1100, false, 'reopened'], ['state', 'ok'], ['start', 1101, true]]);
  });

  it('a failed probe doubles the cool-off, up to the cap', () => {
    play([
      ['end', 0, true, null], ['end', 0, true, null], ['end', 0, true, 'died'],
      ['start', 1000, true], ['end', 1000, true, 'still-dead'], ['start', 2999, false], ['start', 3000, true],
      ['end', 3000, true, 'still-dead'], ['start', 5999, false], ['start', 6000, true], // 4000 capped at 3000
      ['end', 6000, true, 'still-dead'], ['start', 8999, false], ['start', 9000, true],
    ]);
  });

  it('late results of requests sent before it died change nothing', () => {
    play([['end', 0, true, null], ['end', 0, true, null], ['end', 0, true, 'died'], ['end', 10, true, null], ['end', 20, false, 'reopened']]);
  });

  it('never dies with deadAfter 0', () => {
    const c = new Circuit({ ...settings, deadAfter: 0 });
    for (let i = 0; i < 100; i++) assert.equal(c.ended(true, i), null);
    assert.equal(c.state, 'ok');
  });

  it('needs one full round of the destination\'s concurrency in a row (a failed cohort)', () => {
    const table: [deadAfter: number, concurrency: number, threshold: number][] = [
      [10, 1, 10],
      [10, 16, 16],
      [10, 64, 64],
      [100, 16, 100],
      [0, 64, 0],
    ];
    for (const [deadAfter, concurrency, threshold] of table) assert.equal(deadThreshold(deadAfter, concurrency), threshold, `${deadAfter}, ${concurrency}`);
  });

  it('does not die of a destination failing 30% at random at 64 in flight (it did at 10 in a row)', () => {
    // A fixed pseudo-random sequence (mulberry32), 1,000,000 results at 30% failures.
    let seed = 12345;
    const random = () => {
      let t = (seed = (seed + 0x6d2b79f5) | 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const results = Array.from({ length: 1_000_000 }, () => random() < 0.3);
    const diesWith = (deadAfter: number) => {
      const c = new Circuit({ ...settings, deadAfter });
      return results.some((failed, i) => c.ended(failed, i) === 'died');
    };
    assert.equal(diesWith(10), true, 'ten in a row happens at this volume');
    assert.equal(diesWith(deadThreshold(10, 64)), false);
  });
});
