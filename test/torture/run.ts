/**
 * The torture suite: `npm run torture` (or `-- --smoke` for a short run).
 * Each scenario is bounded in time and count, talks to 127.0.0.1 only, prints
 * one line of figures; a summary table ends the run, and the exit code says
 * whether every scenario held.
 */
import os from 'node:os';
import { replaceReadmeSection } from '../bench/readme.js';
import { cleanup } from '../e2e/helpers.js';
import type { Outcome } from './common.js';
import { crashLoop } from './crash-loop.js';
import { endpointFaults } from './faults.js';
import { hostileInput } from './hostile.js';
import { manyOrigins } from './origins.js';
import { powerCuts } from './powercut.js';
import { osLimits } from './limits.js';
import { orderingUnderKills } from './ordering.js';
import { operatorRaces } from './races.js';
import { schedulesUnderKills } from './schedule.js';
import { sharedUnderKills } from './shared.js';

const smoke = process.argv.includes('--smoke');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);

/** Scenario 7, once on the disk and once on tmpfs: the file systems --shared is kept for. */
const shared = smoke ? { messages: 1000, kills: 4, failShare: 0.3 } : { messages: 10_000, kills: 30, failShare: 0.3 };

const scenarios: [string, () => Promise<Outcome>][] = [
  ['crash', () => crashLoop(smoke ? { messages: 2000, kills: 5, failShare: 0.3 } : { messages: 20_000, kills: 50, failShare: 0.3 })],
  ['faults', () => endpointFaults()],
  ['hostile', () => hostileInput({ valid: smoke ? 200 : 2000 })],
  ['limits', () => osLimits({ fdMessages: smoke ? 300 : 3000 })],
  ['races', () => operatorRaces(smoke ? { messages: 300, seconds: 5 } : { messages: 3000, seconds: 30 })],
  ['ordering', () => orderingUnderKills(smoke ? { keys: 20, perKey: 15, kills: 4, failShare: 0.3 } : { keys: 40, perKey: 60, kills: 15, failShare: 0.3 })],
  ['shared', () => sharedUnderKills(shared)],
  ['shared-tmpfs', () => sharedUnderKills({ ...shared, base: '/dev/shm' })],
  ['origins', () => manyOrigins(smoke ? { origins: 1000, perOrigin: 2 } : { origins: 5000, perOrigin: 2 })],
  ['powercut', () => powerCuts(smoke ? { cuts: 5 } : { cuts: 25 })],
  ['schedule', () => schedulesUnderKills(smoke ? { scheduled: 300, paused: 100, kept: 100, kills: 6, failShare: 0.2 } : { scheduled: 3000, paused: 1000, kept: 1000, kills: 20, failShare: 0.2 })],
];

const results: Outcome[] = [];
for (const [key, run] of scenarios) {
  if (only && !only.split(',').includes(key)) continue;
  const t0 = Date.now();
  let outcome: Outcome;
  try {
    outcome = await run();
  } catch (err) {
    outcome = { scenario: key, pass: false, figures: `failed to run: ${(err as Error).stack ?? String(err)}` };
  }
  await cleanup();
  results.push(outcome);
  console.log(`${outcome.pass ? 'PASS' : 'FAIL'} ${outcome.scenario} (${((Date.now() - t0) / 1000).toFixed(0)} s): ${outcome.figures}`);
}

const cpus = os.cpus();
const table = [
  `Run ${new Date().toISOString().slice(0, 10)} on ${cpus.length} × ${cpus[0]?.model.trim()}, Node ${process.version}${smoke ? ' (smoke: small counts)' : ''}.`,
  '',
  '| scenario | result | figures |',
  '|---|---|---|',
  ...results.map((r) => `| ${r.scenario} | ${r.pass ? 'pass' : '**FAIL**'} | ${r.figures.replace(/\|/g, '\\|').replace(/\n/g, '<br>').replace(/ — /g, '<br>')} |`),
].join('\n');
console.log(`\n${table}`);
const failed = results.filter((r) => !r.pass).length;
console.log(`\n${results.length - failed} passed, ${failed} failed`);
if (process.argv.includes('--write-readme') && !only && !smoke && failed === 0) replaceReadmeSection('torture', table);
process.exitCode = failed > 0 ? 1 : 0;
