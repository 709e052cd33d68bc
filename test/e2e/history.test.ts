/**
 * Delivery history: every attempt recorded while a message is in the spool,
 * kept with the message in delivered/ under --keep-delivered, and printed by
 * `spoolctl history`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, drop, filesIn, spoolctl, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

after(cleanup);

/** Answers each id with the next status of its script, the last one for ever after. */
function scripted(statuses: Record<string, number[]>) {
  const seen = new Map<string, number>();
  return startSink((req, res) => {
    const id = req.url.slice(1);
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    const script = statuses[id] ?? [200];
    res.statusCode = script[Math.min(n, script.length - 1)]!;
    res.end(res.statusCode >= 300 ? 'try later' : 'thanks');
  });
}

interface Printed {
  id: string;
  queue: string;
  attempts: { at: number; status?: number; error?: string; ms: number }[];
}

function historyOf(spool: string, id: string): Printed {
  const r = spoolctl(['history', id, '--spool', spool, '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Printed;
}

function allFiles(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) => fs.statSync(path.join(dir, n)).isFile()) : [];
}

describe('delivery history', () => {
  it('keeps a delivered message and its attempts for --keep-delivered; spoolctl history and list show them', async () => {
    const sink = await scripted({ retried: [503, 200] });
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--keep-delivered', '1h']);
    try {
      drop(spool, 'retried', { url: `${sink.url}/retried`, body: { order: 42 } });
      drop(spool, 'first', { url: `${sink.url}/first` });
      await daemon.waitEvent('delivered', 'retried', 10_000);
      await daemon.waitEvent('delivered', 'first');
      const h = historyOf(spool, 'retried');
      assert.equal(h.queue, 'delivered');
      assert.deepEqual(h.attempts.map((a) => a.status), [503, 200]);
      assert.ok(h.attempts[0]!.at < h.attempts[1]!.at, 'oldest first');
      assert.deepEqual(historyOf(spool, 'first').attempts.map((a) => a.status), [200]);
      // Plain files: the message itself, as it was sent, and its attempts beside it.
      const kept = allFiles(path.join(spool, 'delivered')).sort();
      assert.equal(kept.length, 4);
      const message = kept.find((n) => n.endsWith('retried.json'))!;
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(spool, 'delivered', message), 'utf8')).body, { order: 42 });
      assert.deepEqual(allFiles(path.join(spool, 'attempts')), [], 'no history left behind in attempts/');
      assert.deepEqual(filesIn(spool, 'active'), []);
      const listed = JSON.parse(spoolctl(['list', '--queue', 'delivered', '--spool', spool, '--json']).stdout) as { id: string; attempts: number; status: number }[];
      assert.deepEqual(listed.map((l) => [l.id, l.attempts, l.status]).sort(), [['first', 1, 200], ['retried', 2, 200]]);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('keeps nothing by default, and the attempts of a retried message leave with it', async () => {
    const sink = await scripted({ retried: [503, 200] });
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    try {
      drop(spool, 'retried', { url: `${sink.url}/retried` });
      await daemon.waitEvent('deferred', 'retried');
      assert.deepEqual(historyOf(spool, 'retried').attempts.map((a) => a.status), [503]);
      await daemon.waitEvent('delivered', 'retried', 10_000);
      assert.deepEqual(allFiles(path.join(spool, 'attempts')), []);
      assert.deepEqual(allFiles(path.join(spool, 'delivered')), []);
      const r = spoolctl(['history', 'retried', '--spool', spool]);
      assert.equal(r.status, 1);
      // One line that says where to look instead: the daemon's log.
      assert.match(r.stderr, /^spoolctl: retried: not found in the spool \(a delivered message is kept only with --keep-delivered\); .*\(under systemd: journalctl -u spoold -o cat --grep=retried\)\n$/);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('a bounced message keeps its attempts; delete removes them', async () => {
    const sink = await scripted({ refused: [503, 404] });
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    try {
      drop(spool, 'refused', { url: `${sink.url}/refused` });
      await daemon.waitEvent('bounced', 'refused', 10_000);
      const h = historyOf(spool, 'refused');
      assert.equal(h.queue, 'bounced');
      assert.deepEqual(h.attempts.map((a) => a.status), [503, 404]);
      const text = spoolctl(['history', 'refused', '--spool', spool]).stdout;
      assert.match(text, /queue: +bounced/);
      assert.match(text, /HTTP 503 .*\n.*HTTP 404/);
      assert.equal(spoolctl(['delete', 'refused', '--yes', '--spool', spool]).status, 0);
      await waitFor('its history removed', () => allFiles(path.join(spool, 'attempts')).length === 0);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('replays a kept delivery and a bounce as new attempt series, and refuses one still queued', async () => {
    const sink = await scripted({ gone: [404, 200], busy: [503] });
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--keep-delivered', '1h', '--min-backoff', '1h', '--max-backoff', '1h']);
    const requests = (id: string) => sink.received.filter((r) => r.url === `/${id}`).length;
    try {
      drop(spool, 'kept', { url: `${sink.url}/kept` });
      drop(spool, 'gone', { url: `${sink.url}/gone` });
      drop(spool, 'busy', { url: `${sink.url}/busy` });
      await daemon.waitEvent('delivered', 'kept');
      await daemon.waitEvent('bounced', 'gone');
      await daemon.waitEvent('deferred', 'busy');

      const queued = spoolctl(['replay', 'busy', '--spool', spool]);
      assert.equal(queued.status, 1);
      assert.match(queued.stderr, /busy: not moved: still queued in deferred\//);
      assert.equal(spoolctl(['replay', 'nothing', '--spool', spool]).status, 1);

      assert.equal(spoolctl(['replay', 'kept', '--spool', spool]).status, 0);
      await waitFor('kept sent again', () => requests('kept') === 2);
      await waitFor('kept again in delivered/', () => daemon.events('delivered', 'kept').length === 2);
      const both = JSON.parse(spoolctl(['history', 'kept', '--spool', spool, '--json']).stdout) as Printed[];
      assert.deepEqual(both.map((h) => [h.queue, h.attempts.map((a) => a.status)]), [['delivered', [200]], ['delivered', [200]]]);

      const destination = new URL(sink.url).host;
      const r = spoolctl(['replay', '--destination', destination, '--since', '1h', '--spool', spool, '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual((JSON.parse(r.stdout) as { done: string[] }).done.sort(), ['gone', 'kept']);
      await daemon.waitEvent('delivered', 'gone', 10_000);
      // The bounce's attempts go on: the 404, then the 200 of its replay.
      assert.deepEqual(historyOf(spool, 'gone').attempts.map((a) => a.status), [404, 200]);
      await waitFor('kept sent a third time', () => requests('kept') === 3);
      assert.equal(requests('busy'), 1, 'the queued one was left alone');

      // --new-id: a new Idempotency-Key for receivers that drop repeats.
      const renamed = spoolctl(['replay', 'kept', '--new-id', '--spool', spool]);
      assert.equal(renamed.status, 0, renamed.stderr);
      const fresh = /^kept -> (\S+)$/m.exec(renamed.stdout)![1]!;
      await daemon.waitEvent('delivered', fresh);
      assert.equal(sink.byId(fresh).length, 1);
      assert.equal(requests('kept'), 4);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('keeps the attempts across a SIGKILL, and a replay made while the daemon is stopped goes at the next start', async () => {
    const sink = await scripted({ order: [503, 503, 200] });
    const spool = tempSpool();
    const args = ['--keep-delivered', '1h', '--min-backoff', '200ms', '--max-backoff', '400ms'];
    let daemon = await startDaemon(spool, args);
    try {
      drop(spool, 'order', { url: `${sink.url}/order` });
      await daemon.waitEvent('deferred', 'order');
      assert.equal((await daemon.stop('SIGKILL')).signal, 'SIGKILL');
      assert.deepEqual(historyOf(spool, 'order').attempts.map((a) => a.status), [503], 'the first attempt is on disk');

      daemon = await startDaemon(spool, args);
      await daemon.waitEvent('delivered', 'order', 10_000);
      const kept = historyOf(spool, 'order');
      assert.equal(kept.queue, 'delivered');
      assert.deepEqual(kept.attempts.map((a) => a.status), [503, 503, 200], 'one series across the kill');
      assert.equal((await daemon.stop()).code, 0);

      const r = spoolctl(['replay', 'order', '--spool', spool]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(filesIn(spool, 'incoming'), ['order.json'], 'waiting for the next start');
      daemon = await startDaemon(spool, args);
      await waitFor('replay kept', () => daemon.events('delivered', 'order').length === 1);
      const both = JSON.parse(spoolctl(['history', 'order', '--spool', spool, '--json']).stdout) as Printed[];
      assert.deepEqual(both.map((h) => h.attempts.map((a) => a.status)), [[200], [503, 503, 200]], 'the replay first: newest first');
      assert.equal(sink.received.length, 4);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });
});
