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
 * A notice carries the bounce record and the URL, never the message's
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
import { writeRecord } from '../spool/staging.js';

export const NOTICE_PREFIX = 'bounce-notice.';
const COMMAND_TIMEOUT_MS = 30_000;
const COMMANDS = 4;
/** A notice that could not go out (the spool full, say) is tried again after this. */
const RETRY_MS = 30_000;

export interface BounceNotice extends BounceRecord {
  type: 'spoold.bounced';
  spool: string;
}

export interface NoticeChannels {
  url: string;
  command: string;
}

export function isNotice(id: string): boolean {
  return id.startsWith(NOTICE_PREFIX);
}

/** Within the 128-character id limit whatever the bounced id, and stable (a repeat is dropped by the receiver). */
export function noticeId(id: string): string {
  return id.length <= 128 - NOTICE_PREFIX.length ? NOTICE_PREFIX + id : `${NOTICE_PREFIX}${id.slice(0, 90)}.${createHash('sha1').update(id).digest('hex').slice(0, 16)}`;
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
    let notice: BounceNotice;
    try {
      notice = JSON.parse(fs.readFileSync(file, 'utf8')) as BounceNotice;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return true;
      this.log.error({ event: 'notice-failed', file: name, error: errnoOf(err) ?? 'not JSON' }, 'a notice in the outbox cannot be read; removed');
      fs.rmSync(file, { force: true });
      return true;
    }
    const { url, command } = this.channels();
    if (url) {
      const id = noticeId(notice.id);
      try {
        await enqueue({ url, method: 'POST', headers: { 'content-type': 'application/json' }, body: notice, meta: { bounceNoticeFor: notice.id } }, { spool: this.spool.root, id });
        this.log.info({ event: 'bounce-notice-queued', id: notice.id, notice: id }, `bounce notice ${id} queued for ${url}`);
      } catch (err) {
        if (!(err instanceof SpoolError && err.code === 'SPOOL_ERR_EXISTS')) {
          this.log.error({ event: 'bounce-notice-failed', id: notice.id, error: (err as Error).message }, `could not queue the bounce notice: ${(err as Error).message}`);
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

function runCommand(command: string, notice: BounceNotice, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, SPOOLD_BOUNCED_ID: notice.id } });
    } catch (err) {
      log.error({ event: 'bounce-command-failed', id: notice.id, error: (err as Error).message }, `bounce command could not start: ${(err as Error).message}`);
      return resolve();
    }
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-500)));
    child.stdin!.on('error', () => undefined); // a command that does not read its input
    child.stdin!.end(JSON.stringify(notice) + '\n');
    child.on('error', (err) => {
      clearTimeout(timer);
      log.error({ event: 'bounce-command-failed', id: notice.id, error: err.message }, `bounce command could not start: ${err.message}`);
      resolve();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) log.info({ event: 'bounce-command-done', id: notice.id }, 'bounce command done');
      else log.error({ event: 'bounce-command-failed', id: notice.id, code, signal, stderr: stderr.trim() }, `bounce command failed (${signal ?? `exit ${code}`})`);
      resolve();
    });
  });
}
