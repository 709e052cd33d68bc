/**
 * Notices: telling someone about a bounce, beyond bounced/, through an
 * outbox in the spool so that a kill never loses one.
 *
 *   notices/<bounced name>   one pending notice (JSON), written whole and
 *                            fsynced *before* the move into bounced/ that it
 *                            announces, removed once it has gone out
 *
 * The outbox is read at start and after every bounce: a notice whose daemon
 * was killed before it went out goes out then. So notices are at least once,
 * like messages: a kill between sending and removing one sends it again.
 *
 *   hook     the notice is itself a message, enqueued into this spool and
 *            delivered (retried, signed) like any other, under a stable id,
 *            so a notice sent twice carries one Idempotency-Key. A notice
 *            that bounces raises no notice: its id starts with NOTICE_PREFIX.
 *   command  run with /bin/sh -c, the notice on standard input; its exit
 *            status is logged. A failure is not retried: the bounce stays in
 *            bounced/. At most COMMANDS run at once.
 *
 * Besides bounces, --notify may ask for delivered, delayed (once, when a
 * message has waited --delay-warning: Postfix's delay_warning_time) and
 * recovered (delivered after a delayed notice) notices, through the same
 * channels, with ids of their own prefixes. A notice about a notice is
 * never sent. A notice carries the message's record and its URL, never its
 * headers or body (they may hold credentials).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { enqueue } from '../producer/enqueue.js';
import { errnoOf, SpoolError } from '../errors.js';
import { streamDir, type Spool } from '../spool/layout.js';
import type { Logger } from './log.js';
import type { BounceRecord } from '../spool/moves.js';
import { readRecord, writeRecord } from '../spool/staging.js';

export const NOTICE_PREFIX = 'bounce-notice.';

/** What a notice tells: a bounce (always, when a channel is set), or what --notify asks for. */
export type NoticeType = 'bounced' | 'delivered' | 'delayed' | 'recovered';
const PREFIXES: Record<NoticeType, string> = { bounced: NOTICE_PREFIX, delivered: 'delivered-notice.', delayed: 'delayed-notice.', recovered: 'recovered-notice.' };
const COMMAND_TIMEOUT_MS = 30_000;
const COMMANDS = 4;
/** A notice that could not go out (the spool full, say) is tried again after this. */
const RETRY_MS = 30_000;

export interface BounceNotice extends BounceRecord {
  type: 'spoold.bounced';
  spool: string;
}

/** A delivered, delayed or recovered notice: the message's record and URL, never its headers or body. */
export interface MessageNoticeRecord {
  id: string;
  url: string;
  attempts: number;
  /** ISO times: when it arrived, and when this happened. */
  arrival: string;
  at: string;
  /** delivered, recovered: from arrival (or its scheduled time) to the 2xx. */
  latencyMs?: number;
  /** delayed: the last error, and when the next attempt is. */
  lastError?: string | null;
  nextAttemptAt?: string;
}

interface Notice extends Partial<BounceRecord> {
  type: `spoold.${NoticeType}`;
  spool: string;
  id: string;
}

export interface NoticeChannels {
  url: string;
  command: string;
}

export function isNotice(id: string): boolean {
  return Object.values(PREFIXES).some((p) => id.startsWith(p));
}

/** Within the 128-character id limit whatever the message's id, and stable (a repeat is dropped by the receiver). */
export function noticeId(id: string, type: NoticeType = 'bounced'): string {
  const prefix = PREFIXES[type];
  return id.length <= 128 - prefix.length ? prefix + id : `${prefix}${id.slice(0, 90)}.${createHash('sha1').update(id).digest('hex').slice(0, 16)}`;
}

/** Whether notices of this kind are sent for this message (never for a notice). */
export function notifies(channels: NoticeChannels, kinds: readonly string[], type: Exclude<NoticeType, 'bounced'>, id: string): boolean {
  return kinds.includes(type) && announces(channels, id);
}

/** Into the outbox, durably, before what it announces is final (the unlink of a delivered message). */
export function writeMessageNotice(spool: Spool, type: Exclude<NoticeType, 'bounced'>, record: MessageNoticeRecord): void {
  const notice = { type: `spoold.${type}`, spool: spool.root, ...record };
  writeRecord(spool, spool.path('notices', `${type}.${record.id}.${Date.parse(record.at)}`), JSON.stringify(notice) + '\n', true);
}

/** Whether a bounce of this message is announced. */
export function announces(channels: NoticeChannels, id: string): boolean {
  return (channels.url !== '' || channels.command !== '') && !isNotice(id);
}

