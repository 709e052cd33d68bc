/**
 * spoold: the delivery daemon. Runs in the foreground; systemd (or a
 * terminal) supervises it.
 *
 * Exit codes: 0 stopped cleanly, 1 the spool could not be used (locked,
 * unwritable, not a folder), 2 bad usage or a bad configuration (the unit's
 * RestartPreventExitStatus=2: a restart would fail the same way).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { errnoOf, SpoolError } from '../errors.js';
import { ConfigError, defaultText, readConfigFile, resolveConfig, SETTINGS, type Config } from '../service/config.js';
import { VERSION } from '../version.js';
import { oneLineErrors, stdout } from './conventions.js';

type Flags = Partial<Record<keyof Config, string>> & { config?: string };

/** The settings as options of a command (start, check-config): the same names, bounds and help. */
function withSettings(cmd: Command): Command {
  cmd.option('--config <file>', 'JSON file of settings, re-read on SIGHUP (env SPOOLD_CONFIG)');
  for (const s of SETTINGS) {
    // Secrets on a command line are visible to every user (ps): environment, files or credentials only.
    if (s.kind === 'secret') continue;
    const help = `${s.help} (default ${defaultText(s)}; env ${s.env})`;
    if (s.kind === 'flag') {
      cmd.addOption(new Option(`--${s.flag}`, help));
      continue;
    }
    const arg = s.kind === 'address' ? 'host:port' : s.kind === 'url' ? 'url' : s.kind === 'command' ? 'command' : s.kind === 'path' ? (s.key === 'spool' ? 'dir' : 'file') : s.kind === 'count' ? 'n' : s.kind === 'size' ? 'bytes' : s.kind === 'choice' ? s.choices!.join('|') : s.kind === 'list' ? 'hosts' : 'duration';
    cmd.addOption(new Option(`--${s.flag} <${arg}>`, help));
  }
  return cmd;
}

function loader(opts: Flags): () => Config {
  const file = opts.config ?? process.env.SPOOLD_CONFIG;
  const { config: _file, ...flags } = opts;
  return () => resolveConfig(flags, process.env, file ? { path: file, values: readConfigFile(file) } : null);
}

