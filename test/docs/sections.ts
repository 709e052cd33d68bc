/**
 * The parts of the README that code defines, generated from it so they
 * cannot drift: the options of `spoold start` (from config.ts's SETTINGS),
 * the log events (from events.ts's catalogue) and the last-error tokens
 * (from names.ts). `npm run docs` writes them; test/unit/docs.test.ts fails
 * when the README holds anything else.
 */
import { defaultText, RELOADABLE, SETTINGS } from '../../src/service/config.js';
import { EVENTS, type EventInfo } from '../../src/service/events.js';
import { TOKEN_MEANINGS } from '../../src/spool/names.js';

const ARG: Record<string, string> = { count: 'N', duration: 'D', size: 'BYTES', choice: 'X', list: 'LIST', url: 'URL', command: 'CMD', address: 'HOST:PORT' };

export function optionsTable(): string {
  const rows = SETTINGS.map((s) => {
    const arg = s.kind === 'path' ? (s.key === 'spool' ? ' DIR' : ' FILE') : s.kind === 'flag' || s.kind === 'secret' ? '' : ` ${ARG[s.kind]}`;
    const option = s.kind === 'secret' ? `\`"${s.flag}"\` (config file or environment only)` : `\`--${s.flag}${arg}\``;
    const choices = s.choices ? ` (\`${s.choices.join('`, `')}\`)` : '';
    const reload = RELOADABLE.includes(s.key) ? 'yes' : 'restart';
    return `| ${option} | \`${s.env}\` | ${defaultText(s)} | ${reload} | ${s.help.replaceAll('|', '\\|')}${choices} |`;
  });
  return [
    '| option | environment | default | on SIGHUP | meaning |',
    '|---|---|---|---|---|',
    ...rows,
    '| `--config FILE` | `SPOOLD_CONFIG` | none | re-read | JSON file of the settings above (the option names without `--`, plus `"destinations"`) |',
  ].join('\n');
}

export function eventsList(): string {
  const groups = new Map<EventInfo['group'], string[]>();
  for (const [name, info] of Object.entries(EVENTS) as [string, EventInfo][]) {
    const lines = groups.get(info.group) ?? [];
    lines.push(`| \`${name}\` | ${info.level} | ${info.meaning} |`);
    groups.set(info.group, lines);
  }
  const out: string[] = ['| event | level | meaning |', '|---|---|---|'];
  for (const [group, lines] of groups) out.push(`| **${group}** | | |`, ...lines);
  return out.join('\n');
}

export function tokensList(): string {
  return ['| token | meaning |', '|---|---|', ...Object.entries(TOKEN_MEANINGS).map(([token, meaning]) => `| \`${token}\` | ${meaning} |`)].join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');
}

/** The contents: every ## and ### heading after the contents' own place. */
export function contents(readme: string): string {
  const from = readme.indexOf('<!-- contents:end -->');
  const lines: string[] = [];
  let fenced = false;
  for (const line of readme.slice(from < 0 ? 0 : from).split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^(##|###) (.+)$/.exec(line);
    if (m) lines.push(`${m[1] === '##' ? '' : '  '}- [${m[2]}](#${anchor(m[2]!)})`);
  }
  return lines.join('\n');
}

export const SECTIONS: Record<string, (readme: string) => string> = { contents, options: optionsTable, events: eventsList, tokens: tokensList };

/** The text between <!-- NAME:start --> and <!-- NAME:end -->, or null without the markers. */
export function sectionOf(readme: string, name: string): string | null {
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  return i < 0 || j < 0 ? null : readme.slice(i + start.length, j).trim();
}