/** Into the outbox, durably: called before the move it announces (see the header). */
export function writeNotice(spool: Spool, name: string, record: BounceRecord): void {
  const notice: BounceNotice = { type: 'spoold.bounced', spool: spool.root, ...record };
  writeRecord(spool, spool.path('notices', name), JSON.stringify(notice) + '\n', true);
}

/** Sends what is in the outbox, one pass at a time; a side path: it never throws. */
export class Outbox {
  private running: Promise<void> | null = null;
  private again = false;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly spool: Spool,
    private readonly channels: () => NoticeChannels,
    private readonly log: Logger,
  ) {}

  /** Something may be in the outbox: send it. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.log.error({ event: 'notice-failed', error: errnoOf(err) ?? String(err) }, `could not read the notice outbox: ${(err as Error).message}`))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Lets the notices under way finish; the rest wait in the outbox for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.running;
  }

  private async pass(): Promise<void> {
    const pending: string[] = [];
    for (const d of streamDir(this.spool.dir('notices'))) if (!d.name.startsWith('.')) pending.push(d.name);
    let failed = false;
    for (let i = 0; i < pending.length && !this.stopped; i += COMMANDS) {
      const results = await Promise.all(pending.slice(i, i + COMMANDS).map((name) => this.send(name)));
      failed ||= results.includes(false);
    }
    if (failed && !this.retry && !this.stopped) {
      this.retry = setTimeout(() => ((this.retry = null), this.kick()), RETRY_MS);
      this.retry.unref();
    }
  }

  /** One notice out, then out of the outbox; false when it must be tried again later. */
  private async send(name: string): Promise<boolean> {
    const file = this.spool.path('notices', name);
    let notice: Notice;
    try {
      notice = JSON.parse(readRecord(file)) as Notice;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return true;
      this.log.error({ event: 'notice-failed', file: name, error: errnoOf(err) ?? 'not JSON' }, 'a notice in the outbox cannot be read; removed');
      fs.rmSync(file, { force: true });
      return true;
    }
    const { url, command } = this.channels();
    const type = (notice.type?.replace(/^spoold\./, '') ?? 'bounced') as NoticeType;
    const bounce = type === 'bounced';
    if (url) {
      const id = noticeId(notice.id, type);
      try {
        await enqueue({ url, method: 'POST', headers: { 'content-type': 'application/json' }, body: notice, meta: bounce ? { bounceNoticeFor: notice.id } : { noticeFor: notice.id, notice: type } }, { spool: this.spool.root, id });
        if (bounce) this.log.info({ event: 'bounce-notice-queued', id: notice.id, notice: id }, `bounce notice ${id} queued for ${url}`);
        else this.log.info({ event: 'notice-queued', id: notice.id, notice: id, type }, `${type} notice ${id} queued for ${url}`);
      } catch (err) {
        if (!(err instanceof SpoolError && err.code === 'SPOOL_ERR_EXISTS')) {
          this.log.error({ event: bounce ? 'bounce-notice-failed' : 'notice-failed', id: notice.id, ...(!bounce && { type }), error: (err as Error).message }, `could not queue the ${type} notice: ${(err as Error).message}`);
          return false;
        }
        // Queued before a kill, and still waiting: it goes once.
      }
    }
    if (command) await runCommand(command, notice, this.log);
    fs.rmSync(file, { force: true });
    return true;
  }
}

function runCommand(command: string, notice: Notice, log: Logger): Promise<void> {
  const type = notice.type.replace(/^spoold\./, '');
  const env = { ...process.env, SPOOLD_NOTICE_TYPE: type, SPOOLD_MESSAGE_ID: notice.id, ...(type === 'bounced' && { SPOOLD_BOUNCED_ID: notice.id }) };
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'ignore', 'pipe'], env });
    } catch (err) {
      log.error({ event: type === 'bounced' ? 'bounce-command-failed' : 'notice-command-failed', id: notice.id, error: (err as Error).message }, `${type} notice command could not start: ${(err as Error).message}`);
      return resolve();
    }
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-500)));
    child.stdin!.on('error', () => undefined); // a command that does not read its input
    child.stdin!.end(JSON.stringify(notice) + '\n');
    child.on('error', (err) => {
      clearTimeout(timer);
      log.error({ event: type === 'bounced' ? 'bounce-command-failed' : 'notice-command-failed', id: notice.id, error: err.message }, `${type} notice command could not start: ${err.message}`);
      resolve();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) log.info({ event: type === 'bounced' ? 'bounce-command-done' : 'notice-command-done', id: notice.id }, `${type} notice command done`);
      else log.error({ event: type === 'bounced' ? 'bounce-command-failed' : 'notice-command-failed', id: notice.id, code, signal, stderr: stderr.trim() }, `${type} notice command failed (${signal ?? `exit ${code}`})`);
      resolve();
    });
  });
}
