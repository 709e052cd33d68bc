import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import { warmUp } from '../../src/delivery/warm.js';

// The daemon waits for the warm-up before it says it is ready, and stops by
// letting its event loop empty: a server or socket left open would hold a
// stopping daemon until the agent's keep-alive ran out.
const sockets = () => process.getActiveResourcesInfo().filter((r) => /TCP|Pipe/.test(r)).length;

// A closed handle stays in the list until libuv runs its close callback, and
// a close begun inside a close callback waits for the next turn's close
// phase. Each setImmediate passes through one close phase, so a closed handle
// is gone within two turns whatever the machine's load; an open one (a kept
// alive socket, a listening server) is still there after any number of them.
// A timer tick is not enough: with both cores busy, one fired before the
// closes finished in 2 runs of 20.
async function settledAt(before: number, turns = 8): Promise<number> {
  for (let turn = 0; turn < turns && sockets() !== before; turn++) {
    await setImmediate();
  }
  return sockets();
}

test('the warm-up leaves no server or connection open', async () => {
  const before = sockets();
  await warmUp();
  assert.equal(await settledAt(before), before);
});

test('a warm-up cut short by its limit resolves and leaves nothing open', async () => {
  const before = sockets();
  await warmUp(0);
  assert.equal(await settledAt(before), before);
});
