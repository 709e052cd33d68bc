/**
 * Clock steps remembered in the spool (spool/clock-steps.ts): a message that
 * arrived while the clock was ten years behind is not ten years old once the
 * clock is corrected, whether the correction came while the daemon ran or
 * while it was stopped.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ClockSteps, type SystemClock } from '../../src/spool/clock-steps.js';
import { Spool } from '../../src/spool/layout.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-clock-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
const YEARS_10 = 10 * 365 * 86_400_000;
const REAL = 1_800_000_000_000;

function clock(start: { wall: number; mono: number; boot?: string }): SystemClock & { advance(ms: number): void; step(ms: number): void } {
  let wall = start.wall;
  let mono = start.mono;
  return {
    wall: () => wall,
    mono: () => mono,
    boot: () => start.boot ?? 'boot-1',
    advance(ms) {
      wall += ms;
      mono += ms;
    },
    step(ms) {
      wall += ms;
    },
  };
}

describe('clock steps', () => {
  it('a correction while the daemon runs does not age the messages that came before it', () => {
    const spool = new Spool(path.join(base, 'a'));
    spool.ensure();
    const c = clock({ wall: REAL - YEARS_10, mono: 5_000 });
    const steps = new ClockSteps(spool, c);
    steps.load();
    const arrival = c.wall();
    c.advance(60_000);
    const before = c.wall();
    c.step(YEARS_10); // NTP corrects it
    steps.stepped(YEARS_10, before);
    c.advance(60_000);
    assert.equal(c.wall() - steps.arrivalOf(arrival), 120_000, 'two minutes old, not ten years');
    assert.equal(steps.arrivalOf(c.wall() - 1000), c.wall() - 1000, 'a message after the step is as old as the clock says');
  });

  it('a correction while the daemon was stopped is found at the next start, within one boot', () => {
    const spool = new Spool(path.join(base, 'b'));
    spool.ensure();
    const c = clock({ wall: REAL - YEARS_10, mono: 5_000 });
    const first = new ClockSteps(spool, c);
    first.load();
    const arrival = c.wall();
    c.advance(30_000);
    first.save(); // at stop
    c.advance(10_000);
    c.step(YEARS_10);
    const second = new ClockSteps(spool, c);
    assert.ok(Math.abs(second.load()! - YEARS_10) < 1, 'the step is seen');
    assert.equal(c.wall() - second.arrivalOf(arrival), 40_000);
    // And it is remembered for the next start too.
    const third = new ClockSteps(spool, c);
    assert.equal(third.load(), null);
    assert.equal(c.wall() - third.arrivalOf(arrival), 40_000);
  });

  it('after a reboot nothing can tell: the time is taken as passed', () => {
    const spool = new Spool(path.join(base, 'c'));
    spool.ensure();
    const c = clock({ wall: REAL - YEARS_10, mono: 5_000 });
    new ClockSteps(spool, c).load();
    const rebooted = clock({ wall: REAL, mono: 1_000, boot: 'boot-2' });
    const steps = new ClockSteps(spool, rebooted);
    assert.equal(steps.load(), null);
    assert.equal(steps.arrivalOf(REAL - YEARS_10), REAL - YEARS_10);
  });
});
