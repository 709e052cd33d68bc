/**
 * spoold: the delivery daemon. Runs in the foreground; systemd (or a
 * terminal) supervises it.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, DEFAULTS, SETTINGS, resolveConfig, type Config } from '../config.js';
import { SpoolError } from '../layout.js';

function defaultText(key: keyof Config): string {
  const v = DEFAULTS[key];
  if (typeof v === 'string') return v;
  if (key === 'maxSize') return `${v} bytes`;
  if (['concurrency', 'perDestination', 'maxAttempts'].includes(key)) return String(v);
  return v % 86_400_000 === 0 ? `${v / 86_400_000}d` : v % 3_600_000 === 0 ? `${v / 3_600_000}h` : v % 60_000 === 0 ? `${v / 60_000}m` : v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`;
}

function makeProgram(): Command {
  const program = new Command('spoold')
    .description('Delivers HTTP messages dropped into a file spool; never loses one.')
    .exitOverride()
    .showHelpAfterError();

  const start = program
    .command('start')
    .description('run the delivery daemon in the foreground on a spool')
    .addHelpText(
      'after',
      `
Every option can also be set by its environment variable (the option wins).
Durations: milliseconds or 250ms, 30s, 5m, 1h, 2d.

Examples:
  spoold start --spool /var/spool/spoold
  SPOOL_DIR=./spool spoold start --concurrency 128 --max-age 2d`,
    )
    .action(async (opts: Partial<Record<keyof Config, string>>) => {
      const config = resolveConfig(opts);
      const { runDaemon } = await import('../daemon.js');
      process.exitCode = await runDaemon(config);
    });
  for (const s of SETTINGS) {
    const arg = s.kind === 'path' ? 'dir' : s.kind === 'count' ? 'n' : s.kind === 'size' ? 'bytes' : 'duration';
    start.addOption(new Option(`--${s.flag} <${arg}>`, `${s.help} (default ${defaultText(s.key)}; env ${s.env})`));
  }
  return program;
}

async function main(): Promise<void> {
  try {
    await makeProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`spoold: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof SpoolError) {
      process.stderr.write(`spoold: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`spoold: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

await main();
