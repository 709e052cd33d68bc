/**
 * The filename codec: the one place that knows how a message's state is
 * written into its filename. Every other module asks this one.
 *
 * Producers name their files `<id>.json` in incoming/. Once the daemon owns a
 * message (active/, deferred/, hold/, bounced/) its name carries everything a
 * scheduler or an operator needs, so that due messages are found, ordered and
 * listed from names alone, without opening files:
 *
 *     <time>_<attempts>_<arrival>_<destination>_<lastError>_<id>.json
 *
 *   time         epoch ms; in deferred/ the next-attempt time, elsewhere the
 *                time the message entered that queue
 *   attempts     requests started so far (active/: including the one in flight,
 *                so a message that crashes the daemon still runs out of attempts)
 *   arrival      epoch ms when the daemon first claimed it (max-age counts from here)
 *   destination  16 hex digits naming the origin (see destinationTag), or "-";
 *                names written before 0.2 carry 8, and are still read
 *   lastError    "503", "ECONNREFUSED", "UND-ERR-HEADERS-TIMEOUT", or "-"
 *                (at most 24 characters; older names may carry up to 32)
 *   id           the producer's id, last because it may itself contain "_"
 *
 * In active/, a daemon sharing the spool with others (`spoold start --shared`)
 * prefixes the name with its owner id: `<owner>@<name>`, so that survivors
 * can tell whose claims to recover when a lease expires. A single daemon's
 * active/ names carry no owner.
 *
 * deferred/ is split into time buckets (deferred/<bucket start ms>/<name>) so
 * that finding what is due reads only the due buckets, whatever the backlog.
 * Names this codec does not recognise parse to null and are left alone.
 */
import { createHash } from 'node:crypto';

export const MESSAGE_SUFFIX = '.json';
export const MAX_ID_LENGTH = 128;
const ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Width of one deferred/ time bucket. Part of the on-disk format. */
export const BUCKET_MS = 60_000;

export interface Entry {
  id: string;
  /** Next attempt (deferred/) or time of entering the queue (elsewhere), epoch ms. */
  time: number;
  attempts: number;
  arrival: number;
  /** Destination tag, or '-' when not known yet. */
  destination: string;
  /** Error token of the last failed attempt, or '-'. */
  lastError: string;
}

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id) && id !== '.' && id !== '..';
}

/**
 * The id of a producer's file in incoming/, or null for names the daemon
 * must leave alone: dot-files, editor swap files, write-file-atomic's
 * `name.json.<number>` temp files, anything not ending in `.json`.
 */
export function parseIncomingName(name: string): string | null {
  if (name.startsWith('.') || !name.endsWith(MESSAGE_SUFFIX)) return null;
  const id = name.slice(0, -MESSAGE_SUFFIX.length);
  return isValidId(id) ? id : null;
}

export function incomingName(id: string): string {
  return id + MESSAGE_SUFFIX;
}

const ENTRY_PATTERN = /^(\d{1,15})_(\d{1,6})_(\d{1,15})_([0-9a-f]{16}|[0-9a-f]{8}|-)_([A-Za-z0-9-]{1,32})_(.+)\.json$/;

/**
 * Length budget: an owned active/ name must fit in 255 bytes with a 128-byte
 * id, so times are kept to 13 digits (until the year 2286), attempts to 6 and
 * the error token to 24: 13+6+13+16+24+128 plus separators and ".json" is
 * 210, and an owner prefix adds at most 32.
 */
const MAX_TIME = 9_999_999_999_999;
const MAX_TOKEN = 24;
const clampTime = (t: number) => Math.min(MAX_TIME, Math.max(0, Math.trunc(t)));

export function formatEntry(e: Entry): string {
  if (!isValidId(e.id)) throw new RangeError(`invalid message id ${JSON.stringify(e.id)}`);
  const attempts = Math.min(999_999, Math.max(0, Math.trunc(e.attempts)));
  return `${clampTime(e.time)}_${attempts}_${clampTime(e.arrival)}_${e.destination}_${e.lastError.slice(0, MAX_TOKEN)}_${e.id}${MESSAGE_SUFFIX}`;
}

export function parseEntry(name: string): Entry | null {
  const m = ENTRY_PATTERN.exec(name);
  if (!m) return null;
  const id = m[6]!;
  if (!isValidId(id)) return null;
  return {
    time: Number(m[1]),
    attempts: Number(m[2]),
    arrival: Number(m[3]),
    destination: m[4]!,
    lastError: m[5]!,
    id,
  };
}

// Names written before 0.2 had owners of up to 40 characters (and shorter tags); they are still read.
const OWNER_PATTERN = /^[A-Za-z0-9.-]{1,40}$/;
/** Short enough that an owned name stays within 255 bytes (entry names reach 210). */
export const MAX_OWNER = 31;

export function isValidOwner(owner: string): boolean {
  return OWNER_PATTERN.test(owner) && !owner.startsWith('.');
}

/** A name in active/: the entry, prefixed with its owner's id in a shared spool. */
export function formatActiveName(entry: Entry, owner: string | null): string {
  if (owner === null) return formatEntry(entry);
  if (!isValidOwner(owner) || owner.length > MAX_OWNER) throw new RangeError(`invalid owner id ${JSON.stringify(owner)}`);
  return `${owner}@${formatEntry(entry)}`;
}

export function parseActiveName(name: string): { owner: string | null; entry: Entry } | null {
  const at = name.indexOf('@');
  const owner = at === -1 ? null : name.slice(0, at);
  if (owner !== null && !isValidOwner(owner)) return null;
  const entry = parseEntry(at === -1 ? name : name.slice(at + 1));
  return entry ? { owner, entry } : null;
}

