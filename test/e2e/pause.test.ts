/**
 * Paused destinations: nothing is sent, messages wait with attempts and age
 * unspent, the pause survives a restart, other destinations go on.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cleanup, drop, ensureSpoolDirs, filesIn, sleep, spoolctl, startDaemon, startSink, tempSpool } from './helpers.js';

after(cleanup);

/** attempts field of a deferred message's name: <time>_<attempts>_... */
function attemptsOf(spool: string, id: string): number | undefined {
  const name = filesIn(spool, 'deferred').find((n) => n.endsWith(`_${id}.json`));
  return name === undefined ? undefined : Number(name.split('_')[1]);
}

describe('pause and resume', () => {
  it('sends nothing to a paused destination across a restart, then sends it all, attempts and age unspent', async () => {
    const sink = await startSink();
    const paused = sink.url.replace('127.0.0.1', 'localhost');
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    assert.equal(spoolctl(['pause', 'localhost', '--spool', spool]).status, 0);
    assert.match(spoolctl(['pause', 'localhost', '--spool', spool]).stdout, /already paused/);
    let daemon = await startDaemon(spool);
    try {
      // maxAge 2s: counted while paused, it would expire before the resume.
      drop(spool, 'p1', { url: `${paused}/p1`, maxAge: '2s' });
      drop(spool, 'p2', { url: `${paused}/p2` });
      drop(spool, 'other', { url: `${sink.url}/other` });
      await daemon.waitEvent('delivered', 'other');
      await daemon.waitEvent('destination-paused');
      for (const id of ['p1', 'p2']) assert.equal((await daemon.waitEvent('put-back', id)).reason, 'destination-paused');
      await sleep(2500);
      assert.equal((await daemon.stop()).code, 0);

      daemon = await startDaemon(spool);
      await daemon.waitEvent('destination-paused');
      for (const id of ['p1', 'p2']) await daemon.waitEvent('put-back', id);
      assert.equal(sink.byId('p1').length + sink.byId('p2').length, 0, 'nothing sent while paused');
      assert.deepEqual([attemptsOf(spool, 'p1'), attemptsOf(spool, 'p2')], [0, 0], 'attempts unspent');
      const st = JSON.parse(spoolctl(['stats', '--spool', spool, '--json']).stdout) as { paused: { pattern: string }[] };
      assert.deepEqual(st.paused.map((p) => p.pattern), ['localhost']);

      assert.equal(spoolctl(['resume', 'localhost', '--spool', spool]).status, 0);
      await daemon.waitEvent('destination-resumed', undefined, 5_000);
      for (const id of ['p1', 'p2']) assert.equal((await daemon.waitEvent('delivered', id, 5_000)).attempt, 1);
      assert.equal(daemon.events('bounced', 'p1').length, 0, 'its age did not count the pause');
      const again = spoolctl(['resume', 'localhost', '--spool', spool]);
      assert.equal(again.status, 1);
      assert.match(again.stderr, /localhost: not paused/);
      const bad = spoolctl(['pause', 'not a host', '--spool', spool]);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /is not a destination/);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
