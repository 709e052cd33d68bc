/**
 * Scenario 3: hostile files in incoming/, mixed into valid traffic. Nothing
 * is sent that should not be, nothing valid is lost, the daemon stays up,
 * and every bounce says why.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensureSpoolDirs, startDaemon, tempSpool, waitFor } from '../e2e/helpers.js';
import { countingSink, quickDrop, snapshot, sleep, type Outcome } from './common.js';

export async function hostileInput(opts: { valid: number }): Promise<Outcome> {
  const sink = await countingSink(0, { keepBodies: true });
  const spool = tempSpool();
  ensureSpoolDirs(spool);
  const incoming = path.join(spool, 'incoming');
  const outside = path.dirname(spool);
  const secret = path.join(outside, 'secret.json');
  fs.writeFileSync(secret, JSON.stringify({ url: `${sink.url}/leak`, body: 'SECRET-DATA' }));
  const url = `${sink.url}/hook`;

  // Bounced, each for its reason (id → pattern of the reason).
  const bounced: Record<string, RegExp> = {};
  const put = (id: string, content: string | Buffer, reason: RegExp) => {
    fs.writeFileSync(path.join(spool, 'tmp', `${id}.json`), content);
    fs.renameSync(path.join(spool, 'tmp', `${id}.json`), path.join(incoming, `${id}.json`));
    bounced[id] = reason;
  };
  fs.symlinkSync(secret, path.join(incoming, 'symlink.json'));
  bounced.symlink = /symbolic link/;
  fs.linkSync(secret, path.join(incoming, 'hardlink.json'));
  bounced.hardlink = /hard links/;
  execFileSync('mkfifo', [path.join(incoming, 'fifo.json')]);
  bounced.fifo = /FIFO/;
  fs.mkdirSync(path.join(incoming, 'dir.json'));
  bounced.dir = /directory/;
  const huge = path.join(spool, 'tmp', 'huge.json');
  fs.writeFileSync(huge, '');
  fs.truncateSync(huge, 1024 ** 3); // 1 GiB, sparse: must be refused without being read
  fs.renameSync(huge, path.join(incoming, 'huge.json'));
  bounced.huge = /over the size limit/;
  put('nested', '['.repeat(200_000) + ']'.repeat(200_000), /not valid JSON|not a JSON object/);
  put('bad-utf8', Buffer.concat([Buffer.from(`{"url":"${url}","body":"`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]), /UTF-8/);
  put('proto', `{"url":"${url}","__proto__":{"polluted":true}}`, /unknown field "__proto__"/);
  put('constructor', `{"url":"${url}","constructor":{"prototype":{"x":1}}}`, /unknown field "constructor"/);
  put('header-crlf', JSON.stringify({ url, headers: { 'X-A': 'a\r\nX-Injected: yes' } }), /CR, LF or NUL/);
  put('header-name-crlf', JSON.stringify({ url, headers: { 'X-A\r\nX-Injected': 'yes' } }), /not a valid HTTP token/);
  put('scheme-file', JSON.stringify({ url: 'file:///etc/shadow' }), /scheme file:/);
  put('scheme-gopher', JSON.stringify({ url: 'gopher://127.0.0.1/' }), /scheme gopher:/);
  put('creds', JSON.stringify({ url: url.replace('http://', 'http://user:pass@') }), /credentials/);

  // Left alone: names that are not message names.
  const ignored = ['..json', `${'n'.repeat(250)}.json`, 'x.json.123456', '.hidden.json', 'note.txt'];
  for (const name of ignored) fs.writeFileSync(path.join(incoming, name), JSON.stringify({ url: `${sink.url}/ignored` }));
  const badName = Buffer.concat([Buffer.from(incoming + '/'), Buffer.from([0x66, 0xff, 0xfe]), Buffer.from('.json')]);
  fs.writeFileSync(badName, JSON.stringify({ url: `${sink.url}/ignored` }));

  const daemon = await startDaemon(spool, ['--log-level', 'warn'], { ready: false });
  // Valid traffic, plus files written slowly in place and files replaced or
  // removed while the daemon may be reading them.
  for (let i = 0; i < opts.valid; i++) quickDrop(spool, `v-${i}`, { url, body: { n: i, check: `v-${i}` } });
  const slow = fs.openSync(path.join(incoming, 'slow.json'), 'w');
  fs.writeSync(slow, `{"url":"${url}","body":{"check":"slow","part":"one`);
  let replaced = 0;
  let removed = 0;
  for (let i = 0; i < 200; i++) {
    quickDrop(spool, `r-${i}`, { url, body: { check: `r-${i}`, version: 1 } });
    if (i % 2 === 0) {
      try {
        fs.unlinkSync(path.join(incoming, `r-${i}.json`));
        removed++;
      } catch {
        /* claimed first */
      }
    } else {
      quickDrop(spool, `r-${i}`, { url, body: { check: `r-${i}`, version: 2 } });
      replaced++;
    }
  }
  await sleep(800);
  fs.writeSync(slow, ' and two"}}');
  fs.closeSync(slow);

  const validIds = [...Array.from({ length: opts.valid }, (_, i) => `v-${i}`), 'slow'];
  let settled = true;
  await waitFor('valid traffic delivered', () => validIds.every((id) => sink.delivered.has(id)), 60_000, 100).catch(() => (settled = false));
  await waitFor('hostile files bounced', () => Object.keys(bounced).every((id) => snapshot(spool).get(id)?.includes('bounced')), 20_000, 100).catch(() => (settled = false));
  await sleep(500);

  const problems: string[] = [];
  const leaked = [...sink.bodies.values()].filter((b) => b.includes('SECRET-DATA')).length;
  if (leaked) problems.push(`${leaked} secret sent`);
  const sentIds = [...sink.requests.keys()];
  const unexpected = sentIds.filter((id) => !/^(v-\d+|r-\d+|slow)$/.test(id));
  if (unexpected.length) problems.push(`sent: ${unexpected.join(', ')}`);
  for (const [id, body] of sink.bodies) {
    const parsed = JSON.parse(body) as { check?: string; part?: string };
    if (parsed.check !== id) problems.push(`${id} sent with another body`);
    if (id === 'slow' && parsed.part !== 'one and two') problems.push('the slow file was sent truncated');
  }
  const reasons = new Map<string, string>();
  for (const name of fs.readdirSync(path.join(spool, 'bounced')).filter((n) => n.endsWith('.reason'))) {
    const r = JSON.parse(fs.readFileSync(path.join(spool, 'bounced', name), 'utf8')) as { id: string; reason: string };
    reasons.set(r.id, r.reason);
  }
  for (const [id, pattern] of Object.entries(bounced)) {
    const reason = reasons.get(id);
    if (!reason || !pattern.test(reason)) problems.push(`${id}: ${reason ?? 'not bounced'}`);
  }
  const left = fs.readdirSync(incoming).length;
  if (left !== ignored.length + 1) problems.push(`incoming/ holds ${left} entries, expected the ${ignored.length + 1} foreign names`);
  const up = daemon.child.exitCode === null;
  await daemon.stop();
  await sink.close();
  const pass = settled && up && problems.length === 0;
  return {
    scenario: '3. hostile spool input',
    pass,
    figures:
      `${Object.keys(bounced).length} hostile files bounced with their reasons, ${ignored.length + 1} foreign names left alone, ` +
      `${opts.valid} valid messages delivered around them, a file written in place in two parts sent whole, ${replaced} files replaced and ${removed} removed under the daemon; ` +
      `secrets sent: ${leaked}; daemon up: ${up}${problems.length ? `; problems: ${problems.slice(0, 8).join('; ')}` : ''}`,
  };
}
