/**
 * spoolctl: see and steer a spool while the daemon runs.
 *
 * Exit codes: 0 success, 1 a named id was not found (or could not be moved),
 * 2 bad usage. Output goes through process.stdout.write and the process ends
 * by itself (never process.exit after a write), so piped JSON is never cut.
 */
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import {
  describe,
  Destinations,
  flush,
  history,
  hold,
  LIST_ORDER,
  locate,
  openSpool,
  readMessageFile,
  readReason,
  redactHeaders,
  release,
  remove,
  replay,
  requeue,
  selectForReplay,
  reportWalks,
  stats,
  walkDeliveries,
  walkQueue,
  type ActionResult,
  type Located,
} from '../operate/control.js';
import { SpoolError } from '../errors.js';
import { pause, resume } from '../spool/pauses.js';
import { oneLineErrors, stdout } from './conventions.js';
import { isQueue, QUEUES, type Queue } from '../spool/layout.js';
import { progress, type Progress } from '../operate/progress.js';
import { formatRelative, parseDuration } from '../units.js';
import { VERSION } from '../version.js';

class UsageError extends Error {}
const USAGE_CODES = new Set(['SPOOL_ERR_BAD_MESSAGE', 'SPOOL_ERR_BAD_ID', 'SPOOL_ERR_NOT_A_SPOOL', 'SPOOL_ERR_CONFIG', 'SPOOL_ERR_BAD_PATTERN']);
class NotFoundError extends Error {
  constructor(id: string, detail = '') {
    super(`${id}: not found${detail}`);
  }
}

/**
 * Asked after the fact, a message no longer in the spool was most often
 * delivered, and by default nothing of it is kept but the daemon's log lines
 * (received, deferred, delivered: each with the id), so the error says where.
 */
const goneFromSpool = (id: string) => ` in the spool (a delivered message is kept only with --keep-delivered); the daemon's log has what became of it (under systemd: journalctl -u spoold -o cat --grep=${id})`;

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

/** `list` also shows delivered/, which is no queue: nothing acts on it as one. */
function parseListedQueue(value: string): Queue | 'delivered' {
  if (value !== 'delivered' && !isQueue(value)) throw new UsageError(`unknown queue ${JSON.stringify(value)}: one of ${QUEUES.join(', ')}, delivered`);
  return value;
}

