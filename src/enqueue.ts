/**
 * The producer's side: put a message into incoming/ so that it is complete
 * under its final name or not there at all, and durable before the id is
 * returned.
 *
 * write-file-atomic writes `<id>.json.<number>` beside the target (a name the
 * daemon ignores), fsyncs it and renames it into place. It does not fsync the
 * directory, so the new entry could still vanish in a power cut: we fsync
 * incoming/ after the rename, and only then answer.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Spool } from './layout.js';
import { validateMessage } from './message.js';
import { incomingName, isValidId } from './names.js';

export interface MessageInput {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  maxAttempts?: number;
  expiresAt?: number | string;
  maxAge?: number | string;
  timeout?: number | string;
  meta?: unknown;
}

export interface EnqueueOptions {
  /** Spool directory (default: $SPOOL_DIR, else ./spool). */
  spool?: string;
  /** The message id (default: a new time-ordered unique id). Also its Idempotency-Key. */
  id?: string;
}

export class EnqueueError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'EnqueueError';
  }
}

/** Time-ordered, unique without coordination: ms since epoch + 64 random bits. */
export function newMessageId(now: number = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(8).toString('hex')}`;
}

export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Validates the message, writes it durably into `<spool>/incoming/<id>.json`
 * and returns the id. Throws EnqueueError for an invalid message, an invalid
 * or taken id, or a missing spool; nothing is written then.
 */
export async function enqueue(message: MessageInput, options: EnqueueOptions = {}): Promise<string> {
  const v = validateMessage(message);
  if (!v.ok) throw new EnqueueError(`invalid message: ${v.reason}`, 'SPOOL_ERR_BAD_MESSAGE');
  const id = options.id ?? newMessageId();
  if (!isValidId(id)) throw new EnqueueError(`invalid id ${JSON.stringify(id)}: letters, digits, '-', '_', '.', at most 128`, 'SPOOL_ERR_BAD_ID');

  const spool = new Spool(options.spool ?? process.env.SPOOL_DIR ?? './spool');
  const dir = spool.dir('incoming');
  if (!fs.existsSync(dir)) throw new EnqueueError(`${spool.root} is not a spool (no incoming/)`, 'SPOOL_ERR_NOT_A_SPOOL');
  const target = spool.path('incoming', incomingName(id));
  // A rename would silently replace a message still waiting under this id.
  if (fs.existsSync(target)) throw new EnqueueError(`message ${id} is already in incoming/`, 'SPOOL_ERR_EXISTS');

  const { default: writeFileAtomic } = await import('write-file-atomic');
  await writeFileAtomic(target, JSON.stringify(message) + '\n', { fsync: true, mode: 0o600 });
  fsyncDirectory(dir);
  return id;
}
