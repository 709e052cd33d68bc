/**
 * What both command lines share: a mistake in the options is one line naming
 * it and where to read more, and exit code 2 (set by the caller from
 * commander's error); never the whole help.
 */
import type { Command } from 'commander';

export function oneLineErrors(program: Command, name: string): Command {
  return program.exitOverride().configureOutput({
    outputError: (text, write) => {
      const first = text.trim().split('\n')[0]!.replace(/^error: /, '');
      write(`${name}: ${first} (see ${name} --help)\n`);
    },
  });
}
