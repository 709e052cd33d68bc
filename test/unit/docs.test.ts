/**
 * The README's generated parts match the code, and the code logs exactly the
 * events of the catalogue, each at its catalogued level.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EVENTS, type EventInfo } from '../../src/service/events.js';
import { SECTIONS, sectionOf } from '../docs/sections.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('documentation', () => {
  it('the README holds the generated contents, options, events and tokens (npm run docs writes them)', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const [name, make] of Object.entries(SECTIONS)) assert.equal(sectionOf(readme, name), make(readme), `README section ${name} is stale: run npm run docs`);
  });

  it('the code logs exactly the catalogued events, each at its level', () => {
    const logged = new Map<string, Set<string>>();
    for (const file of sources(path.join(ROOT, 'src'))) {
      const text = fs.readFileSync(file, 'utf8');
      // A log call and the object it logs begin on one line: log.warn({ event: 'x', …
      for (const m of text.matchAll(/\.(debug|info|warn|error)\(\s*\{\s*event: ([^,]+),/g)) {
        // A literal, or the two arms of a ternary (not what it compares).
        const names = [...m[2]!.matchAll(/(?:^|[?:] )'([a-z-]+)'/g)].map((n) => n[1]!);
        assert.ok(names.length > 0, `${path.relative(ROOT, file)}: an event name that is not a literal: ${m[2]}`);
        for (const name of names) logged.set(name, (logged.get(name) ?? new Set()).add(m[1]!));
      }
      // Calls whose object starts on the next line.
      for (const m of text.matchAll(/\.(debug|info|warn|error)\(\s*\n\s*\{ event: '([a-z-]+)'/g)) logged.set(m[2]!, (logged.get(m[2]!) ?? new Set()).add(m[1]!));
    }
    const catalogue = EVENTS as Record<string, EventInfo>;
    assert.deepEqual([...logged.keys()].sort(), Object.keys(catalogue).sort());
    for (const [name, levels] of logged) assert.deepEqual([...levels], [catalogue[name]!.level], `${name} is logged at ${[...levels].join(', ')}`);
  });
});
