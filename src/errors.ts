/**
 * The error catalogue: every error spoold raises on purpose is a SpoolError
 * with one of these codes, so callers (the library's users, the CLIs) branch
 * on `err.code`, never on the message. Errors of the operating system keep
 * their own codes (ENOSPC, EROFS, …) and travel as the `cause`.
 */
export const ERROR_CODES = {
  SPOOL_ERR_BAD_MESSAGE: 'the message is not one spoold can send',
  SPOOL_ERR_BAD_ID: 'the id is not letters, digits, -, _ and . (at most 128)',
  SPOOL_ERR_EXISTS: 'a message with this id is already waiting in incoming/',
  SPOOL_ERR_NOT_A_SPOOL: 'the directory is not a spool',
  SPOOL_ERR_LAYOUT: 'the spool folders are not usable (not a directory, or on two file systems)',
  SPOOL_ERR_IO: 'the file system refused a write (full, read-only, permission); nothing was left behind',
  SPOOL_ERR_LOCKED: 'another daemon runs on this spool',
  SPOOL_ERR_UNSUPPORTED: 'the spool\'s file system does not give what the asked mode needs (--shared on a network or FUSE file system)',
  SPOOL_ERR_MOVE: 'a move between queues failed; the message stays where it was',
  SPOOL_ERR_CONFIG: 'a setting is not valid',
  SPOOL_ERR_METRICS: 'the metrics address cannot be served',
  SPOOL_ERR_BAD_PATTERN: 'not a destination pattern: a host, *.domain or an origin',
} as const;

export type SpoolErrorCode = keyof typeof ERROR_CODES;

export class SpoolError extends Error {
  constructor(
    message: string,
    readonly code: SpoolErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SpoolError';
  }
}

/** The errno code of an error from the operating system, if it is one. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
