/** npm run docs: writes the README's generated sections (options, events). */
import fs from 'node:fs';
import { README, replaceReadmeSection } from '../bench/readme.js';
import { SECTIONS } from './sections.js';

for (const [name, make] of Object.entries(SECTIONS)) replaceReadmeSection(name, make(fs.readFileSync(README, 'utf8')));
