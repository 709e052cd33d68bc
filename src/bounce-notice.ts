/**
 * Telling someone about a bounce, beyond bounced/: a JSON notice per bounced
 * message, to an HTTP hook or to a command.
 *
 *   hook     the notice is itself a message, enqueued into this spool and
 *            delivered (retried, signed) like any other. A notice that
 *            bounces raises no notice: its id starts with NOTICE_PREFIX.
 *   command  run with /bin/sh -c, the notice on standard input; its exit
 *            status is logged. Not retried: the bounce stays in bounced/.
 *
 * A notice carries the bounce record and the URL, never the message's
 * headers or body (they may hold credentials).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { enqueue } from './enqueue.js';
import type { Logger } from './log.js';
import type { BounceRecord } from './settle.js';

export const NOTICE_PREFIX = 'bounce-notice.';
const COMMAND_TIMEOUT_MS = 30_000;

export interface BounceNotice extends BounceRecord {
  type: 'spoold.bounced';
  spool: string;
}

export function isNotice(id: string): boolean {
  return id.startsWith(NOTICE_PREFIX);
}

/** Within the 128-character id limit whatever the bounced id, and stable (a repeat is dropped by the receiver). */
export function noticeId(id: string): string {
  return id.length <= 128 - NOTICE_PREFIX.length ? NOTICE_PREFIX + id : `${NOTICE_PREFIX}${id.slice(0, 90)}.${createHash('sha1').update(id).digest('hex').slice(0, 16)}`;
}

export async function notifyBounce(spool: string, record: BounceRecord, hooks: { url: string; command: string }, log: Logger): Promise<void> {
  if (isNotice(record.id)) return;
  const notice: BounceNotice = { type: 'spoold.bounced', spool, ...record };
  if (hooks.url) {
    const id = noticeId(record.id);
    try {
      await enqueue({ url: hooks.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: notice, meta: { bounceNoticeFor: record.id } }, { spool, id });
      log.info({ event: 'bounce-notice-queued', id: record.id, notice: id }, `bounce notice ${id} queued for ${hooks.url}`);
    } catch (err) {
      log.error({ event: 'bounce-notice-failed', id: record.id, error: (err as Error).message }, `could not queue the bounce notice: ${(err as Error).message}`);
    }
  }
  if (hooks.command) await runCommand(hooks.command, notice, log);
}

function runCommand(command: string, notice: BounceNotice, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, SPOOLD_BOUNCED_ID: notice.id } });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-500)));
    child.stdin.on('error', () => undefined); // a command that does not read its input
    child.stdin.end(JSON.stringify(notice) + '\n');
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
