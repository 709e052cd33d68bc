/**
 * The status page in a real browser: Debian's chromium, driven by
 * playwright-core (no browser download), against the real daemon.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
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
  it('shows the numbers change while messages flow, and a requeue from the page delivers a bounced message', async () => {
    let accept = false;
    const sink = await startSink((req, res) => (req.url === '/picky' && !accept ? res.writeHead(422).end('field "amount" is required') : req.url === '/down' ? res.writeHead(503).end() : res.end('ok')));
    const other = await startSink((_req, res) => res.writeHead(503).end());
    const spool = tempSpool();
    const daemon = await startDaemon(spool, ['--metrics', '127.0.0.1:0', '--status-actions']);
    const address = await addressOf(daemon);
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(`http://${address}/`);
    const total = (name: string) => page.locator(`[data-total=${name}]`).getAttribute('data-value');
    await page.waitForSelector('[data-total=delivered]');
    assert.equal(await total('delivered'), '0');

    for (let i = 0; i < 12; i++) drop(spool, `order-${i}.paid`, { url: `${sink.url}/orders`, body: { order: i } });
    drop(spool, 'order-99.refund', { url: `${sink.url}/picky`, body: { order: 99 } });
    for (let i = 0; i < 3; i++) drop(spool, `invoice-${i}.sent`, { url: `${other.url}/invoices`, body: { invoice: i } });
    await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-total=delivered]')?.dataset.value === '12', undefined, { timeout: 15_000 });
    const row = page.locator('#bounced tr[data-id="order-99.refund"]');
    await row.waitFor({ timeout: 15_000 });
    assert.match((await row.textContent()) ?? '', /HTTP 422/);
    await page.waitForFunction(() => document.querySelector('[data-queue=bounced] b')?.textContent === '1', undefined, { timeout: 15_000 });
    assert.match((await page.locator(`#destinations tr[data-destination="${new URL(sink.url).host}"]`).textContent()) ?? '', /ok/);
    await page.waitForFunction(() => document.querySelectorAll('#deferred tr').length === 3, undefined, { timeout: 15_000 });
    assert.match((await page.locator(`#destinations tr[data-destination="${new URL(other.url).host}"]`).textContent()) ?? '', /dead|failing/, 'a destination failing every attempt');

    const shot = path.join(process.env.SPOOLD_SCREENSHOT_DIR ?? tempDir('spoold-shot-'), 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10_000, 'a screenshot was taken');

    accept = true;
    await row.locator('button', { hasText: 'requeue' }).click();
    await daemon.waitEvent('delivered', 'order-99.refund', 15_000);
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-total=delivered]')?.dataset.value === '13', undefined, { timeout: 15_000 });
    assert.equal(sink.byId('order-99.refund').length, 2);
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
