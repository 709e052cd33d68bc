/**
 * spoolctl: see and steer a spool while the daemon runs.
 *
 * Exit codes: 0 success, 1 a named id was not found (or could not be moved),
 * 2 bad usage. Output goes through process.stdout.write and the process ends
 * by itself (never process.exit after a write), so piped JSON is never cut.
 */
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { describe, flush, LIST_ORDER, openSpool, readMessageFile, requeue, walkQueue, type ActionResult, type Listed } from '../control.js';
import { isQueue, QUEUES, SpoolError, type Queue } from '../layout.js';
import { formatRelative } from '../units.js';

class UsageError extends Error {}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

function spoolOption(): Option {
  return new Option('--spool <dir>', 'spool directory (env SPOOL_DIR; default ./spool)');
}

function spoolDir(opts: { spool?: string }): string {
  return opts.spool ?? process.env.SPOOL_DIR ?? './spool';
}

function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function reportAction(verb: string, r: ActionResult, json: boolean): void {
  if (json) out(JSON.stringify(r));
  else {
    out(`${verb}: ${r.done.length}`);
    for (const id of r.missing) process.stderr.write(`spoolctl: ${id}: not found\n`);
    for (const { id, reason } of r.refused) process.stderr.write(`spoolctl: ${id}: not moved: ${reason}\n`);
  }
  if (r.missing.length > 0 || r.refused.length > 0) process.exitCode = 1;
}

function parseQueue(value: string): Queue {
  if (!isQueue(value)) throw new UsageError(`unknown queue ${JSON.stringify(value)}: one of ${QUEUES.join(', ')}`);
  return value;
}