function parseLimit(value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--limit takes a whole number, not ${JSON.stringify(value)}`);
  return Number(value);
}

/** `list --queue delivered`: the kept deliveries, newest hour first. */
function listDelivered(spool: ReturnType<typeof openSpool>, limit: number, json: boolean): void {
  const now = Date.now();
  const rows: string[][] = [];
  let shown = 0;
  if (json) process.stdout.write('[');
  for (const d of walkDeliveries(spool)) {
    if (shown >= limit) break;
    if (json) process.stdout.write((shown === 0 ? '' : ',\n') + JSON.stringify(d));
    else {
      let host = '-';
      try {
        if (d.url) host = new URL(d.url).host;
      } catch {
        /* shown as "-" */
      }
      rows.push([d.id, d.queue, String(d.attempts), host, d.deliveredAt === null ? '-' : formatRelative(d.deliveredAt - now), d.status === null ? '-' : `HTTP ${d.status}`]);
    }
    shown++;
  }
  if (json) process.stdout.write(']\n');
  else if (shown === 0) out('no messages');
  else out(table(rows, ['ID', 'QUEUE', 'ATTEMPTS', 'DESTINATION', 'DELIVERED', 'STATUS']));
}

/** A point in time: ISO 8601, epoch ms, or a duration meaning that long ago ("2h"). */
function parseWhen(value: string): number {
  if (/^\d{12,}$/.test(value)) return Number(value);
  if (/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(value)) return Date.now() - parseDuration(value);
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`${JSON.stringify(value)} is not a time: ISO 8601 (2026-12-02T09:00:00Z), epoch ms, or a duration ago (2h)`);
  return t;
}

function makeProgram(): Command {
  const program = oneLineErrors(new Command('spoolctl'), 'spoolctl')
    .description('See and steer a spoold spool while the daemon runs.')
    .version(VERSION, '-V, --version', 'print the version and exit')

    .addHelpText('after', '\nExit codes: 0 success, 1 a named id not found or not moved, 2 bad usage.');

  program
    .command('list')
    .description('list messages: id, queue, attempts, next attempt, destination, age, last error')
    .addOption(spoolOption())
    .option('--queue <queue>', `only this queue (${QUEUES.join(', ')}; or delivered, the messages kept by --keep-delivered)`, parseListedQueue)
    .option('--limit <n>', 'at most n messages', parseLimit)
    .option('--json', 'a JSON array of { id, queue, attempts, nextAttemptAt, url, lastError, arrivedAt, scheduled }')
    .addHelpText('after', '\nRows come queue by queue (active, incoming, deferred by next attempt, hold, bounced)\nand print as they are found, so the first page of a large queue shows at once.\n\nExamples:\n  spoolctl list --queue deferred --limit 20\n  spoolctl list --json | jq \'.[] | select(.queue == "bounced") | .id\'')
    .action((opts: { spool?: string; queue?: Queue | 'delivered'; limit?: number; json?: boolean }) => {
      const spool = openSpool(spoolDir(opts));
      const limit = opts.limit ?? Infinity;
      if (opts.queue === 'delivered') return listDelivered(spool, limit, opts.json === true);
      const now = Date.now();
      const destinations = new Destinations();
      const page: string[][] = [];
      let widths: number[] | null = null;
      let shown = 0;
      let first = true;
      const header = ['ID', 'QUEUE', 'ATTEMPTS', 'NEXT', 'DESTINATION', 'AGE', 'LAST ERROR'];
      const flushPage = () => {
        if (opts.json || page.length === 0) return;
        widths ??= header.map((h, i) => Math.max(h.length, ...page.map((r) => r[i]!.length)));
        out(page.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths![i]!))).join('  ')).join('\n'));
        page.length = 0;
      };
      if (opts.json) process.stdout.write('[');
      else page.push(header);
      const queues: readonly Queue[] = opts.queue ? [opts.queue] : LIST_ORDER;
      outer: for (const queue of queues) {
        for (const m of walkQueue(spool, queue)) {
          if (shown >= limit) break outer;
          shown++;
          if (opts.json) {
            process.stdout.write((first ? '' : ',\n') + JSON.stringify(describe(m, readMessageFile(m.path))));
            first = false;
            continue;
          }
          const r = describe(m, null);
          page.push([
            r.id,
            r.queue,
            String(r.attempts),
            r.nextAttemptAt === null ? '-' : r.nextAttemptAt <= now ? 'due' : formatRelative(r.nextAttemptAt - now),
            destinations.of(m),
            r.arrivedAt === null || r.arrivedAt > now ? '-' : formatRelative(r.arrivedAt - now).replace(' ago', ''),
            r.scheduled ? 'scheduled' : (r.lastError ?? '-'),
          ]);
          if (page.length >= 100) flushPage();
        }
      }
      if (opts.json) process.stdout.write(']\n');
      else if (shown === 0) out('no messages');
      else flushPage();
    });

  program
    .command('show')
    .description('show one message: its request, queue, attempts, next attempt and last error')
    .argument('<id>', 'message id')
    .addOption(spoolOption())
    .option('--reveal', 'show credential headers (Authorization, Cookie, tokens, keys) instead of [redacted]')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl show order-42.paid\n  spoolctl show order-42.paid --json --reveal')
    .action((id: string, opts: { spool?: string; reveal?: boolean; json?: boolean }) => {
      const spool = openSpool(spoolDir(opts));
      const found = locate(spool, id);
      if (found.length === 0) throw new NotFoundError(id);
      const shown = found.map((m) => {
        const raw = readMessageFile(m.path);
        const message = raw && !opts.reveal ? redactHeaders(raw) : raw;
        const reason = readReason(spool, m);
        return { ...describe(m, raw), file: m.path, ...(reason && { reason: reason.reason }), message };
      });
      if (opts.json) return out(JSON.stringify(shown.length === 1 ? shown[0] : shown, null, 2));
      const now = Date.now();
      out(
        shown
          .map((s) =>
            [
              `id:            ${s.id}`,
              `queue:         ${s.queue}`,
              `attempts:      ${s.attempts}`,
              ...(s.nextAttemptAt !== null ? [`${s.scheduled ? 'scheduled for:' : 'next attempt: '} ${new Date(s.nextAttemptAt).toISOString()} (${formatRelative(s.nextAttemptAt - now)})`] : []),
              ...(s.arrivedAt !== null && !s.scheduled ? [`arrived:       ${new Date(s.arrivedAt).toISOString()} (${formatRelative(s.arrivedAt - now)})`] : []),
              `last error:    ${s.lastError ?? '-'}`,
              ...('reason' in s ? [`reason:        ${String(s.reason)}`] : []),
              `file:          ${s.file}`,
              `message:       ${s.message ? JSON.stringify(s.message, null, 2).replace(/\n/g, '\n               ') : '(not readable as a message)'}`,
            ].join('\n'),
          )
          .join('\n\n'),
      );
    });

  program
    .command('history')
    .description('show where a message is and every attempt it had: when, status or error, time taken')
    .argument('<id>', 'message id')
    .addOption(spoolOption())
    .option('--json', 'print { id, queue, attempts: [{ at, status | error, ms, excerpt? }] } (an array when the id is found more than once)')
    .addHelpText('after', '\nAttempts are recorded while a message is in the spool (queued, held or bounced);\na delivered message keeps them for --keep-delivered. Otherwise its lines are in the\nlog of the daemon (under systemd: journalctl -u spoold -o cat --grep=ID).\n\nExamples:\n  spoolctl history order-42.paid\n  spoolctl history order-42.paid --json | jq \'.attempts[-1]\'')
    .action((id: string, opts: { spool?: string; json?: boolean }) => {
      const spool = openSpool(spoolDir(opts));
      const found = history(spool, id);
      if (found.length === 0) throw new NotFoundError(id, goneFromSpool(id));
      if (opts.json) return out(JSON.stringify(found.length === 1 ? found[0] : found, null, 2));
      out(
        found
          .map((h) =>
            [
              `id:        ${h.id}`,
              `queue:     ${h.queue}`,
              `attempts:  ${h.attempts.length === 0 ? 'none recorded' : h.attempts.length}`,
              ...h.attempts.map((a) => `  ${new Date(a.at).toISOString()}  ${'status' in a ? `HTTP ${a.status}` : a.error}  ${a.ms} ms${'excerpt' in a && a.excerpt ? `  ${JSON.stringify(a.excerpt)}` : ''}`),
            ].join('\n'),
          )
          .join('\n\n'),
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
    .option('--queue <queue>', 'with --all: bounced, deferred or hold (default: bounced and deferred)', parseQueue)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl requeue 0m3k2j1a0-9f2c4e1d7b6a5c3e\n  spoolctl requeue --all --queue bounced')
    .action((ids: string[], opts: { spool?: string; all?: boolean; queue?: Queue; json?: boolean }) => {
      if (opts.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (!opts.all && ids.length === 0) throw new UsageError('give at least one id, or --all');
      if (opts.queue && !opts.all) throw new UsageError('--queue goes with --all');
      if (opts.queue && !['bounced', 'deferred', 'hold'].includes(opts.queue)) throw new UsageError('requeue --queue takes bounced, deferred or hold');
      const spool = openSpool(spoolDir(opts));
      const queues: Queue[] = opts.queue ? [opts.queue] : opts.all ? ['bounced', 'deferred'] : ['bounced', 'deferred', 'hold'];
      reportAction('requeued', requeue(spool, opts.all ? 'all' : ids, queues), Boolean(opts.json));
    });

  program
    .command('replay')
    .description('send delivered (kept) or bounced messages again: a new attempt series under the same id')
    .argument('[ids...]', 'message ids')
    .addOption(spoolOption())
    .option('--destination <host>', 'instead of ids: the messages to this host, host:port or origin')
    .option('--since <time>', 'with --destination: delivered or bounced at or after this (ISO 8601, epoch ms, or 2h for two hours ago)', parseWhen)
    .option('--until <time>', 'with --destination: and before this (default: now)', parseWhen)
    .option('--new-id', 'give each a new id (so a new Idempotency-Key and webhook-id, for receivers that drop repeats); default: the same id')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nA kept delivery is copied back into incoming/, its record left in delivered/; a bounced\nmessage is requeued. An id still queued is refused.\n\nExamples:\n  spoolctl replay order-42.paid\n  spoolctl replay --destination hooks.partner.example --since 2026-12-02T09:00:00Z --until 2026-12-02T10:00:00Z')
    .action(async (ids: string[], opts: { spool?: string; destination?: string; since?: number; until?: number; newId?: boolean; json?: boolean }) => {
      if (opts.destination !== undefined && ids.length > 0) throw new UsageError('give ids or --destination, not both');
      if (opts.destination === undefined && ids.length === 0) throw new UsageError('give at least one id, or --destination with --since');
      if (opts.destination !== undefined && opts.since === undefined) throw new UsageError('--destination needs --since');
      if (opts.destination === undefined && (opts.since !== undefined || opts.until !== undefined)) throw new UsageError('--since and --until go with --destination');
      const spool = openSpool(spoolDir(opts));
      const wanted = opts.destination !== undefined ? selectForReplay(spool, { destination: opts.destination, since: opts.since!, until: opts.until ?? Date.now() + 1 }) : ids;
      const newMessageId = opts.newId ? (await import('../producer/enqueue.js')).newMessageId : null;
      const r = await replay(spool, wanted, newMessageId && (() => newMessageId()));
      if (!opts.json) for (const [from, to] of Object.entries(r.renamed)) out(`${from} -> ${to}`);
      reportAction('replayed', r, Boolean(opts.json));
    });

  program
    .command('pause')
    .description('send nothing to a destination until it is resumed; its messages wait, attempts and age unspent')
    .argument('<destination>', 'a host (api.example.com), *.domain, or an origin (https://api.example.com:8443), as in the config\'s "match"')
    .addOption(spoolOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nThe pause is a file in the spool (paused/): it survives restarts, and the daemon\nsees it within a second. Fresh messages to it are accepted and wait.\n\nExamples:\n  spoolctl pause hooks.partner.example\n  spoolctl resume hooks.partner.example')
    .action((destination: string, opts: { spool?: string; json?: boolean }) => {
      const r = pause(openSpool(spoolDir(opts)), destination);
      if (opts.json) out(JSON.stringify({ destination, result: r }));
      else out(r === 'paused' ? `paused: ${destination}` : `${destination}: already paused`);
    });

  program
    .command('resume')
    .description('send to a paused destination again; its messages go in their turn')
    .argument('<destination>', 'the pattern given to pause')
    .addOption(spoolOption())
    .option('--json', 'print the result as JSON')
    .action((destination: string, opts: { spool?: string; json?: boolean }) => {
      const r = resume(openSpool(spoolDir(opts)), destination);
      if (opts.json) out(JSON.stringify({ destination, result: r }));
      else if (r === 'resumed') out(`resumed: ${destination}`);
      else process.stderr.write(`spoolctl: ${destination}: not paused\n`);
      if (r !== 'resumed') process.exitCode = 1;
    });

  program
    .command('hold')
    .description('set messages aside in hold/, where the daemon never touches them (attempts kept)')
    .argument('<ids...>', 'message ids (from incoming, deferred or ordered)')
    .addOption(spoolOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl hold order-42.paid\n  spoolctl release order-42.paid')
    .action((ids: string[], opts: { spool?: string; json?: boolean }) => {
      reportAction('held', hold(openSpool(spoolDir(opts)), ids), Boolean(opts.json));
    });

  program
    .command('release')
    .description('let held messages go: due now, attempts kept')
    .argument('[ids...]', 'message ids')
    .addOption(spoolOption())
    .option('--all', 'every held message')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  spoolctl release order-42.paid\n  spoolctl release --all')
    .action((ids: string[], opts: { spool?: string; all?: boolean; json?: boolean }) => {
      if (Boolean(opts.all) === ids.length > 0) throw new UsageError('give ids or --all, not both and not neither');
      reportAction('released', release(openSpool(spoolDir(opts)), opts.all ? 'all' : ids), Boolean(opts.json));
    });

  program
    .command('delete')
    .description('remove messages for good (asks first on a terminal, unless --yes)')
    .argument('[ids...]', 'message ids')
    .addOption(spoolOption())
    .option('--all', 'every message of the queue given by --queue')
    .option('--queue <queue>', 'with ids: only this queue; with --all: the queue to empty', parseQueue)
    .option('-y, --yes', 'do not ask')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nMessages being delivered (active/) are never deleted.\n\nExamples:\n  spoolctl delete order-42.paid --yes\n  spoolctl delete --all --queue bounced')
    .action(async (ids: string[], opts: { spool?: string; all?: boolean; queue?: Queue; yes?: boolean; json?: boolean }) => {
      if (opts.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (!opts.all && ids.length === 0) throw new UsageError('give at least one id, or --all --queue Q');
      if (opts.all && !opts.queue) throw new UsageError('--all needs --queue: say which queue to empty');
      const spool = openSpool(spoolDir(opts));
      const queues = opts.queue ? [opts.queue] : LIST_ORDER;
      const missing: string[] = [];
      const targets: Located[] = opts.all
        ? [...walkQueue(spool, opts.queue!)]
        : ids.flatMap((id) => {
            const found = locate(spool, id, queues);
            if (found.length === 0) missing.push(id);
            return found;
          });
      if (targets.length > 0 && !opts.yes) {
        if (!process.stdin.isTTY) throw new UsageError('not on a terminal: add --yes to delete without asking');
        const { createInterface } = await import('node:readline/promises');
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`Delete ${targets.length} message${targets.length === 1 ? '' : 's'} for good? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          process.stderr.write('nothing deleted\n');
          return;
        }
      }
      const r = remove(spool, targets);
      r.missing.push(...missing);
      reportAction('deleted', r, Boolean(opts.json));
    });

  program
    .command('stats')
    .description('messages per queue, and deferred/bounced messages by destination and age (like qshape)')
    .addOption(spoolOption())
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nAge counts from the first delivery attempt. A row whose counts sit in the\nright-hand columns is a destination that has been failing for that long.\n\nExample:\n  spoolctl stats')
    .action((opts: { spool?: string; json?: boolean }) => {
      const st = stats(openSpool(spoolDir(opts)));
      if (opts.json) return out(JSON.stringify(st, null, 2));
      const lines = [table([LIST_ORDER.map((q) => String(st.counts[q]))], [...LIST_ORDER])];
      for (const shape of st.shapes) {
        if (shape.rows.length === 0) continue;
        const total = shape.buckets.map((_, i) => shape.rows.reduce((a, r) => a + r.counts[i]!, 0));
        lines.push(
          '',
          `${shape.queue} by destination and age:`,
          table(
            [['TOTAL', String(shape.rows.reduce((a, r) => a + r.total, 0)), ...total.map(String)], ...shape.rows.map((r) => [r.destination, String(r.total), ...r.counts.map(String)])],
            ['DESTINATION', 'T', ...shape.buckets],
          ),
        );
      }
      const dests = st.destinations.map((d) => [d.origin, d.state, `${d.window}/${d.limit}`, String(d.inFlight), String(d.waiting), String(d.failures), d.until ?? '-', d.lastError ?? '-']);
      lines.push(
        '',
        st.destinations.length === 0
          ? 'destinations: none in use'
          : `destinations${st.dead.length > 0 ? ` (${st.dead.length} held back)` : ''}:\n${table(dests, ['DESTINATION', 'STATE', 'WINDOW', 'IN FLIGHT', 'WAITING', 'FAILURES', 'UNTIL', 'LAST ERROR'])}`,
      );
      if (st.paused.length > 0) lines.push('', `paused (spoolctl resume to send again):\n${table(st.paused.map((p) => [p.pattern, `${new Date(p.since).toISOString()} (${formatRelative(p.since - Date.now())})`]), ['PATTERN', 'SINCE'])}`);
      out(lines.join('\n'));
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
    .option('--at <time>', 'not sent before this time: ISO 8601 (2026-12-24T09:00:00Z) or epoch ms ("deliverAt")')
    .option('--in <duration>', 'not sent before this long from now: 90s, 10m, 2d ("delay")')
    .addHelpText('after', '\nExamples:\n  spoolctl enqueue message.json\n  spoolctl enqueue --in 10m message.json\n  echo \'{"url":"https://example.com/hook","body":{"a":1}}\' | spoolctl enqueue -\n  spoolctl enqueue --url https://example.com/hook --header "Content-Type: text/plain" --data hello')
    .action(async (file: string | undefined, opts: { spool?: string; id?: string; url?: string; method?: string; header: string[]; data?: string; at?: string; in?: string }) => {
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
      if (opts.at !== undefined && opts.in !== undefined) throw new UsageError('give --at or --in, not both');
      if (opts.at !== undefined || opts.in !== undefined) {
        if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new UsageError('the message is not a JSON object');
        if (message.deliverAt !== undefined || message.delay !== undefined) throw new UsageError('the message has its own "deliverAt" or "delay": leave out --at and --in');
      }
      if (opts.at !== undefined) message.deliverAt = /^\d+$/.test(opts.at) ? Number(opts.at) : opts.at;
      if (opts.in !== undefined) message.delay = opts.in;
      const { enqueue } = await import('../producer/enqueue.js');
      out(await enqueue(message as never, { spool: spoolDir(opts), ...(opts.id && { id: opts.id }) }));
    });

  return program;
}

async function main(): Promise<void> {
  // `spoolctl list | head`: the reader left; stop quietly, as Unix tools do.
  stdout();
  const program = makeProgram();
  // A counter on the terminal while a command walks the queues (list prints
  // its rows as it goes, so it needs none).
  let walking: Progress | null = null;
  program.hook('preAction', (_program, command) => {
    if (command.name() === 'list' || command.name() === 'enqueue') return;
    const shown = (walking = progress(`spoolctl ${command.name()}`));
    reportWalks((queue, fraction) => shown.tick(queue, fraction));
  });
  const finished = () => {
    walking?.done();
    reportWalks(null);
  };
  program.hook('postAction', finished);
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    finished();
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else if (err instanceof NotFoundError) {
      process.stderr.write(`spoolctl: ${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof UsageError) {
      process.stderr.write(`spoolctl: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof SpoolError) {
      process.stderr.write(`spoolctl: ${err.message}\n`);
      // What the caller gave is wrong (2), or the spool said no (1).
      process.exitCode = USAGE_CODES.has(err.code) ? 2 : 1;
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`spoolctl: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  }
}

await main();
