import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progress } from '../../src/operate/progress.js';

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY, text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

async function walk(stream: NodeJS.WriteStream, ms: number, share = false): Promise<void> {
  const p = progress('spoolctl stats', stream);
  const started = Date.now();
  const end = started + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 1000; i++) p.tick('deferred', share ? (Date.now() - started) / ms : null);
    await new Promise((r) => setTimeout(r, 5));
  }
  p.done();
}

describe('progress line', () => {
  it('counts on a terminal once a walk takes a moment, and erases itself', async () => {
    const tty = fakeStream(true);
    await walk(tty, 450);
    assert.match(tty.text, /\r\x1b\[Kspoolctl stats: deferred\/ [\d,]+ messages read, [\d,]+\/s/);
    assert.ok(tty.text.endsWith('\r\x1b[K'), 'the line is erased at the end');
    const redraws = tty.text.split('messages read').length - 1;
    assert.ok(redraws >= 1 && redraws <= 5, `redrawn at most ten times a second (${redraws})`);
  });

  it('draws a bar where the share walked is known', async () => {
    const tty = fakeStream(true);
    await walk(tty, 450, true);
    const bars = [...tty.text.matchAll(/\[(#*)(\.*)\] +(\d+)% [\d,]+ messages read/g)];
    assert.ok(bars.length >= 1, tty.text);
    for (const b of bars) assert.equal(b[1]!.length + b[2]!.length, 24);
    const shares = bars.map((b) => Number(b[3]));
    assert.deepEqual([...shares].sort((x, y) => x - y), shares, 'it only moves forward');
  });

  it('prints nothing for quick walks, or off a terminal', async () => {
    const quick = fakeStream(true);
    await walk(quick, 50);
    assert.equal(quick.text, '');
    const piped = fakeStream(false);
    await walk(piped, 450);
    assert.equal(piped.text, '');
  });
});
