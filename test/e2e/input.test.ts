/**
 * Bad input in incoming/: the daemon stays up, bounces what it claimed with a
 * reason, never reads through links, never touches names that are not its own,
 * and keeps delivering the valid traffic around it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanup, drop, filesIn, idsIn, startDaemon, startSink, tempSpool, waitFor, type Daemon, type Sink } from './helpers.js';

after(cleanup);

describe('bad input', () => {
  let sink: Sink;
  let spool: string;
  let daemon: Daemon;
  let secretFile: string;
  const SECRET = 'TOP-SECRET-7f3a9';

  before(async () => {
    sink = await startSink((_req, res) => res.end('ok'));
    spool = tempSpool();
    daemon = await startDaemon(spool, ['--max-size', '2k']);
    secretFile = path.join(path.dirname(spool), 'secret.json');
    fs.writeFileSync(secretFile, JSON.stringify({ url: `${sink.url}/leak`, body: SECRET }));
  });

  after(async () => {
    assert.equal(daemon.child.exitCode, null, 'the daemon is still up after all of it');
    await daemon.stop();
    await sink.close();
  });

  function reasonOf(id: string): string {
    const name = filesIn(spool, 'bounced').find((n) => n.endsWith(`_${id}.json`));
    assert.ok(name, `${id} is in bounced/`);
    return String(JSON.parse(fs.readFileSync(path.join(spool, 'bounced', name + '.reason'), 'utf8')).reason);
  }

  const cases: [string, unknown, RegExp][] = [
    ['not-json', '{"url": "http://127.0.0.1:1/x",', /not valid JSON/],
    ['empty', '', /empty file/],
    ['array', [{ url: 'http://127.0.0.1:1/' }], /not a JSON object/],
    ['number', 42, /not a JSON object/],
    ['no-url', { body: 'x' }, /"url" is missing/],
    ['bad-url', { url: 'not a url' }, /not a valid absolute URL/],
    ['ftp-url', { url: 'ftp://127.0.0.1/file' }, /scheme ftp: is not allowed/],
    ['file-url', { url: 'file:///etc/passwd' }, /scheme file: is not allowed/],
    ['creds-url', { url: 'http://user:pw@127.0.0.1:1/' }, /credentials/],
    ['header-crlf', { url: 'http://127.0.0.1:1/', headers: { 'X-A': 'v\r\nX-Injected: 1' } }, /CR, LF or NUL/],
    ['header-name', { url: 'http://127.0.0.1:1/', headers: { 'Bad Name': 'v' } }, /not a valid HTTP token/],
    ['header-type', { url: 'http://127.0.0.1:1/', headers: { 'X-N': 5 } }, /must be a string/],
    ['unknown-field', { url: 'http://127.0.0.1:1/', retries: 3 }, /unknown field "retries"/],
    ['proto-key', '{"url":"http://127.0.0.1:1/","__proto__":{"x":1}}', /unknown field "__proto__"/],
  ];

  it('bounces each kind of invalid message with a clear reason, sending nothing', async () => {
    for (const [id, content] of cases) drop(spool, id, content);
    for (const [id, , reason] of cases) {
      await daemon.waitEvent('bounced', id);
      assert.match(reasonOf(id), reason, id);
    }
    assert.equal(sink.received.length, 0);
  });

  it('bounces a file over --max-size without reading it', async () => {
    drop(spool, 'too-big', { url: `${sink.url}/big`, body: 'x'.repeat(4096) });
    await daemon.waitEvent('bounced', 'too-big');
    assert.match(reasonOf('too-big'), /over the size limit of 2048/);
    assert.equal(sink.byId('too-big').length, 0);
  });

  it('never reads through a symlink, and quotes nothing of the target', async () => {
    fs.symlinkSync(secretFile, path.join(spool, 'incoming', 'link.json'));
    await daemon.waitEvent('bounced', 'link');
    assert.match(reasonOf('link'), /symbolic link/);
    const bouncedLink = filesIn(spool, 'bounced').find((n) => n.endsWith('_link.json'))!;
    assert.ok(fs.lstatSync(path.join(spool, 'bounced', bouncedLink)).isSymbolicLink(), 'the link itself was moved, untouched');
    assert.equal(sink.received.filter((r) => r.body.includes(SECRET)).length, 0);
    assert.ok(!daemon.lines.some((l) => JSON.stringify(l).includes(SECRET)), 'the secret is not in the log');
  });

  it('bounces a directory and a FIFO named like messages without blocking', async () => {
    fs.mkdirSync(path.join(spool, 'incoming', 'dir.json'));
    execFileSync('mkfifo', [path.join(spool, 'incoming', 'fifo.json')]);
    drop(spool, 'after-fifo', { url: `${sink.url}/ok` });
    await daemon.waitEvent('delivered', 'after-fifo');
    await daemon.waitEvent('bounced', 'dir');
    await daemon.waitEvent('bounced', 'fifo');
    assert.match(reasonOf('dir'), /directory/);
    assert.match(reasonOf('fifo'), /FIFO/);
  });

  it('leaves temp files, dot-files, swap files and invalid names in incoming/ untouched', async () => {
    const foreign = ['m1.json.3735928559', '.hidden.json', '.m2.json.swp', 'm3.json~', 'notes.txt', 'bad name.json', `${'a'.repeat(129)}.json`];
    for (const name of foreign) fs.writeFileSync(path.join(spool, 'incoming', name), JSON.stringify({ url: `${sink.url}/foreign` }));
    drop(spool, 'marker', { url: `${sink.url}/ok` });
    await daemon.waitEvent('delivered', 'marker');
    // Two full rescans later they are all still there, unread.
    await new Promise((r) => setTimeout(r, 800));
    const left = fs.readdirSync(path.join(spool, 'incoming')).sort();
    assert.deepEqual(left, [...foreign].sort());
    assert.equal(sink.received.filter((r) => r.url === '/foreign').length, 0);
  });

  it('never reads a hard link to a file outside the spool', async () => {
    fs.linkSync(secretFile, path.join(spool, 'incoming', 'hardlink.json'));
    await daemon.waitEvent('bounced', 'hardlink');
    assert.match(reasonOf('hardlink'), /2 hard links/);
    assert.equal(sink.received.filter((r) => r.body.includes(SECRET)).length, 0);
  });

  it('waits for a file written slowly in place, and never sends it truncated', async () => {
    const file = path.join(spool, 'incoming', 'slow-writer.json');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, `{"url": "${sink.url}/slow-writer", "body": "first half `);
    await daemon.waitEvent('not-settled', 'slow-writer');
    await new Promise((r) => setTimeout(r, 700));
    fs.writeSync(fd, 'and second half"}');
    fs.closeSync(fd);
    await daemon.waitEvent('delivered', 'slow-writer', 10_000);
    const sent = sink.byId('slow-writer');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.body, 'first half and second half');
  });

  it('does not wait for ever on a broken file whose time is in the future', async () => {
    const tmp = path.join(spool, 'tmp', 'future.json');
    fs.writeFileSync(tmp, '{"url": "http://127.0.0.1:1/x",');
    const tomorrow = Date.now() / 1000 + 86_400;
    fs.utimesSync(tmp, tomorrow, tomorrow);
    fs.renameSync(tmp, path.join(spool, 'incoming', 'future.json'));
    await daemon.waitEvent('bounced', 'future', 3000);
    assert.match(reasonOf('future'), /not valid JSON/);
    assert.deepEqual(daemon.events('not-settled', 'future'), [], 'never taken for a file being written');
  });

  it('keeps nothing in active/ and loses nothing: every message is delivered or bounced', async () => {
    await waitFor('active/ empty', () => idsIn(spool, 'active').length === 0);
    const bounced = idsIn(spool, 'bounced');
    for (const [id] of cases) assert.ok(bounced.includes(id), id);
    for (const id of ['too-big', 'link', 'dir', 'fifo', 'hardlink']) assert.ok(bounced.includes(id), id);
  });
});