/** systemd's version here, or 0 when there is none. */
function systemdVersion(): number {
  try {
    return Number(/systemd (\d+)/.exec(execFileSync('systemctl', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The primary group of a user (Debian's nobody is in nogroup, not nobody). */
function primaryGroup(user: string): string | null {
  try {
    return execFileSync('id', ['-gn', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

function makeProgram(): Command {
  const program = oneLineErrors(new Command('spoold'), 'spoold')
    .description('Delivers HTTP messages dropped into a file spool; never loses one.')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .addHelpText('after', '\nExit codes: 0 stopped cleanly, 1 the spool could not be used, 2 bad usage or configuration.');

  withSettings(program.command('start').description('run the delivery daemon in the foreground on a spool'))
    .addHelpText(
      'after',
      `
Every option can also be set by its environment variable (the option wins).
Durations: milliseconds or 250ms, 30s, 5m, 1h, 2d.

Examples:
  spoold start --spool /var/spool/spoold
  SPOOL_DIR=./spool spoold start --concurrency 128 --max-age 2d`,
    )
    .action(async (opts: Flags) => {
      const load = loader(opts);
      load(); // bad settings stop here, before the spool is touched
      const { runDaemon } = await import('../service/daemon.js');
      process.exitCode = await runDaemon(load);
    });

  withSettings(program.command('check-config').description('check the settings as `start` would read them (options, environment, config file, secrets); exit 2 if they are bad'))
    .option('--json', 'print the settings in force as JSON (secrets hidden)')
    .addHelpText('after', '\nRun by the systemd unit before a start and before a reload, so that a rejected\nconfiguration fails `systemctl start` or `systemctl reload` instead of being\nlogged only.\n\nExample:\n  spoold check-config --config /etc/spoold/spoold.json')
    .action(async (opts: Flags & { json?: boolean }) => {
      const { json, ...flags } = opts;
      const config = loader(flags)();
      if (json) {
        const { publicSettings } = await import('../service/config.js');
        stdout().write(JSON.stringify(publicSettings(config), null, 2) + '\n');
      } else stdout().write('configuration ok\n');
    });

  program
    .command('unit')
    .description('print a systemd unit for this installation and a spool')
    .option('--spool <dir>', 'the spool the service runs on', '/var/spool/spoold')
    .option('--user <user>', 'the user the service runs as', 'spoold')
    .option('--group <group>', "the group it runs as (default: the user's primary group)")
    .option('--config <file>', 'a config file to pass to spoold start (re-read on reload; its shutdown-grace sets TimeoutStopSec)')
    .option('--signing-secret-file <file>', 'signing secrets handed to the service by systemd (LoadCredential=), never on its command line')
    .option('--name <name>', 'a name for this instance, in the description and the log identifier', 'spoold')
    .addOption(new Option('--type <type>', 'the unit type (default: notify-reload on systemd 253 and later, else notify; exec without the notify binding)').choices(['notify-reload', 'notify', 'exec']))
    .addHelpText(
      'after',
      `
Examples:
  spoold unit --spool /var/spool/spoold > /etc/systemd/system/spoold.service
  spoold unit --spool /var/spool/hooks-b --name spoold-b --config /etc/spoold/b.json > /etc/systemd/system/spoold-b.service`,
    )
    .action(async (opts: { spool: string; user: string; group?: string; config?: string; signingSecretFile?: string; name: string; type?: 'notify-reload' | 'notify' | 'exec' }) => {
      const { renderUnit, unitTypeFor, unitWarnings } = await import('../service/unit.js');
      const { loadUnixDgram } = await import('../service/notify.js');
      const executable = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/spoold');
      const config = opts.config ? path.resolve(opts.config) : undefined;
      // The daemon's grace period, as its config file sets it: TimeoutStopSec must be longer.
      const grace = resolveConfig({}, {}, config ? { path: config, values: readConfigFile(config) } : null).shutdownGrace;
      let group = opts.group ?? primaryGroup(opts.user);
      if (!group) {
        process.stderr.write(`spoold: warning: user ${opts.user} does not exist (yet): Group=${opts.user} assumed; create the user first, or give --group\n`);
        group = opts.user;
      }
      const unit = {
        node: process.execPath,
        executable,
        spool: path.resolve(opts.spool),
        user: opts.user,
        group,
        name: opts.name,
        type: opts.type ?? unitTypeFor(systemdVersion() || 252, loadUnixDgram() !== null),
        config,
        signingSecretFile: opts.signingSecretFile ? path.resolve(opts.signingSecretFile) : undefined,
        shutdownGrace: grace,
      };
      for (const w of unitWarnings(unit)) process.stderr.write(`spoold: warning: ${w}\n`);
      stdout().write(renderUnit(unit));
    });
  return program;
}

async function main(): Promise<void> {
  try {
    await makeProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else if (err instanceof ConfigError || err instanceof RangeError) {
      process.stderr.write(`spoold: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof SpoolError) {
      process.stderr.write(`spoold: ${err.message}\n`);
      // Settings that cannot work here: a restart would fail the same way (the unit's RestartPreventExitStatus=2).
      process.exitCode = err.code === 'SPOOL_ERR_CONFIG' || err.code === 'SPOOL_ERR_UNSUPPORTED' ? 2 : 1;
    } else {
      // Whatever else the file system says: one line, never a stack trace.
      const code = errnoOf(err);
      process.stderr.write(`spoold: ${(err as Error).message ?? String(err)}${code && !(err as Error).message?.includes(code) ? ` (${code})` : ''}\n`);
      process.exitCode = 1;
    }
  }
}

await main();
