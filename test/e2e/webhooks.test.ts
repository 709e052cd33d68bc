/**
 * Webhook-grade delivery: Standard Webhooks signatures checked by an
 * independent receiver (the standardwebhooks package), per-destination
 * settings, dead destinations, bounce notices.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { cleanup, drop, idsIn, sleep, spoolctl, startDaemon, startSink, tempSpool, waitFor, type Received } from './helpers.js';

afterEach(cleanup);

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;

function headersOf(r: Received): Record<string, string> {
  return Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)]));
}

function verifies(secretText: string, r: Received): boolean {
  try {
    new Webhook(secretText).verify(r.body, headersOf(r));
    return true;
  } catch {
    return false;
  }
}

/** A notice leaves the outbox only after it is queued (or its command has run), a moment after the event that says so. */
function outboxEmpties(spool: string): Promise<boolean> {
  return waitFor('the outbox empties', () => fs.readdirSync(path.join(spool, 'notices')).length === 0, 5000);
}

function writeConfig(spool: string, config: unknown): string {
  const file = path.join(path.dirname(spool), 'spoold.json');
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

describe('webhooks', () => {
  it('signs every attempt (Standard Webhooks), with each secret while rotating; a destination may have its own', async () => {
    let fail = true;
    // Retry-After 2 puts the second attempt at least 2 s after the first, so
    // their whole-second timestamps must differ (a 1 s back-off with ±25%
    // jitter could land both in one second).
    const sink = await startSink((_req, res) => (fail ? res.writeHead(503, { 'retry-after': '2' }) : res.writeHead(200)).end());
    const own = await startSink();
    const spool = tempSpool();
    const [oldSecret, newSecret, ownSecret] = [secret(), secret(), secret()];
    const secretFile = path.join(path.dirname(spool), 'secrets');
    fs.mkdirSync(path.dirname(spool), { recursive: true });
    fs.writeFileSync(secretFile, `${oldSecret} ${newSecret}\n`);
    const config = writeConfig(spool, { 'signing-secret-file': secretFile, destinations: [{ match: new URL(own.url).origin, signingSecret: ownSecret }] });
    const daemon = await startDaemon(spool, ['--config', config, '--min-backoff', '1s', '--max-backoff', '1s']);

    drop(spool, 'signed-1', { url: `${sink.url}/hook`, body: { order: 42 }, headers: { 'webhook-signature': 'v1,forged' } });
    await daemon.waitEvent('deferred', 'signed-1');
    fail = false;
    await daemon.waitEvent('delivered', 'signed-1', 10_000);
    drop(spool, 'signed-own', { url: `${own.url}/hook`, body: { to: 'own' } });
    await daemon.waitEvent('delivered', 'signed-own');

    const attempts = sink.byId('signed-1');
    assert.equal(attempts.length, 2);
    for (const r of attempts) {
      assert.equal(r.headers['webhook-id'], 'signed-1');
      assert.equal(String(r.headers['webhook-signature']).split(' ').length, 2, 'one signature per secret');
      assert.ok(verifies(oldSecret, r) && verifies(newSecret, r), 'the receiver verifies with either secret');
      assert.ok(!verifies(secret(), r), 'and not with another');
      assert.ok(!String(r.headers['webhook-signature']).includes('forged'), "a producer's signature header is replaced");
    }
    const stamps = attempts.map((r) => Number(r.headers['webhook-timestamp']));
    assert.ok(stamps[1]! - stamps[0]! >= 2, `the timestamp is set at each attempt: ${stamps.join(', ')}`);
    // The stamp is the send time floored to seconds, so it is never after the
    // arrival, and trails it by the floor (< 1 s) plus the time from signing to
    // arrival: a bound of 1 either side failed whenever the two added past 1 s.
    for (const [i, r] of attempts.entries()) {
      const lag = r.at / 1000 - stamps[i]!;
      assert.ok(lag >= 0 && lag < 2, `seconds, at the attempt: stamped ${stamps[i]}, arrived ${r.at / 1000}`);
    }
    const [ownReq] = own.byId('signed-own');
    assert.ok(verifies(ownSecret, ownReq!) && !verifies(oldSecret, ownReq!), "the destination's own secret, not the spool's");

    const logs = JSON.stringify(daemon.lines);
    for (const s of [oldSecret, newSecret, ownSecret]) assert.ok(!logs.includes(s.slice(6)), 'no secret in the logs');
    assert.equal((await daemon.stop()).code, 0);
  });

  it('applies per-destination concurrency, rate, timeout, back-off, attempts and headers', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = await startSink((_req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      setTimeout(() => (inFlight--, res.writeHead(_req.url === '/fail' ? 500 : 200).end()), 150);
    });
    const limited = await startSink();
    const hanging = await startSink(() => undefined);
    const spool = tempSpool();
    const config = writeConfig(spool, {
      destinations: [
        { match: new URL(slow.url).origin, concurrency: 2, maxAttempts: 2, minBackoff: '100ms', maxBackoff: '100ms', headers: { 'x-team': 'payments' } },
        { match: new URL(limited.url).origin, rps: 5 },
        { match: new URL(hanging.url).origin, timeout: '300ms' },
      ],
    });
    const daemon = await startDaemon(spool, ['--config', config, '--concurrency', '32', '--per-destination', '16', '--timeout', '20s']);
    for (let i = 0; i < 10; i++) drop(spool, `slow-${i}`, { url: `${slow.url}/ok` });
    drop(spool, 'slow-fail', { url: `${slow.url}/fail` });
    for (let i = 0; i < 15; i++) drop(spool, `rate-${i}`, { url: `${limited.url}/hook` });
    drop(spool, 'hang', { url: `${hanging.url}/hook` });

    const deferred = await daemon.waitEvent('deferred', 'hang', 5000);
    assert.equal(deferred.error, 'HEADERS_TIMEOUT', 'the destination timeout (300 ms), not the spool one (20 s)');
    await waitFor('all sent', () => slow.received.length >= 12 && limited.received.length >= 15, 15_000);
    assert.equal(maxInFlight, 2, 'concurrency 2 to that destination');
    assert.ok(slow.received.every((r) => r.headers['x-team'] === 'payments'));
    assert.ok(limited.received.every((r) => r.headers['x-team'] === undefined), 'headers only where configured');
    assert.equal((await daemon.waitEvent('bounced', 'slow-fail')).reason, 'HTTP 500 after 2 attempts');
    // 5 per second with a burst of 5: 15 requests cannot fit in less than 2 s.
    const times = limited.received.map((r) => r.at).sort((a, b) => a - b);
    for (let i = 0; i + 10 < times.length; i++) assert.ok(times[i + 10]! - times[i]! >= 1000, `11 requests took ${times[i + 10]! - times[i]!} ms: over 5 per second`);
    assert.equal((await daemon.stop()).code, 0);
  });

  it('holds back a dead destination without spending attempts, probes it, and reopens it; others flow meanwhile', async () => {
    let healthy = false;
    const dead = await startSink((_req, res) => res.writeHead(healthy ? 200 : 503).end());
    const other = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--dead-after', '3', '--dead-cool-off', '1500ms', '--min-backoff', '100ms', '--max-backoff', '100ms', '--per-destination', '1']);
    const ids = Array.from({ length: 20 }, (_, i) => `dead-${i}`);
    for (const id of ids) drop(spool, id, { url: `${dead.url}/hook` });
    const died = await daemon.waitEvent('destination-dead', undefined, 5000);
    const diedAt = Date.now();
    assert.equal(died.failures, 3);

    const stats = JSON.parse(spoolctl(['stats', '--json', '--spool', spool]).stdout);
    assert.deepEqual(stats.dead.map((d: { origin: string; state: string }) => [d.origin, d.state]), [[new URL(dead.url).origin, 'dead']]);
    assert.match(spoolctl(['stats', '--spool', spool]).stdout, /destinations \(1 held back\):[\s\S]*dead/);

    for (let i = 0; i < 5; i++) drop(spool, `other-${i}`, { url: `${other.url}/hook` });
    await waitFor('the other destination is served', () => other.received.length === 5, 3000);
    const sentBefore = dead.received.length;
    await sleep(Math.max(0, Date.parse(String(died.deadUntil)) - Date.now() - 200));
    assert.equal(dead.received.length, sentBefore, 'nothing sent during the cool-off');

    // The cool-off ends: one probe fails, and it is dead again for longer.
    const still = await daemon.waitEvent('destination-still-dead', undefined, 5000);
    assert.ok(Date.parse(String(still.deadUntil)) - Date.now() > 2000, 'the cool-off doubled');
    assert.equal(dead.received.length, sentBefore + 1, 'exactly one probe');
    healthy = true;
    await daemon.waitEvent('destination-reopened', undefined, 10_000);
    await waitFor('all delivered', () => ids.every((id) => daemon.events('delivered', id).length === 1), 15_000);
    // Attempts: the failures before it died, one failed probe, then one each.
    assert.ok(dead.received.length <= sentBefore + 1 + ids.length, `${dead.received.length} requests`);
    for (const id of ids) assert.ok(daemon.events('delivered', id)[0]!.attempt as number <= 3, `${id} spent no attempts while held back`);
    assert.ok(Date.now() - diedAt > 3000);
    assert.deepEqual(JSON.parse(spoolctl(['stats', '--json', '--spool', spool]).stdout).dead, []);
    assert.equal((await daemon.stop()).code, 0);
  });

  it('delivers one key at a time in arrival order; a failing message holds back only its key, across a kill -9', async () => {
    let failuresLeft = 2;
    const inFlight = new Map<string, number>();
    let overlap = 0;
    const sink = await startSink((req, res) => {
      const { key } = JSON.parse(req.body) as { key: string };
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
      if (inFlight.get(key)! > 1) overlap++;
      const fail = req.headers['idempotency-key'] === 'a-0' && failuresLeft-- > 0;
      setTimeout(() => {
        inFlight.set(key, inFlight.get(key)! - 1);
        res.writeHead(fail ? 503 : 200).end();
      }, 20);
    });
    const spool = tempSpool();
    fs.mkdirSync(path.join(spool, 'tmp'), { recursive: true });
    fs.mkdirSync(path.join(spool, 'incoming'), { recursive: true });
    // All waiting before the daemon starts: it finds them in directory order, not arrival order.
    const a = Array.from({ length: 10 }, (_, i) => `a-${i}`);
    const b = Array.from({ length: 10 }, (_, i) => `b-${i}`);
    for (let i = 0; i < 10; i++) {
      drop(spool, a[i]!, { url: `${sink.url}/hook`, orderingKey: 'customer-A', body: { key: 'A', i } });
      drop(spool, b[i]!, { url: `${sink.url}/hook`, orderingKey: 'customer-B', body: { key: 'B', i } });
      await sleep(2); // distinct write times
    }
    const args = ['--min-backoff', '1s', '--max-backoff', '1s'];
    let daemon = await startDaemon(spool, args);
    await daemon.waitEvent('deferred', 'a-0');
    await waitFor('key B done', () => b.every((id) => daemon.events('delivered', id).length === 1), 10_000);
    assert.equal(a.filter((id) => daemon.events('delivered', id).length > 0).length, 0, 'key A waits behind its failing head');
    assert.ok(idsIn(spool, 'ordered').length >= 8, 'the rest of key A waits in its line');
    await daemon.stop('SIGKILL');

    daemon = await startDaemon(spool, args);
    await waitFor('key A done', () => a.every((id) => daemon.events('delivered', id).length === 1), 15_000);
    const delivered = (key: string) => sink.received.filter((r) => r.headers['idempotency-key']!.toString().startsWith(key)).map((r) => String(r.headers['idempotency-key']));
    const firstSeen = (ids: string[]) => ids.filter((id, i) => ids.indexOf(id) === i);
    assert.deepEqual(firstSeen(delivered('a-')), a, 'key A in arrival order');
    assert.deepEqual(firstSeen(delivered('b-')), b, 'key B in arrival order');
    assert.equal(overlap, 0, 'never two requests of one key at once');
    assert.equal(sink.byId('a-0').length, 3, 'the head failed twice, then went');
    for (const id of a.slice(1)) assert.equal(sink.byId(id).length, 1, `${id}: sent once, no attempt spent while waiting`);
    assert.equal(daemon.events('delivered', 'a-9')[0]!.attempt, 1);
    for (const q of ['incoming', 'active', 'deferred', 'ordered']) assert.deepEqual(idsIn(spool, q), [], `${q}/ is empty`);
    assert.equal((await daemon.stop()).code, 0);
  });

  it('sends a notice per bounce to a hook (through the spool, never looping) and to a command', async () => {
    const target = await startSink((_req, res) => res.writeHead(422).end('bad field'));
    const hook = await startSink((_req, res) => res.writeHead(400).end('hook refuses too'));
    const spool = tempSpool();
    const out = path.join(path.dirname(spool), 'notices');
    fs.mkdirSync(out, { recursive: true });
    const daemon = await startDaemon(spool, ['--bounce-hook', `${hook.url}/bounces`, '--bounce-command', `cat > ${out}/"$SPOOLD_BOUNCED_ID".json`]);
    drop(spool, 'rejected', { url: `${target.url}/hook`, headers: { authorization: 'Bearer s3cret' } });
    await daemon.waitEvent('bounced', 'rejected');
    await daemon.waitEvent('bounced', 'bounce-notice.rejected', 5000);
    await daemon.waitEvent('bounce-command-done', 'rejected');

    assert.equal(hook.received.length, 1, 'the notice was sent once; its own bounce raised no notice');
    const notice = JSON.parse(hook.received[0]!.body);
    assert.equal(notice.type, 'spoold.bounced');
    assert.equal(notice.id, 'rejected');
    assert.equal(notice.url, `${target.url}/hook`);
    assert.match(notice.reason, /HTTP 422/);
    assert.ok(!hook.received[0]!.body.includes('s3cret'), 'no message headers in the notice');
    const fromCommand = JSON.parse(fs.readFileSync(path.join(out, 'rejected.json'), 'utf8'));
    assert.equal(fromCommand.id, 'rejected');
    assert.ok(!fs.existsSync(path.join(out, 'bounce-notice.rejected.json')), 'no notice about a notice');
    assert.deepEqual(idsIn(spool, 'bounced'), ['bounce-notice.rejected', 'rejected']);
    await outboxEmpties(spool);
    assert.equal((await daemon.stop()).code, 0);
  });

  it('a notice a kill kept from going out goes at the next start; orphan reason records are removed', async () => {
    const hook = await startSink();
    const spool = tempSpool();
    const out = path.join(path.dirname(spool), 'ran');
    fs.mkdirSync(out);
    // As a daemon killed right after the move into bounced/ leaves it: the notice still in the outbox.
    const first = await startDaemon(spool);
    await first.stop();
    const name = `${Date.now()}_1_${Date.now()}_-_422_killed.json`;
    fs.writeFileSync(path.join(spool, 'bounced', name), JSON.stringify({ url: 'http://127.0.0.1:1/x' }));
    const record = { id: 'killed', reason: 'HTTP 422', lastError: 'HTTP 422', attempts: 1, arrival: new Date().toISOString(), bouncedAt: new Date().toISOString(), url: 'http://127.0.0.1:1/x' };
    fs.writeFileSync(path.join(spool, 'bounced', `${name}.reason`), JSON.stringify(record));
    fs.writeFileSync(path.join(spool, 'notices', name), JSON.stringify({ type: 'spoold.bounced', spool, ...record }));
    // And a requeue killed between its two steps: a reason record without its message.
    fs.writeFileSync(path.join(spool, 'bounced', '1_1_1_-_404_gone.json.reason'), '{}');
    const daemon = await startDaemon(spool, ['--bounce-hook', `${hook.url}/bounces`, '--bounce-command', `cat > ${out}/"$SPOOLD_BOUNCED_ID".json`]);
    await daemon.waitEvent('delivered', 'bounce-notice.killed');
    await daemon.waitEvent('bounce-command-done', 'killed');
    assert.equal(JSON.parse(hook.received[0]!.body).id, 'killed');
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'killed.json'), 'utf8')).reason, 'HTTP 422');
    await outboxEmpties(spool);
    assert.equal(daemon.events('orphans-removed')[0]?.count, 1);
    assert.deepEqual(fs.readdirSync(path.join(spool, 'bounced')).sort(), [name, `${name}.reason`]);
    assert.equal((await daemon.stop()).code, 0);
  });

  it('--notify sends delivered, delayed (once) and recovered notices, never about a notice, never the headers', async () => {
    let flaky = 0;
    const target = await startSink((req, res) => {
      if (req.url !== '/flaky') return void res.end('ok');
      // Failing until the message is well past --delay-warning 1s.
      flaky++;
      res.writeHead(flaky <= 5 ? 503 : 200).end();
    });
    const hook = await startSink();
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--bounce-hook', `${hook.url}/notices`, '--notify', 'delivered,delayed,recovered', '--delay-warning', '1s', '--min-backoff', '200ms', '--max-backoff', '500ms']);
    try {
      drop(spool, 'fine', { url: `${target.url}/fine`, headers: { authorization: 'Bearer s3cret' }, body: { card: '4111' } });
      drop(spool, 'flaky', { url: `${target.url}/flaky` });
      await daemon.waitEvent('delivered', 'delivered-notice.fine');
      await daemon.waitEvent('delivered', 'flaky', 15_000);
      await daemon.waitEvent('delivered', 'recovered-notice.flaky', 5_000);
      await daemon.waitEvent('delivered', 'delivered-notice.flaky', 5_000);
      const notices = hook.received.map((r) => JSON.parse(r.body) as { type: string; id: string; attempts: number; url: string; latencyMs?: number });
      const of = (id: string) => notices.filter((n) => n.id === id).map((n) => n.type).sort();
      assert.deepEqual(of('fine'), ['spoold.delivered']);
      assert.deepEqual(of('flaky'), ['spoold.delayed', 'spoold.delivered', 'spoold.recovered']);
      assert.deepEqual(notices.filter((n) => !['fine', 'flaky'].includes(n.id)), [], 'no notice about a notice');
      const delivered = notices.find((n) => n.id === 'flaky' && n.type === 'spoold.delivered')!;
      assert.equal(delivered.attempts, 6);
      assert.equal(delivered.url, `${target.url}/flaky`);
      assert.ok(delivered.latencyMs! >= 1000, `latency ${delivered.latencyMs} ms`);
      assert.ok(!hook.received.some((r) => r.body.includes('s3cret') || r.body.includes('4111')), 'no message headers or body in a notice');
      await outboxEmpties(spool);
    } finally {
      await daemon.stop();
      await target.close();
      await hook.close();
    }
  });
});
