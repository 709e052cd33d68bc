/**
 * spoold: the delivery daemon. Runs in the foreground; systemd (or a
 * terminal) supervises it.
 */
import { Command, CommanderError, Option } from 'commander';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, DEFAULTS, readConfigFile, resolveConfig, SETTINGS, type Config } from '../service/config.js';
import { SpoolError } from '../errors.js';
import { oneLineErrors } from './conventions.js';

function defaultText(key: keyof Config): string {
  const v = DEFAULTS[key];
  if (typeof v === 'string') return v === '' ? 'none' : v;
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.join(',');
  if (key === 'maxSize') return `${v} bytes`;
  if (['concurrency', 'perDestination', 'maxAttempts'].includes(key)) return String(v);
  return v % 86_400_000 === 0 ? `${v / 86_400_000}d` : v % 3_600_000 === 0 ? `${v / 3_600_000}h` : v % 60_000 === 0 ? `${v / 60_000}m` : v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`;
}

function makeProgram(): Command {
  const program = oneLineErrors(new Command('spoold'), 'spoold').description('Delivers HTTP messages dropped into a file spool; never loses one.');

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
    .option('--config <file>', 'JSON file of settings, re-read on SIGHUP (env SPOOLD_CONFIG)')
    .action(async (opts: Partial<Record<keyof Config, string>> & { config?: string }) => {
      const file = opts.config ?? process.env.SPOOLD_CONFIG;
      const { config: _file, ...flags } = opts;
      const load = () => resolveConfig(flags, process.env, file ? { path: file, values: readConfigFile(file) } : null);
      load(); // bad settings stop here, before the spool is touched
      const { runDaemon } = await import('../service/daemon.js');
      process.exitCode = await runDaemon(load);
    });
  for (const s of SETTINGS) {
    // Secrets on a command line are visible to every user (ps): environment or files only.
    if (s.kind === 'secret') continue;
    const help = `${s.help} (default ${defaultText(s.key)}; env ${s.env})`;
    if (s.kind === 'flag') {
      start.addOption(new Option(`--${s.flag}`, help));
      continue;
    }
    const arg = s.kind === 'address' ? 'host:port' : s.kind === 'url' ? 'url' : s.kind === 'command' ? 'command' : s.kind === 'path' ? (s.key === 'spool' ? 'dir' : 'file') : s.kind === 'count' ? 'n' : s.kind === 'size' ? 'bytes' : s.kind === 'choice' ? s.choices!.join('|') : s.kind === 'list' ? 'hosts' : 'duration';
    start.addOption(new Option(`--${s.flag} <${arg}>`, help));
  }

  program
    .command('unit')
    .description('print a systemd unit for this installation and a spool')
    .option('--spool <dir>', 'the spool the service runs on', '/var/spool/spoold')
    .option('--user <user>', 'the user the service runs as', 'spoold')
    .option('--config <file>', 'a config file to pass to spoold start (re-read on reload)')
    .option('--name <name>', 'a name for this instance, in the description and the log identifier', 'spoold')
    .addHelpText(
      'after',
      `
Examples:
  spoold unit --spool /var/spool/spoold > /etc/systemd/system/spoold.service
  spoold unit --spool /var/spool/hooks-b --name spoold-b > /etc/systemd/system/spoold-b.service`,
    )
    .action(async (opts: { spool: string; user: string; config?: string; name: string }) => {
      const { renderUnit } = await import('../service/unit.js');
      const executable = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/spoold');
      process.stdout.write(
        renderUnit({
          node: process.execPath,
          executable,
          spool: path.resolve(opts.spool),
          user: opts.user,
          name: opts.name,
          config: opts.config ? path.resolve(opts.config) : undefined,
          shutdownGrace: DEFAULTS.shutdownGrace,
        }),
      );
    });
  return program;
}

async function main(): Promise<void> {
  // `spoold --help | head`: the reader left; stop quietly. (The daemon's log
  // goes to fd 1 through pino's own writer, not through this stream.)
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    await makeProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof ConfigError || err instanceof RangeError) {
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