function parseLimit(value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--limit takes a whole number, not ${JSON.stringify(value)}`);
  return Number(value);
}

function makeProgram(): Command {
  const program = new Command('spoolctl')
    .description('See and steer a spoold spool while the daemon runs.')
    .exitOverride()
    .showHelpAfterError()
    .addHelpText('after', '\nExit codes: 0 success, 1 a named id not found or not moved, 2 bad usage.');

  program
    .command('list')
    .description('list messages: id, queue, attempts, next attempt, destination, age, last error')
    .addOption(spoolOption())
    .option('--queue <queue>', `only this queue (${QUEUES.join(', ')})`, parseQueue)
    .option('--limit <n>', 'at most n messages', parseLimit)
    .option('--json', 'a JSON array, for scripts')
    .addHelpText('after', '\nExamples:\n  spoolctl list --queue deferred --limit 20\n  spoolctl list --json | jq \'.[] | select(.queue == "bounced")\'')
    .action((opts: { spool?: string; queue?: Queue; limit?: number; json?: boolean }) => {
      const spool = openSpool(spoolDir(opts));
      const rows: Listed[] = [];
      const limit = opts.limit ?? Infinity;
      outer: for (const queue of opts.queue ? [opts.queue] : LIST_ORDER) {
        for (const m of walkQueue(spool, queue)) {
          if (rows.length >= limit) break outer;
          rows.push(describe(m, readMessageFile(m.path)));
        }
      }
      if (opts.json) return out(JSON.stringify(rows));
      const now = Date.now();
      out(
        table(
          rows.map((r) => [
            r.id,
            r.queue,
            String(r.attempts),
            r.nextAttemptAt === null ? '-' : r.nextAttemptAt <= now ? 'due' : formatRelative(r.nextAttemptAt - now),
            r.url ? safeOrigin(r.url) : '-',
            r.arrivedAt === null ? '-' : formatRelative(r.arrivedAt - now).replace(' ago', ''),
            r.lastError ?? '-',
          ]),
          ['ID', 'QUEUE', 'ATTEMPTS', 'NEXT', 'DESTINATION', 'AGE', 'LAST ERROR'],
        ),
      );
    });

  program
    .command('flush')
    .description('make deferred messages due now (all, or the named ids); attempts are kept')
    .argument('[ids...]', 'message ids (default: every deferred message)')
    .addOption(spoolOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl flush\n  spoolctl flush 0m3k2j1a0-9f2c4e1d7b6a5c3e')
    .action((ids: string[], opts: { spool?: string; json?: boolean }) => {
      const spool = openSpool(spoolDir(opts));
      reportAction('flushed', flush(spool, ids.length > 0 ? ids : undefined), Boolean(opts.json));
    });

  program
    .command('requeue')
    .description('put messages back for a fresh delivery, attempts reset (from bounced, deferred or hold)')
    .argument('[ids...]', 'message ids')
    .addOption(spoolOption())
    .option('--all', 'every message of the queues given by --queue')
    .option('--queue <queue>', 'with --all: bounced or deferred (default: both)', parseQueue)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl requeue 0m3k2j1a0-9f2c4e1d7b6a5c3e\n  spoolctl requeue --all --queue bounced')
    .action((ids: string[], opts: { spool?: string; all?: boolean; queue?: Queue; json?: boolean }) => {
      if (opts.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (!opts.all && ids.length === 0) throw new UsageError('give at least one id, or --all');
      if (opts.queue && !opts.all) throw new UsageError('--queue goes with --all');
      if (opts.queue && !['bounced', 'deferred', 'hold'].includes(opts.queue)) throw new UsageError('requeue --queue takes bounced, deferred or hold');
      const spool = openSpool(spoolDir(opts));
      reportAction('requeued', requeue(spool, opts.all ? 'all' : ids, opts.queue ? [opts.queue] : ['bounced', 'deferred']), Boolean(opts.json));
    });

  program
    .command('enqueue')
    .description('produce a message atomically and print its id')
    .argument('[file]', "a JSON message file, or '-' for standard input")
    .addOption(spoolOption())
    .option('--id <id>', 'the message id (default: a new unique id)')
    .option('--url <url>', 'build the message from options instead of JSON: destination URL')
    .option('--method <method>', 'with --url: HTTP method (default POST)')
    .option('--header <header>', "with --url: 'Name: value', repeatable", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--data <data>', 'with --url: the body, sent as it is')
    .addHelpText('after', '\nExamples:\n  spoolctl enqueue message.json\n  echo \'{"url":"https://example.com/hook","body":{"a":1}}\' | spoolctl enqueue -\n  spoolctl enqueue --url https://example.com/hook --header "Content-Type: text/plain" --data hello')
    .action(async (file: string | undefined, opts: { spool?: string; id?: string; url?: string; method?: string; header: string[]; data?: string }) => {
      let message: Record<string, unknown>;
      if (opts.url !== undefined) {
        if (file !== undefined) throw new UsageError('give a file or --url, not both');
        const headers: Record<string, string> = {};
        for (const h of opts.header) {
          const i = h.indexOf(':');
          if (i <= 0) throw new UsageError(`--header ${JSON.stringify(h)}: expected 'Name: value'`);
          headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
        }
        message = { url: opts.url, ...(opts.method && { method: opts.method }), ...(opts.header.length > 0 && { headers }), ...(opts.data !== undefined && { body: opts.data }) };
      } else {
        if (opts.method || opts.header.length > 0 || opts.data !== undefined) throw new UsageError('--method, --header and --data go with --url');
        const text = fs.readFileSync(file === undefined || file === '-' ? 0 : file, 'utf8');
        try {
          message = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new UsageError(`${file ?? 'standard input'} is not valid JSON`);
        }
      }
      const { enqueue, EnqueueError } = await import('../enqueue.js');
      try {
        out(await enqueue(message as never, { spool: spoolDir(opts), ...(opts.id && { id: opts.id }) }));
      } catch (err) {
        if (err instanceof EnqueueError) throw new UsageError(err.message);
        throw err;
      }
    });

  return program;
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '-';
  }
}

async function main(): Promise<void> {
  try {
    await makeProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else if (err instanceof UsageError) {
      process.stderr.write(`spoolctl: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof SpoolError) {
      process.stderr.write(`spoolctl: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`spoolctl: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  }
}

await main();
