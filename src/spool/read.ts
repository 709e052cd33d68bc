/**
 * Read and validate a claimed message file.
 *
 * The file is opened with O_NOFOLLOW (a symlink is never read through) and
 * O_NONBLOCK (a FIFO cannot stall the daemon), then checked with fstat on the
 * open descriptor, so what is checked is what is read. At most max-size + 1
 * bytes are read, so a file that is still growing cannot exhaust memory.
 *
 * Throws only for troubles of the host (out of file descriptors, I/O error):
 * those say nothing about the message, which must then be retried, never bounced.
 */
import fs from 'node:fs';
import { validateMessage, type Message } from '../delivery/message.js';

export type ReadResult =
  /** writtenAt: the file's mtime, when its producer wrote it (renames between queues keep it). */
  | { kind: 'message'; message: Message; writtenAt: number; size: number }
  | { kind: 'invalid'; reason: string }
  /**
   * Not parseable, but written to within SETTLE_MS: a producer may still be
   * writing into the file (not by rename, as it should). Read again later;
   * a truncated body is never sent.
   */
  | { kind: 'incomplete'; reason: string }
  /** The file vanished between claim and read (an operator deleted it). */
  | { kind: 'gone' };

export const SETTLE_MS = 2000;

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function describeType(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * `dropTwin`: asked about a file with a second name; true when that name was
 * its own staged twin in tmp/ and is gone now (see staging.ts).
 */
export function readMessage(file: string, maxSize: number, now: number = Date.now(), dropTwin: (st: fs.Stats, links: () => number) => boolean = () => false): ReadResult {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'gone' };
    if (code === 'ELOOP') return { kind: 'invalid', reason: 'a symbolic link: never followed' };
    if (code === 'ENXIO') return { kind: 'invalid', reason: 'a socket or FIFO: not a regular file' };
    if (code === 'EACCES' || code === 'EPERM') return { kind: 'invalid', reason: `not readable by the daemon (${code}): check its owner and mode` };
    // EMFILE, ENFILE, EIO, ENOMEM…: trouble of the host, not of the message.
    throw err;
  }
  try {
    let st = fs.fstatSync(fd);
    if (!st.isFile()) return { kind: 'invalid', reason: `${describeType(st)}: not a regular file` };
    // A second name means the content lives on elsewhere too (a hard link to a
    // file outside the spool): never read. The one exception is the message's
    // own staged name in tmp/, left by a producer stopped between its link and
    // its unlink.
    // Looked at again whatever the look found: the twin's writer may have removed it meanwhile.
    if (st.nlink > 1) {
      dropTwin(st, () => fs.fstatSync(fd).nlink);
      st = fs.fstatSync(fd);
    }
    if (st.nlink > 1) return { kind: 'invalid', reason: `has ${st.nlink} hard links: not read` };
    if (st.size > maxSize) return { kind: 'invalid', reason: `${st.size} bytes: over the size limit of ${maxSize}` };
    // Written to just now (by either clock's reckoning): maybe still being
    // written. A time far in the future is not "just now": the wait is bounded.
    const unsettled = Math.abs(now - st.mtimeMs) < SETTLE_MS;
    // Read to end of file, not to st.size: a file that grew after fstat is
    // caught by the size limit instead of being sent truncated. One byte over
    // its size shows growth. Not from Node's buffer pool: a short-lived read
    // buffer sharing a pool slab with the kept message body would keep the
    // whole slab alive with it (measured: 2.7 KB per kept 1 KB message).
    let buf = Buffer.allocUnsafeSlow(Math.min(maxSize + 1, st.size + 1));
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        if (buf.length > maxSize) break;
        const bigger = Buffer.allocUnsafe(Math.min(maxSize + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, length);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxSize) return { kind: 'invalid', reason: `over the size limit of ${maxSize} bytes` };
    let text: string;
    try {
      text = utf8.decode(buf.subarray(0, length));
    } catch {
      return unsettled ? { kind: 'incomplete', reason: 'not valid UTF-8 yet' } : { kind: 'invalid', reason: 'not valid UTF-8' };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // The parser's own message quotes the input, which may be a secret.
      const reason = length === 0 ? 'empty file' : 'not valid JSON';
      return unsettled ? { kind: 'incomplete', reason } : { kind: 'invalid', reason };
    }
    const v = validateMessage(parsed);
    return v.ok ? { kind: 'message', message: v.message, writtenAt: st.mtimeMs, size: length } : { kind: 'invalid', reason: v.reason };
  } finally {
    fs.closeSync(fd);
  }
}
