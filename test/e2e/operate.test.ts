/**
 * Every spoolctl command against a running daemon, a real spool and a real
 * local HTTP server; and spoold's operator side: SIGHUP reload, log formats.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, drop, ensureSpoolDirs, idsIn, ROOT, sleep, SPOOLCTL, SPOOLD, spoolctl, startDaemon, startSink, tempSpool, waitFor } from './helpers.js';

after(cleanup);

describe('spoolctl', () => {
  it('hold keeps a message untouched past its retry time; release lets it go with its attempts', async () => {
    let healthy = false;
    // The retry is 2 s away: time enough for spoolctl to hold it first, however loaded the machine.
    const sink = await startSink((_req, res) => (healthy ? res.end() : res.writeHead(503, { 'retry-after': '2' }).end()));
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--min-backoff', '500ms', '--max-backoff', '500ms']);
    try {
      drop(spool, 'held-1', { url: `${sink.url}/x` });
      drop(spool, 'other', { url: `${sink.url}/x` });
      const deferred = await daemon.waitEvent('deferred', 'held-1');
      const held = spoolctl(['hold', 'held-1', '--spool', spool]);
      assert.equal(held.status, 0, held.stderr);
      assert.deepEqual(idsIn(spool, 'hold'), ['held-1']);
      healthy = true;
      await daemon.waitEvent('delivered', 'other', 5000);
      await sleep(Date.parse(String(deferred.nextAttemptAt)) - Date.now() + 1000); // well past its retry time
      assert.equal(sink.byId('held-1').length, 1, 'a held message is never sent');
      assert.deepEqual(idsIn(spool, 'hold'), ['held-1']);
      const listed = JSON.parse(spoolctl(['list', '--json', '--queue', 'hold', '--spool', spool]).stdout) as { id: string; attempts: number }[];
      assert.deepEqual(listed.map((r) => [r.id, r.attempts]), [['held-1', 1]], 'a held message keeps its attempts');

      assert.equal(spoolctl(['release', 'held-1', '--spool', spool]).status, 0);
      const d = await daemon.waitEvent('delivered', 'held-1', 5000);
      assert.equal(d.attempt, 2);
      assert.equal(spoolctl(['release', 'held-1', '--spool', spool]).status, 1, 'nothing left to release');
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('hold takes a message out of its ordering line; flush and requeue say why they leave one there', async () => {
    let healthy = false;
    const sink = await startSink((req, res) => res.writeHead(healthy || req.headers['idempotency-key'] !== 'k-0' ? 200 : 503).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--min-backoff', '500ms', '--max-backoff', '500ms']);
    try {
      for (const id of ['k-0', 'k-1', 'k-2']) {
        drop(spool, id, { url: `${sink.url}/x`, orderingKey: 'K', body: { id } });
        await sleep(5); // distinct write times
      }
      await daemon.waitEvent('deferred', 'k-0');
      await waitFor('k-1 and k-2 in line', () => idsIn(spool, 'ordered').length === 2, 5000);

      for (const verb of ['flush', 'requeue']) {
        const r = spoolctl([verb, 'k-1', '--spool', spool]);
        assert.equal(r.status, 1, `${verb}: ${r.stdout}`);
        assert.match(r.stderr, /k-1: not moved: waits in ordered\/ behind an older message of its orderingKey/, verb);
      }
      const held = spoolctl(['hold', 'k-2', '--spool', spool]);
      assert.equal(held.status, 0, held.stderr);
      assert.deepEqual(idsIn(spool, 'hold'), ['k-2']);
      assert.deepEqual(idsIn(spool, 'ordered'), ['k-1']);

      healthy = true;
      await daemon.waitEvent('delivered', 'k-1', 5000);
      await sleep(1000);
      assert.equal(sink.byId('k-2').length, 0, 'a held message is never sent, its line gone or not');
      assert.equal(spoolctl(['release', 'k-2', '--spool', spool]).status, 0);
      assert.equal((await daemon.waitEvent('delivered', 'k-2', 5000)).attempt, 1, 'waiting in line spent no attempt');
      assert.deepEqual(sink.received.map((r) => r.headers['idempotency-key']).filter((id, i, all) => all.indexOf(id) === i), ['k-0', 'k-1', 'k-2']);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('delete --yes removes exactly the named ids, and refuses to run unasked off a terminal', async () => {
    const spool = tempSpool();
    const daemon = await startDaemon(spool);
    await daemon.stop(); // nothing to deliver: the messages stay where they are put
    for (const id of ['a', 'b', 'c', 'd']) drop(spool, id, { url: 'http://127.0.0.1:9/x' });
    const daemon2 = await startDaemon(spool, ['--min-backoff', '1h', '--max-backoff', '1h']);
    try {
      await waitFor('all deferred', () => idsIn(spool, 'deferred').length === 4);
      const unasked = spoolctl(['delete', 'a', '--spool', spool]);
      assert.equal(unasked.status, 2);
      assert.match(unasked.stderr, /--yes/);
      assert.equal(idsIn(spool, 'deferred').length, 4);

      // On a terminal it asks; "n" keeps the message, "y" deletes it.
      const onTerminal = (answer: string) =>
        spawnSync('script', ['-q', '-e', '-c', `${process.execPath} ${SPOOLCTL} delete d --spool ${spool}`, '/dev/null'], { input: `${answer}\n`, encoding: 'utf8', timeout: 10_000 });
      const kept = onTerminal('n');
      assert.match(kept.stdout, /Delete 1 message for good\? \[y\/N\]/);
      assert.ok(idsIn(spool, 'deferred').includes('d'), 'answered no: kept');
      onTerminal('y');
      assert.ok(!idsIn(spool, 'deferred').includes('d'), 'answered yes: deleted');

      const r = spoolctl(['delete', 'a', 'c', '--yes', '--spool', spool]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(idsIn(spool, 'deferred'), ['b']);
      const missing = spoolctl(['delete', 'a', '--yes', '--spool', spool]);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /a: not found/);
      assert.equal(spoolctl(['delete', '--all', '--yes', '--spool', spool]).status, 2, '--all needs --queue');
      assert.equal(spoolctl(['delete', '--all', '--queue', 'deferred', '--yes', '--spool', spool]).status, 0);
      assert.deepEqual(idsIn(spool, 'deferred'), []);
    } finally {
      await daemon2.stop();
    }
  });

  it('show redacts credentials unless --reveal; list and stats read the queue shape', async () => {
    const sink = await startSink((req, res) => res.writeHead(req.url === '/gone' ? 410 : 503).end('nope'));
    const other = sink.url.replace('127.0.0.1', 'localhost');
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--min-backoff', '1h', '--max-backoff', '1h']);
    try {
      drop(spool, 'secret', { url: `${sink.url}/x`, headers: { Authorization: 'Bearer abc123', Cookie: 'sid=xyz', 'X-Api-Key': 'k-999', 'X-Trace': 'visible' } });
      for (let i = 0; i < 3; i++) drop(spool, `o-${i}`, { url: `${other}/y` });
      drop(spool, 'gone', { url: `${sink.url}/gone` });
      await waitFor('settled', () => idsIn(spool, 'deferred').length === 4 && idsIn(spool, 'bounced').length === 1);

      const shown = spoolctl(['show', 'secret', '--spool', spool]);
      assert.equal(shown.status, 0, shown.stderr);
      assert.match(shown.stdout, /queue:\s+deferred/);
      assert.match(shown.stdout, /last error:\s+HTTP 503/);
      assert.match(shown.stdout, /"X-Trace": "visible"/);
      for (const secret of ['abc123', 'sid=xyz', 'k-999']) assert.ok(!shown.stdout.includes(secret), `${secret} is redacted`);
      const revealed = JSON.parse(spoolctl(['show', 'secret', '--json', '--reveal', '--spool', spool]).stdout);
      assert.equal(revealed.message.headers.Authorization, 'Bearer abc123');
      assert.equal(revealed.attempts, 1);
      const listed = spoolctl(['list', '--spool', spool]).stdout + spoolctl(['list', '--json', '--spool', spool]).stdout;
      assert.ok(!listed.includes('abc123'), 'list never prints credentials');
      const bounced = spoolctl(['show', 'gone', '--spool', spool]);
      assert.match(bounced.stdout, /reason:\s+HTTP 410: nope/);
      assert.equal(spoolctl(['show', 'nope', '--spool', spool]).status, 1);
      // An id that is in the spool, but not where an action looks: it says where, and what would move it.
      const misplaced = spoolctl(['flush', 'gone', '--spool', spool]);
      assert.equal(misplaced.status, 1);
      assert.equal(misplaced.stderr, 'spoolctl: gone: not moved: it is in bounced/ (requeue sends it again)\n');
      const notHeld = spoolctl(['release', 'o-0', '--spool', spool]);
      assert.equal(notHeld.stderr, 'spoolctl: o-0: not moved: it is in deferred/, waiting for its next attempt (flush makes it due now)\n');

      const limited = JSON.parse(spoolctl(['list', '--json', '--limit', '2', '--queue', 'deferred', '--spool', spool]).stdout) as unknown[];
      assert.equal(limited.length, 2);
      const table = spoolctl(['list', '--queue', 'deferred', '--spool', spool]).stdout;
      assert.match(table, /^ID\s+QUEUE\s+ATTEMPTS\s+NEXT\s+DESTINATION\s+AGE\s+LAST ERROR$/m);
      assert.match(table, /o-1\s+deferred\s+1\s+in \d+[mh]\s+localhost:\d+\s+\d+m?s\s+HTTP 503/);

      const st = JSON.parse(spoolctl(['stats', '--json', '--spool', spool]).stdout);
      assert.deepEqual(st.counts, { active: 0, incoming: 0, deferred: 4, ordered: 0, hold: 0, bounced: 1 });
      const deferredShape = st.shapes.find((s: { queue: string }) => s.queue === 'deferred');
      assert.deepEqual(deferredShape.buckets, ['5m', '10m', '20m', '40m', '80m', '160m', '320m', '320m+']);
      const host = new URL(other).host;
      assert.deepEqual(deferredShape.rows[0], { destination: host, total: 3, counts: [3, 0, 0, 0, 0, 0, 0, 0] });
      assert.deepEqual(deferredShape.rows[1], { destination: new URL(sink.url).host, total: 1, counts: [1, 0, 0, 0, 0, 0, 0, 0] });
      const text = spoolctl(['stats', '--spool', spool]).stdout;
      assert.match(text, /deferred by destination and age:/);
      assert.match(text, new RegExp(`${host.replace('.', '\\.')}\\s+3\\s+3\\s+0`));
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('gives help with examples on every command, and clear errors without stack traces', () => {
    for (const cmd of ['list', 'show', 'flush', 'requeue', 'hold', 'release', 'delete', 'stats', 'enqueue']) {
      const r = spoolctl([cmd, '--help']);
      assert.equal(r.status, 0, cmd);
      assert.match(r.stdout, /Examples?:/, `${cmd} --help shows examples`);
    }
    // Piped into a reader that leaves early: no EPIPE stack trace.
    for (const bin of [SPOOLCTL, SPOOLD]) {
      const piped = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" --help | true`], { encoding: 'utf8' });
      assert.equal(piped.status, 0);
      assert.doesNotMatch(piped.stderr, /EPIPE|\n\s+at /, bin);
    }
    const cases: [string[], number, RegExp][] = [
      [['frobnicate'], 2, /unknown command/],
      [['list', '--queue', 'nowhere', '--spool', '/tmp'], 2, /unknown queue/],
      [['list', '--limit', 'many', '--spool', '/tmp'], 2, /--limit takes a whole number/],
      [['list', '--spool', '/nonexistent/spool'], 2, /is not a spool/],
      [['hold', '--spool', '/tmp'], 2, /missing required argument/],
      [['release', '--spool', '/tmp'], 2, /^spoolctl: give ids or --all, not both and not neither$/],
      [['--bogus'], 2, /^spoolctl: unknown option '--bogus'/],
    ];
    for (const [args, status, message] of cases) {
      const r = spoolctl(args);
      assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trimEnd(), message, args.join(' '));
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) assert.equal(spoolctl([flag]).stdout.trim(), version, flag);
  });

  it('enqueue on a read-only spool fails once, in one line, and leaves nothing behind', () => {
    const spool = tempSpool();
    ensureSpoolDirs(spool);
    const r = spawnSync('unshare', ['--mount', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$1" "$2" enqueue --spool "$0" --url http://127.0.0.1:9/x --data hi', spool, process.execPath, SPOOLCTL], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^spoolctl: cannot write into .*\/tmp: EROFS\n$/);
    assert.deepEqual(fs.readdirSync(path.join(spool, 'tmp')), []);
    assert.deepEqual(idsIn(spool, 'incoming'), []);
  });
});

describe('spoold for operators', () => {
  it('reloads its config file on SIGHUP without dropping the request in flight', async () => {
    const held: import('node:http').ServerResponse[] = [];
    const sink = await startSink((req, res) => (req.url === '/slow' ? held.push(res) : res.writeHead(500).end()));
    const spool = tempSpool();
    const config = path.join(path.dirname(spool), 'spoold.json');
    fs.writeFileSync(config, JSON.stringify({ 'max-attempts': 1 }));
    const daemon = await startDaemon(spool, ['--config', config]);
    try {
      drop(spool, 'before', { url: `${sink.url}/fail` });
      assert.equal((await daemon.waitEvent('bounced', 'before')).reason, 'HTTP 500 after 1 attempt');

      drop(spool, 'in-flight', { url: `${sink.url}/slow` });
      await waitFor('request in flight', () => held.length === 1);
      fs.writeFileSync(config, JSON.stringify({ maxAttempts: 2, 'log-level': 'info', spool: '/ignored/by/flag' }));
      daemon.child.kill('SIGHUP');
      const reloaded = await daemon.waitEvent('config-reloaded');
      assert.deepEqual(reloaded.changed, ['maxAttempts'], 'names only: values may be secrets');
      held[0]!.end('ok');
      await daemon.waitEvent('delivered', 'in-flight');

      drop(spool, 'after', { url: `${sink.url}/fail` });
      assert.equal((await daemon.waitEvent('bounced', 'after')).reason, 'HTTP 500 after 2 attempts');

      fs.writeFileSync(config, '{ not json');
      daemon.child.kill('SIGHUP');
      await daemon.waitEvent('config-reload-failed');
      assert.equal(daemon.child.exitCode, null, 'a bad config file on reload keeps the daemon running');
      assert.equal((await daemon.stop()).code, 0);
    } finally {
      await daemon.stop();
      await sink.close();
    }
  });

  it('logs JSON lines by default when not on a terminal, and a human format on request', async () => {
    const spool = tempSpool();
    const json = await startDaemon(spool);
    await json.stop();
    for (const line of json.lines) {
      assert.equal(typeof line.event, 'string');
      assert.equal(typeof line.time, 'string');
      assert.equal(typeof line.level, 'string');
    }
    assert.deepEqual(json.lines.map((l) => l.event), ['lock-taken', 'started', 'stopping', 'stopped']);

    const pretty = await startDaemon(spool, ['--log-format', 'pretty'], { ready: false });
    await waitFor('pretty start line', () => pretty.lines.some((l) => /INFO: started: spoold started on/.test(String(l.text))));
    await pretty.stop();
    assert.ok(pretty.lines.every((l) => l.event === 'unparsed'), 'no JSON in the human format');
  });
});
