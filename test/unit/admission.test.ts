/**
 * Admission (queue/admission.ts) over a real destination table: fairness
 * between destinations, the dead destination's hold, a destination's share
 * of the active set, and the table's lifecycle.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dueVerdict, maySend, Rotation } from '../../src/queue/admission.js';
import { DestinationTable, IDLE_MS, type Destination } from '../../src/queue/destinations.js';
import type { Job } from '../../src/queue/job.js';

const policy = { perDestination: 16, deadAfter: 3, deadCoolOff: 1000, deadMaxCoolOff: 4000, settingsFor: () => null };
const job = (d: Destination) => ({ destination: d }) as unknown as Job;

describe('admission', () => {
  it('destinations take turns: a fresh message waits one turn per destination, whatever another\'s backlog', () => {
    const table = new DestinationTable(policy, () => 0);
    const a = table.get('https://a.example');
    const b = table.get('https://b.example');
    const rotation = new Rotation();
    for (let i = 0; i < 1000; i++) a.waiting.push(job(a));
    rotation.add(a);
    const served: string[] = [];
    const take = () => {
      const d = rotation.next((x) => maySend(x, 0))!;
      d.waiting.shift();
      d.sending++;
      if (d.waiting.length === 0) rotation.remove(d);
      served.push(d === a ? 'a' : 'b');
    };
    take();
    take();
    b.waiting.push(job(b));
    rotation.add(b);
    take();
    take();
    assert.deepEqual(served, ['a', 'a', 'a', 'b'], 'b goes after one turn of each destination before it');
    // a alone is left: it goes up to its window, not beyond.
    for (let i = 0; i < 100 && rotation.next((x) => maySend(x, 0)); i++) {
      a.waiting.shift();
      a.sending++;
    }
    assert.equal(maySend(a, 0), false, 'a is at its window');
    assert.equal(a.sending, a.window.value);
  });

  it('passes over a dead destination\'s due messages until its cool-off ends, then lets one through as the probe', () => {
    const table = new DestinationTable(policy, () => 0);
    const d = table.get('https://dead.example');
    const c = table.circuitOf(d);
    for (let i = 0; i < 16; i++) c.ended(true, 0);
    assert.equal(c.state, 'dead');
    assert.equal(dueVerdict(d, 0, 1000, 500), 'pass');
    assert.equal(dueVerdict(d, 0, 1000, 1000), 'claim', 'cool-off over: one probe');
    assert.equal(dueVerdict(d, 1, 1000, 1000), 'pass', 'only one');
    assert.equal(dueVerdict(undefined, 0, 1000, 0), 'claim', 'a destination the table does not hold');
  });

  it('a destination takes at most half the active set through the due scan', () => {
    const table = new DestinationTable(policy, () => 0);
    const d = table.get('https://busy.example');
    for (let i = 0; i < 400; i++) d.waiting.push(job(d));
    assert.equal(dueVerdict(d, 99, 1000, 0), 'claim');
    assert.equal(dueVerdict(d, 100, 1000, 0), 'pass');
  });

  it('disposes of idle records, and of a dead one once nothing came to probe it; never of one holding work', () => {
    let now = 0;
    const table = new DestinationTable(policy, () => now);
    const idle = table.get('https://idle.example');
    const busy = table.get('https://busy.example');
    const dead = table.get('https://dead.example');
    for (let i = 0; i < 16; i++) table.circuitOf(dead).ended(true, now);
    busy.waiting.push(job(busy));
    for (const d of [idle, busy, dead]) table.touched(d, now);
    now = IDLE_MS;
    assert.deepEqual(table.dispose(now).map((d) => d.origin), ['https://idle.example']);
    now = 1000 + IDLE_MS;
    assert.deepEqual(table.dispose(now).map((d) => d.origin), ['https://dead.example'], 'its cool-off ended a while ago and nothing was due');
    assert.equal(table.size, 1);
    assert.equal(table.tagged(busy.tag), busy);
    assert.equal(table.tagged(dead.tag), undefined);
  });
});