/** The folder name of an ordering key's line in ordered/. */
export function keyTag(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

/**
 * A name in an ordering key's line: `<sequence>+<name>`, the sequence (the
 * message file's write time in µs, 17 digits) first, so that names sort in
 * arrival order.
 */
export function formatLineName(sequence: number, entry: Entry): string {
  return `${String(Math.max(0, Math.trunc(sequence))).padStart(17, '0')}+${formatEntry(entry)}`;
}

export function parseLineName(name: string): { sequence: number; entry: Entry } | null {
  const m = /^(\d{17})\+(.+)$/.exec(name);
  const entry = m ? parseEntry(m[2]!) : null;
  return entry ? { sequence: Number(m![1]), entry } : null;
}

/**
 * A stable tag for an origin, so names can be grouped and passed over by
 * destination without opening files: 64 bits of SHA-256, so that two origins
 * with one tag are not practical to find. A tag is only ever a hint (which
 * names a scan may skip, how a listing groups them): whose settings and
 * credentials a request carries is decided by the origin read from the
 * message itself. Names written before 0.2 carry 32-bit tags, for which
 * collisions are easy to find; see isTrustedTag.
 */
export function destinationTag(origin: string): string {
  return createHash('sha256').update(origin).digest('hex').slice(0, 16);
}

/** A tag long enough to pass names over by (a 64-bit one); legacy 32-bit tags are read, never trusted. */
export function isTrustedTag(tag: string): boolean {
  return tag.length === 16;
}

/**
 * The tokens spoold itself writes in a name's last-error field, beside HTTP
 * statuses and error codes: why a message is where it is without an answer.
 */
export const TOKENS = {
  scheduled: 'SCHEDULED',
  incomplete: 'INCOMPLETE',
  interrupted: 'INTERRUPTED',
  invalid: 'INVALID',
  expired: 'EXPIRED',
  refused: 'REFUSED',
} as const;

export type Token = (typeof TOKENS)[keyof typeof TOKENS];

/** What each token means, for the README (generated from this) and for people reading names. */
export const TOKEN_MEANINGS: Record<'-' | Token, string> = {
  '-': 'no attempt has been answered yet (a fresh message, or one in flight when its daemon stopped before it was ever answered)',
  SCHEDULED: 'waiting for its scheduled first delivery ("deliverAt", "delay"), attempts unspent; `spoolctl flush` sends it now',
  INCOMPLETE: 'did not parse while it may still have been being written: read again later',
  INTERRUPTED: 'in flight when its daemon stopped: the request may or may not have reached the receiver, so it is sent again',
  INVALID: 'bounced: not a message spoold can send (not JSON, a bad field, more than one link)',
  EXPIRED: 'bounced: past `--max-age` or its `expiresAt` (or scheduled after its `expiresAt`)',
  REFUSED: 'bounced: its destination is refused by `--allow-destinations`, `--deny-destinations` or `--block-private`',
};

/** Turns a status code or error code into the token stored in a name. */
export function errorToken(statusOrCode: number | string): string {
  const raw = String(statusOrCode).replace(/_/g, '-').replace(/[^A-Za-z0-9-]/g, '');
  return raw.slice(0, MAX_TOKEN) || 'ERROR';
}

/** The short human text for a stored token: "HTTP 503", "ECONNREFUSED". */
export function describeErrorToken(token: string): string | null {
  if (token === '-') return null;
  if (token === TOKENS.scheduled) return 'scheduled';
  if (/^\d{3}$/.test(token)) return `HTTP ${token}`;
  return token;
}

export function bucketOf(time: number): number {
  return Math.floor(Math.max(0, time) / BUCKET_MS) * BUCKET_MS;
}

/** Bucket folder names are their start time; anything else is not a bucket. */
export function parseBucketName(name: string): number | null {
  if (!/^\d{1,15}$/.test(name)) return null;
  const start = Number(name);
  return start % BUCKET_MS === 0 ? start : null;
}

/** Side record kept next to a bounced message; never mistaken for a message. */
export const REASON_SUFFIX = '.reason';
export function reasonName(entryName: string): string {
  return entryName + REASON_SUFFIX;
}

/**
 * Files in tmp/ named by spoold (everything else there is a producer's own
 * staging, left to the age rule of staging.ts):
 *
 *   <id>.json.staged                  a message being produced (enqueue): the
 *                                     name the daemon can look up by its id alone
 *   <id>.json.<pid>.<8 hex>           the same, when that name was taken (two
 *                                     writers of one id, or one killed mid-write)
 *   <id>.json.transit.<pid>.<8 hex>   a message on its way back to incoming/
 *                                     (requeue): never deleted, always put back
 *   .<anything>                       the daemon's own records being written
 *
 * The id comes first so that the staged twin of a message in incoming/ is
 * found by its prefix; it may itself contain ".json.", so the name is split
 * at the last one.
 */
export interface StagedName {
  id: string;
  transit: boolean;
}

const STAGED_PATTERN = /^(.+)\.json\.(?:staged|(transit\.)?\d{1,10}\.[0-9a-f]{8})$/;

/** The staged name tried first: one per id, so a twin is one lookup away (see staging.ts). */
export function formatStagedName(id: string): string {
  return `${incomingName(id)}.staged`;
}

/** A staged name no other writer can hold. */
export function formatUniqueStagedName(id: string, transit: boolean, pid: number, random: string): string {
  return `${incomingName(id)}.${transit ? 'transit.' : ''}${pid}.${random}`;
}

export function parseStagedName(name: string): StagedName | null {
  const m = STAGED_PATTERN.exec(name);
  if (!m || !isValidId(m[1]!)) return null;
  return { id: m[1]!, transit: m[2] !== undefined };
}
