/** Fitting the concurrency to the open-files limit (src/service/descriptors.ts). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveConfig } from '../../src/service/config.js';
import { fitConcurrency, openDescriptors, openFilesLimit, requestRoom, RESERVE } from '../../src/service/descriptors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-fd-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            64                   524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('descriptors', () => {
  it('reads the soft open-files limit, and Infinity when it is unlimited or unreadable', () => {
    const file = path.join(dir, 'limits');
    fs.writeFileSync(file, LIMITS);
    assert.equal(openFilesLimit(file), 64);
    fs.writeFileSync(file, LIMITS.replace('64                   524288', 'unlimited            unlimited'));
    assert.equal(openFilesLimit(file), Infinity);
    assert.equal(openFilesLimit(path.join(dir, 'missing')), Infinity);
    if (process.platform === 'linux') assert.ok(Number.isFinite(openFilesLimit()) && openFilesLimit() > 0, 'this process has a limit');
  });

  it('counts the descriptors open now, without the one that reads them', () => {
    if (process.platform !== 'linux') return assert.equal(openDescriptors(path.join(dir, 'missing')), 0);
    const file = path.join(dir, 'opened');
    fs.writeFileSync(file, '');
    const before = openDescriptors();
    const fd = fs.openSync(file, 'r');
    try {
      assert.equal(openDescriptors(), before + 1);
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(openDescriptors(), before);
  });

  it('leaves a reserve, and at least one request', () => {
    assert.equal(requestRoom(64, 22), 64 - 22 - RESERVE);
    assert.equal(requestRoom(20, 22), 1);
    assert.equal(requestRoom(Infinity, 22), Infinity);
  });

  it('caps every concurrency at the room and says which it lowered', () => {
    const config = resolveConfig({ concurrency: '64', 'per-destination': '32' }, {});
    config.destinationSettings = [{ match: ['a.example'], concurrency: 100 }, { match: ['b.example'], concurrency: 4 }];
    const { config: fitted, lowered } = fitConcurrency(config, 30);
    assert.deepEqual(lowered, ['concurrency', 'destinations.concurrency']);
    assert.equal(fitted.concurrency, 30);
    assert.equal(fitted.perDestination, 30);
    assert.deepEqual(fitted.destinationSettings.map((d) => d.concurrency), [30, 4]);
    assert.equal(config.concurrency, 64, 'the settings given are left as they are');
    const roomy = fitConcurrency(config, Infinity);
    assert.equal(roomy.config, config);
    assert.deepEqual(roomy.lowered, []);
  });
});
