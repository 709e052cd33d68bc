import assert from 'node:assert/strict';
import { test } from 'node:test';
import { warmUp } from '../../src/delivery/warm.js';

// The daemon waits for the warm-up before it says it is ready, and stops by
// letting its event loop empty: a server or socket left open would hold a
// stopping daemon until the agent's keep-alive ran out. One timer tick after
// it resolves: libuv finishes the handles' closes before the next timers.
const sockets = () => process.getActiveResourcesInfo().filter((r) => /TCP|Pipe/.test(r)).length;

test('the warm-up leaves no server or connection open', async () => {
  const before = sockets();
  await warmUp();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(sockets(), before);
});

test('a warm-up cut short by its limit resolves and leaves nothing open', async () => {
  const before = sockets();
  await warmUp(0);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(sockets(), before);
});
