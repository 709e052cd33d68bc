/** Replaces the text between <!-- NAME:start --> and <!-- NAME:end --> in the README. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md');

export function replaceReadmeSection(name: string, text: string): void {
  const readme = README;
  const content = fs.readFileSync(readme, 'utf8');
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  const i = content.indexOf(start);
  const j = content.indexOf(end);
  if (i < 0 || j < 0) throw new Error(`README has no ${name} markers`);
  fs.writeFileSync(readme, `${content.slice(0, i + start.length)}\n${text}\n${content.slice(j)}`);
  console.error('README updated');
}
