/**
 * The status page in a real browser: Debian's chromium, driven by
 * playwright-core (no browser download), against the real daemon.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { chromium, type Browser, type Request } from 'playwright-core';
import { aptInstall, cleanup, drop, startDaemon, startSink, tempDir, tempSpool, type Daemon } from './helpers.js';

afterEach(cleanup);

function chromiumPath(): string {
  const known = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
  if (known) return known;
  // CI installs it (.ci/run); a fresh root machine gets it here, waiting for a busy package manager.
  if (aptInstall(['chromium'])) return '/usr/bin/chromium';
  throw new Error('the status page test needs a Chromium: install Debian\'s "chromium" package');
}

let browser: Browser | null = null;
after(async () => browser?.close());

/** A raw request, so that Host, Origin and the rest can be anything. */
function post(address: string, pathname: string, headers: Record<string, string>, body: string): Promise<number> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: pathname, method: 'POST', headers: { host: address, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function addressOf(daemon: Daemon): Promise<string> {
  return String((await daemon.waitEvent('metrics-listening')).address);
}

describe('status page', () => {
  it('shows numbers change while messages flow; opens a message and its attempts; searches; pages; pauses and resumes; bulk-requeues', async () => {
    let accept = false;
    const sink = await startSink((req, res) => (req.url?.startsWith('/picky') && !accept ? res.writeHead(422).end('field "amount" is required') : res.end('ok')));
    const other = await startSink((_req, res) => res.writeHead(503).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0', '--status-actions', '--keep-delivered', '1h']);
    const address = await addressOf(daemon);
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('dialog', (d) => void d.accept());
    await page.goto(`http://${address}/`);
    const total = (name: string) => page.locator(`[data-total=${name}]`).getAttribute('data-value');
    await page.waitForSelector('[data-total=delivered]');
    assert.equal(await total('delivered'), '0');

    // Numbers change as messages flow.
    for (let i = 0; i < 12; i++) drop(spool, `order-${i}.paid`, { url: `${sink.url}/orders`, headers: { Authorization: 'Bearer top-secret' }, body: { order: i } });
    for (let i = 0; i < 25; i++) drop(spool, `refund-${String(i).padStart(2, '0')}`, { url: `${sink.url}/picky`, body: { refund: i } });
    for (let i = 0; i < 3; i++) drop(spool, `invoice-${i}.sent`, { url: `${other.url}/invoices`, body: { invoice: i } });
    await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-total=delivered]')?.dataset.value === '12', undefined, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('[data-queue=bounced] b')?.textContent === '25', undefined, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('[data-queue=deferred] b')?.textContent === '3', undefined, { timeout: 15_000 });
    assert.equal(await page.locator(`#destinations tr[data-destination="${new URL(other.url).host}"]`).getAttribute('data-health'), 'failing', 'a destination failing every attempt');
    assert.equal(await page.locator(`#destinations tr[data-destination="${new URL(sink.url).host}"]`).getAttribute('data-health'), 'ok', 'a destination that answers, refusing some messages with a 4xx');
    await page.locator('svg[aria-label^="Request time"] circle').first().waitFor({ timeout: 15_000 });
    // The README's screenshots (SPOOLD_SCREENSHOT_DIR=test/e2e), taken here as a user sees the page.
    const shots = process.env.SPOOLD_SCREENSHOT_DIR ?? tempDir('spoold-shot-');
    const shoot = async (name: string) => {
      const file = path.join(shots, name);
      await page.screenshot({ path: file, fullPage: true });
      assert.ok(fs.statSync(file).size > 10_000, `screenshot ${name}`);
    };
    await shoot('status-page.png');

    // Search by id, and read the message: its queue, its attempts, its headers redacted.
    await page.getByLabel('Message id').fill('invoice-1.sent');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-copy=deferred]').waitFor({ timeout: 15_000 });
    const attempts = await page.locator('table.attempts tbody tr').allTextContents();
    assert.ok(attempts.length >= 1 && attempts.every((t) => t.includes('HTTP 503')), `attempts: ${attempts.join(' | ')}`);
    await page.goto(`http://${address}/#/message/order-3.paid`);
    await page.getByText('Attempts of this delivery').waitFor({ timeout: 15_000 });
    assert.match((await page.locator('table.attempts').last().textContent()) ?? '', /HTTP 200/);
    const headers = (await page.locator('[data-copy=delivered] ~ table.headers, table.headers').first().textContent()) ?? '';
    assert.match(headers, /Authorization\s*\[redacted\]/);
    assert.ok(!(await page.content()).includes('top-secret'), 'credentials never shown');
    await page.goto(`http://${address}/#/message/refund-07`);
    await page.locator('[data-copy=bounced]').waitFor({ timeout: 15_000 });
    assert.match((await page.locator('[data-copy=bounced]').textContent()) ?? '', /HTTP 422: field "amount" is required/);
    await shoot('status-message.png');

    // Page through bounced/, newest first, 10 at a time.
    await page.goto(`http://${address}/#/queue/bounced?order=newest&limit=10`);
    const ids = async () => page.locator('#queue-rows tbody tr').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.id!));
    await page.waitForFunction(() => document.querySelectorAll('#queue-rows tbody tr').length === 10, undefined, { timeout: 15_000 });
    const first = await ids();
    await shoot('status-queue.png');
    await page.getByRole('button', { name: 'next →' }).click();
    await page.waitForFunction((before) => document.querySelector<HTMLElement>('#queue-rows tbody tr')?.dataset.id !== before, first[0], { timeout: 15_000 });
    const second = await ids();
    await page.getByRole('button', { name: 'next →' }).click();
    await page.waitForFunction(() => document.querySelectorAll('#queue-rows tbody tr').length === 5, undefined, { timeout: 15_000 });
    const third = await ids();
    assert.equal(new Set([...first, ...second, ...third]).size, 25, 'each bounced message on exactly one page');
    assert.ok(await page.getByRole('button', { name: 'next →' }).isDisabled(), 'the last page');
    await page.getByRole('button', { name: '← previous' }).click();
    await page.waitForFunction((want) => document.querySelector<HTMLElement>('#queue-rows tbody tr')?.dataset.id === want, second[0], { timeout: 15_000 });
    // bounced/ opens newest first: what just bounced is what an operator looks for.
    await page.goto(`http://${address}/#/queue/bounced?limit=10`);
    await page.waitForFunction((want) => document.querySelector<HTMLElement>('#queue-rows tbody tr')?.dataset.id === want, first[0], { timeout: 15_000 });
    assert.deepEqual(await ids(), first);

    // Pause a destination from its row: nothing goes to it; resume: it goes.
    await page.goto(`http://${address}/#/destinations`);
    const row = page.locator(`#destinations tr[data-destination="${new URL(sink.url).host}"]`);
    await row.getByRole('button', { name: 'pause' }).click();
    await page.locator(`#destinations tr[data-destination="${new URL(sink.url).host}"][data-health=paused]`).waitFor({ timeout: 15_000 });
    const before = sink.received.length;
    drop(spool, 'while-paused', { url: `${sink.url}/orders`, body: {} });
    await daemon.waitEvent('put-back', 'while-paused', 15_000);
    assert.equal(sink.received.length, before, 'nothing sent while paused');
    await row.getByRole('button', { name: 'resume' }).click();
    await daemon.waitEvent('delivered', 'while-paused', 15_000);

    // Bulk requeue: every bounced message of that destination, confirmed, delivered.
    accept = true;
    await page.goto(`http://${address}/#/queue/bounced?destination=${encodeURIComponent(new URL(sink.url).host)}&prefix=refund-`);
    await page.waitForFunction(() => document.querySelectorAll('#queue-rows tbody tr').length === 25, undefined, { timeout: 15_000 });
    await page.getByLabel('Action').selectOption('requeue');
    await page.getByRole('button', { name: 'Apply to all matching…' }).click();
    await page.getByText('requeue: 25 done').first().waitFor({ timeout: 15_000 });
    await Promise.all(Array.from({ length: 25 }, (_, i) => daemon.waitEvent('delivered', `refund-${String(i).padStart(2, '0')}`, 15_000)));
    assert.equal(sink.byId('refund-07').length, 2, 'refused once, then delivered');
    await page.goto(`http://${address}/#/`);
    await page.waitForFunction(() => document.querySelector('[data-queue=bounced] b')?.textContent === '0', undefined, { timeout: 15_000 });
    await page.close();
    assert.equal((await daemon.stop()).code, 0);
  });

  it('keeps the view asked for last when an earlier view\'s answer comes in after it', async () => {
    const sink = await startSink((_req, res) => res.writeHead(400).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0']);
    const address = await addressOf(daemon);
    drop(spool, 'refused', { url: `${sink.url}/x` });
    await daemon.waitEvent('bounced', 'refused');
    browser ??= await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    const page = await browser.newPage();
    await page.goto(`http://${address}/#/destinations`);
    await page.locator('#destinations').waitFor({ timeout: 15_000 });
    // Hold the destinations view's next refresh, as a slow answer would, while the operator moves on.
    let release: (() => Promise<void>) | undefined;
    const held = await new Promise<Request>((resolve) => {
      void page.route('**/api/status', (route) => {
        if (release) return route.continue();
        release = () => route.continue();
        resolve(route.request());
      });
    });
    await page.evaluate(() => { location.hash = '#/queue/bounced'; });
    await page.waitForFunction(() => document.querySelectorAll('#queue-rows tbody tr').length === 1, undefined, { timeout: 15_000 });
    // The queue view's own refresh asks /api/status again about 2 s later: by the time that one has
    // answered, the held answer has long been read, and its render has had its chance to paint.
    const later = page.waitForResponse((r) => r.url().endsWith('/api/status') && r.request() !== held, { timeout: 15_000 });
    await release!();
    await (await later).finished();
    assert.equal(await page.locator('#destinations').count(), 0, 'the old view did not come back');
    assert.equal(await page.locator('#queue-rows tbody tr').count(), 1, 'the queue view stayed');
    await page.close();
    assert.equal((await daemon.stop()).code, 0);
  });

  it('refuses actions without the page\'s token, from another origin or site, under another Host, or when off', async () => {
    const sink = await startSink((_req, res) => res.writeHead(400).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0', '--status-actions']);
    const address = await addressOf(daemon);
    drop(spool, 'keep-me', { url: `${sink.url}/x` });
    await daemon.waitEvent('bounced', 'keep-me');
    const html = await (await fetch(`http://${address}/`)).text();
    const token = /name="spoold-token" content="([0-9a-f]+)"/.exec(html)![1]!;
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ id: 'keep-me' });
    assert.equal(await post(address, '/api/delete', json, body), 403, 'no token');
    assert.equal(await post(address, '/api/delete', { ...json, 'x-spoold-token': 'f'.repeat(48) }, body), 403, 'wrong token');
    assert.equal(await post(address, '/api/delete', { ...json, 'x-spoold-token': token, origin: 'http://evil.example' }, body), 403, 'another origin');
    assert.equal(await post(address, '/api/delete', { ...json, 'x-spoold-token': token, 'sec-fetch-site': 'cross-site' }, body), 403, 'another site');
    assert.equal(await post(address, '/api/delete', { 'content-type': 'text/plain', 'x-spoold-token': token }, body), 415, 'a form-like body');
    assert.equal(await post(address, '/api/delete', { ...json, 'x-spoold-token': token, host: 'evil.example' }, body), 421, 'DNS rebinding: another Host');
    assert.ok(fs.readdirSync(path.join(spool, 'bounced')).some((n) => n.endsWith('keep-me.json')), 'nothing was deleted');
    assert.equal(await post(address, '/api/delete', { ...json, 'x-spoold-token': token, origin: `http://${address}` }, body), 200, 'the page itself may');
    assert.ok(!fs.readdirSync(path.join(spool, 'bounced')).some((n) => n.includes('keep-me')), 'deleted, with its reason record');
    assert.equal((await daemon.stop()).code, 0);

    const off = await startDaemon(tempSpool(), ['--metrics', '127.0.0.1:0']);
    const offAddress = await addressOf(off);
    const offToken = /name="spoold-token" content="([0-9a-f]+)"/.exec(await (await fetch(`http://${offAddress}/`)).text())![1]!;
    assert.equal(await post(offAddress, '/api/requeue', { ...json, 'x-spoold-token': offToken }, body), 403, 'actions are off by default');
    assert.equal((await off.stop()).code, 0);
  });
});
