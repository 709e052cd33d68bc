/**
 * The daemon's log writer: the lines of one turn of the event loop go out in
 * one write, none waits past its turn, and what is left at exit (a fatal
 * error included) is written before the process ends.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TurnBatch } from '../../src/service/log.js';

const LOG_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/service/log.js');
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('log lines', () => {
  it('of one turn are written together when it ends, and those of the next turn apart', async () => {
    const writes: string[] = [];
    const batch = new TurnBatch({ write: (text: string) => writes.push(text) });
    try {
      batch.write('a\n');
      batch.write('b\n');
      batch.write('c\n');
      assert.deepEqual(writes, [], 'nothing is written while the turn runs');
      await turn();
      assert.deepEqual(writes, ['a\nb\nc\n']);
      batch.write('d\n');
      await turn();
      assert.deepEqual(writes, ['a\nb\nc\n', 'd\n']);
      await turn();
      assert.equal(writes.length, 2, 'an empty turn writes nothing');
    } finally {
      batch.end();
    }
  });

  it('are all written when the process ends at once, on exit or on a fatal error', () => {
    for (const [end, code] of [
      ['process.exit(0)', 0],
      ["throw new Error('boom')", 1],
    ] as const) {
      const script = `const { createLogger } = await import(${JSON.stringify(LOG_JS)}); const log = await createLogger('info', 'json'); for (let i = 0; i < 3; i++) log.info({ event: 'delivered', id: 'm' + i }, 'delivered'); ${end};`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, code, r.stderr);
      const ids = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
      assert.deepEqual(ids, ['m0', 'm1', 'm2'], `after ${end}`);
    }
  });
});
