/**
 * What both command lines share: a mistake in the options is one line naming
 * it and where to read more, and exit code 2 (set by the caller from
 * commander's error); never the whole help.
 */
import type { Command } from 'commander';

let piped = false;

/**
 * Standard output for what a command prints, made on first use. Never touched
 * by `spoold start`: making process.stdout sets fd 1 non-blocking (libuv),
 * and the daemon's log writer would then meet EAGAIN (see service/log.ts).
 * `spoold --help | head`, `spoolctl list | head`: the reader left; stop quietly.
 */
export function stdout(): NodeJS.WriteStream {
  if (!piped) {
    piped = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  return process.stdout;
}

export function oneLineErrors(program: Command, name: string): Command {
  return program.exitOverride().configureOutput({
    writeOut: (text) => stdout().write(text),
    outputError: (text, write) => {
      const first = text.trim().split('\n')[0]!.replace(/^error: /, '');
      write(`${name}: ${first} (see ${name} --help)\n`);
    },
  });
}
