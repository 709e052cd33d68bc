/**
 * The daemon's settings: every one with its default and its bounds, in one
 * place. A bad value stops the daemon with a message saying how to fix it;
 * nothing is silently replaced by a default.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SpoolError } from '../errors.js';
import { parseSigningSecrets, SigningSecretError } from '../delivery/signing.js';
import { formatDuration, parseDuration, parseSize } from '../units.js';

export interface DeliveryPolicy {
  /** First retry delay; each further attempt doubles it. */
  minBackoff: number;
  /** Cap on the doubling (a Retry-After may ask for more). */
  maxBackoff: number;
  /** Requests in total before a message bounces; 0 = no limit. */
  maxAttempts: number;
  /** Age (from first claim) after which a failing message bounces. */
  maxAge: number;
  /** Whole-request timeout: connect, headers and body. */
  timeout: number;
}

export interface Config extends DeliveryPolicy {
  spool: string;
  /** How long delivered messages and their attempts are kept in delivered/ (0: not kept). */
  keepDelivered: number;
  /** Requests in flight at once, all destinations together. */
  concurrency: number;
  /** Requests in flight at once to one origin (scheme://host:port), at most: the window adapts below it. */
  perDestination: number;
  /** Claimed messages held in memory at once (the active set). */
  activeLimit: number;
  /** Bytes of parsed messages the active set keeps; beyond, a message is read again when it is sent. */
  activeBytes: number;
  /** Largest message file accepted, in bytes. */
  maxSize: number;
  /** Safety-net rescan of incoming/ when file events are missed. */
  scanInterval: number;
  /** Time allowed for in-flight requests to finish on SIGTERM. */
  shutdownGrace: number;
  /** Host patterns messages may go to; empty: any. */
  allowDestinations: string[];
  /** Host patterns messages may never go to. */
  denyDestinations: string[];
  /** Refuse loopback, private and link-local addresses, after DNS resolution. */
  blockPrivate: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** json: one JSON object per line; pretty: for people; auto: pretty on a terminal. */
  logFormat: 'auto' | 'json' | 'pretty';
  /** host:port serving Prometheus metrics on /metrics; empty: off. */
  metrics: string;
  /** Destinations with a `destination` label of their own in the metrics (the busiest); the rest are "other". */
  metricsDestinations: number;
  /** Let the status page requeue and delete bounced messages. */
  statusActions: boolean;
  /** How incoming/ is watched: events (inotify, the default) or poll (network file systems). */
  watch: 'events' | 'poll';
  /** Share the spool with other daemons (leases) instead of locking it. */
  shared: boolean;
  /** In a shared spool: a daemon silent for this long is dead, and its claims are recovered. */
  leaseTtl: number;
  /** Consecutive transient failures that make a destination dead (0: never). */
  deadAfter: number;
  /** How long a dead destination is left alone before one probe; doubles while it stays dead. */
  deadCoolOff: number;
  deadMaxCoolOff: number;
  /** URL receiving a JSON notice per bounced message (delivered through this spool); empty: none. */
  bounceHook: string;
  /** Command run with /bin/sh -c per bounced message, the notice on its standard input; empty: none. */
  bounceCommand: string;
  /** Notices besides bounces, through the same channels: delivered, delayed, recovered. */
  notify: string[];
  /** A message waiting this long without success gets one delayed notice (with notify delayed). */
  delayWarning: number;
  /** Standard Webhooks secrets (`whsec_…`, space-separated to rotate); empty: requests are not signed. */
  signingSecret: string;
  /** A file holding the signing secrets (read at start and on SIGHUP); wins over signingSecret. */
  signingSecretFile: string;
  /** Per-destination settings from the config file's "destinations" list; the first match wins. */
  destinationSettings: DestinationSettings[];
  /** The decoded signing keys (from signingSecret or signingSecretFile). Never logged. */
  signingKeys: Buffer[];
}

/** Settings for the destinations matching any of `match` (host, *.domain, or origin patterns). */
export interface DestinationSettings {
  match: string[];
  /** Requests in flight at once to one matching origin, at most (instead of perDestination). */
  concurrency?: number;
  /** false: the window stays at `concurrency` instead of adapting to the receiver. */
  adaptive?: boolean;
  /** Requests started per second to one matching origin (a token bucket, bursts of up to one second's worth). */
  rps?: number;
  timeout?: number;
  minBackoff?: number;
  maxBackoff?: number;
  maxAttempts?: number;
  signingKeys?: Buffer[];
  /** Added to every request (a message's own header of the same name wins). */
  headers?: [string, string][];
}

export const DEFAULTS = {
  spool: './spool',
  // Postfix allows 100 deliveries at once and 20 to one destination. 128 so
  // that one destination, the common case, can have 64 in flight while it
  // still takes only half the slots.
  concurrency: 128,
  // Half the slots: one slow destination never takes them all (the isolation
  // bench: with every slot on it, a healthy destination's p99 went from 3 ms
  // to 15 s). 64, not 32 or 128: one local receiver, the settings taking
  // turns in rounds whose order turns (2026-12-07), drained medians of
  // 4,900 msgs/s at 64 against 4,667 at 32 and 5,136 at 128 in six rounds,
  // and 5,183 against 4,523 and 5,058 in npm run bench's five (end to end
  // 2,656 against 2,706 and 2,891; 3,534 against 3,575 and 3,600). One
  // setting moves up to 30% from round to round, more than the settings
  // differ. A receiver 100 ms away gets 640 requests a second; the window
  // adapts below it, from 5: weak receivers get far fewer.
  perDestination: 64,
  activeLimit: 10_000,
  // Enough to keep parsed what the slots will send next (2 x concurrency
  // messages of a few KiB); more only costs memory: 8 MiB kept parsed took
  // a flood's peak RSS from 132 to 167 MB and sent no faster.
  activeBytes: 1024 * 1024,
  minBackoff: 30_000,
  maxBackoff: 3_600_000,
  maxAttempts: 100,
  maxAge: 5 * 86_400_000,
  // Off: kept, every message costs a file and its disk space for as long as
  // it is kept (500 msgs/s for a day is 43 million files); the journal keeps
  // a "delivered" line per message anyway. Turn it on for what you must answer for.
  keepDelivered: 0,
  timeout: 30_000,
  maxSize: 1024 * 1024,
  scanInterval: 2_000,
  shutdownGrace: 8_000,
  allowDestinations: [] as string[],
  denyDestinations: [] as string[],
  blockPrivate: false,
  logLevel: 'info',
  logFormat: 'auto',
  metrics: '',
  metricsDestinations: 20,
  statusActions: false,
  watch: 'events',
  shared: false,
  leaseTtl: 30_000,
  deadAfter: 10,
  deadCoolOff: 30_000,
  deadMaxCoolOff: 600_000,
  bounceHook: '',
  bounceCommand: '',
  notify: [] as string[],
  // Postfix's delay_warning_time, as commonly set: long enough that a notice means trouble.
  delayWarning: 4 * 3_600_000,
  signingSecret: '',
  signingSecretFile: '',
  destinationSettings: [] as DestinationSettings[],
  signingKeys: [] as Buffer[],
} satisfies Config;

type Kind = 'count' | 'duration' | 'size' | 'path' | 'choice' | 'list' | 'flag' | 'secret' | 'url' | 'command' | 'address';
export interface Setting {
  key: keyof Config;
  flag: string;
  env: string;
  kind: Kind;
  min: number;
  max: number;
  help: string;
  choices?: readonly string[];
}

/** Command-line flag, environment variable, bounds and meaning of each setting. */
export const SETTINGS: readonly Setting[] = [
  { key: 'spool', flag: 'spool', env: 'SPOOL_DIR', kind: 'path', min: 0, max: 0, help: 'the spool directory' },
  { key: 'concurrency', flag: 'concurrency', env: 'SPOOLD_CONCURRENCY', kind: 'count', min: 1, max: 10_000, help: 'requests in flight at once, all destinations' },
  { key: 'perDestination', flag: 'per-destination', env: 'SPOOLD_PER_DESTINATION', kind: 'count', min: 1, max: 10_000, help: 'requests in flight at once to one origin, at most: each destination starts at 5 and adapts below this to what it answers well' },
  { key: 'activeLimit', flag: 'active-limit', env: 'SPOOLD_ACTIVE_LIMIT', kind: 'count', min: 1, max: 1_000_000, help: 'claimed messages held in memory at once (about 2 KiB each, more while kept parsed: see npm run bench:active); claiming waits while it is full' },
  { key: 'activeBytes', flag: 'active-bytes', env: 'SPOOLD_ACTIVE_BYTES', kind: 'size', min: 0, max: 1024 ** 3, help: 'bytes of messages the active set keeps parsed; beyond, a message is read again when sent' },
  { key: 'minBackoff', flag: 'min-backoff', env: 'SPOOLD_MIN_BACKOFF', kind: 'duration', min: 0, max: 365 * 86_400_000, help: 'delay before the first retry; doubles per attempt' },
  { key: 'maxBackoff', flag: 'max-backoff', env: 'SPOOLD_MAX_BACKOFF', kind: 'duration', min: 0, max: 365 * 86_400_000, help: 'cap on the retry delay (a Retry-After may ask for more)' },
  { key: 'maxAttempts', flag: 'max-attempts', env: 'SPOOLD_MAX_ATTEMPTS', kind: 'count', min: 0, max: 999_999, help: 'requests in total before a message bounces (0: no limit)' },
  { key: 'maxAge', flag: 'max-age', env: 'SPOOLD_MAX_AGE', kind: 'duration', min: 0, max: 3650 * 86_400_000, help: 'a failing message older than this bounces' },
  { key: 'timeout', flag: 'timeout', env: 'SPOOLD_TIMEOUT', kind: 'duration', min: 100, max: 3_600_000, help: 'whole-request timeout: connect (at most 10 s of it), headers and body' },
  { key: 'maxSize', flag: 'max-size', env: 'SPOOLD_MAX_SIZE', kind: 'size', min: 2, max: 1024 ** 3, help: 'largest message file accepted (bytes, or 512k, 1MiB); larger ones bounce unread' },
  { key: 'scanInterval', flag: 'scan-interval', env: 'SPOOLD_SCAN_INTERVAL', kind: 'duration', min: 10, max: 3_600_000, help: 'safety-net rescan of incoming/ for missed file events, and the longest a message made due by spoolctl flush or release waits' },
  { key: 'keepDelivered', flag: 'keep-delivered', env: 'SPOOLD_KEEP_DELIVERED', kind: 'duration', min: 0, max: 3650 * 86_400_000, help: 'keep each delivered message and its attempts in delivered/ this long (spoolctl history, replay); 0: not kept' },
  { key: 'shutdownGrace', flag: 'shutdown-grace', env: 'SPOOLD_SHUTDOWN_GRACE', kind: 'duration', min: 0, max: 3_600_000, help: 'time in-flight requests get to finish on SIGTERM; then they are cut and deferred' },
  { key: 'allowDestinations', flag: 'allow-destinations', env: 'SPOOLD_ALLOW_DESTINATIONS', kind: 'list', min: 0, max: 0, help: 'only these hosts, comma-separated: example.com, *.example.com, https://example.com:8443; others bounce' },
  { key: 'denyDestinations', flag: 'deny-destinations', env: 'SPOOLD_DENY_DESTINATIONS', kind: 'list', min: 0, max: 0, help: 'never these hosts (same patterns); deny wins over allow' },
  { key: 'blockPrivate', flag: 'block-private', env: 'SPOOLD_BLOCK_PRIVATE', kind: 'flag', min: 0, max: 0, help: 'refuse loopback, private, link-local and reserved addresses, checked after DNS resolution' },
  { key: 'logLevel', flag: 'log-level', env: 'SPOOLD_LOG_LEVEL', kind: 'choice', min: 0, max: 0, choices: ['debug', 'info', 'warn', 'error'], help: 'least severe log lines written' },
  { key: 'metrics', flag: 'metrics', env: 'SPOOLD_METRICS', kind: 'address', min: 0, max: 0, help: 'serve Prometheus metrics on host:port (e.g. 127.0.0.1:9464), path /metrics' },
  { key: 'metricsDestinations', flag: 'metrics-destinations', env: 'SPOOLD_METRICS_DESTINATIONS', kind: 'count', min: 1, max: 10_000, help: 'destinations with a metrics label of their own (the busiest of the last minute); the rest are counted as "other"' },
  { key: 'statusActions', flag: 'status-actions', env: 'SPOOLD_STATUS_ACTIONS', kind: 'flag', min: 0, max: 0, help: 'let the status page (on the --metrics address) requeue and delete bounced messages' },
  { key: 'watch', flag: 'watch', env: 'SPOOLD_WATCH', kind: 'choice', min: 0, max: 0, choices: ['events', 'poll'], help: 'how incoming/ is watched: events (inotify) or poll (every 250 ms, for spools on network file systems that do not report other clients\' renames)' },
  { key: 'shared', flag: 'shared', env: 'SPOOLD_SHARED', kind: 'flag', min: 0, max: 0, help: 'share the spool with other daemons on this host started with --shared (leases instead of the lock); refused on network and FUSE file systems' },
  { key: 'leaseTtl', flag: 'lease-ttl', env: 'SPOOLD_LEASE_TTL', kind: 'duration', min: 300, max: 3_600_000, help: 'with --shared: a daemon that has not renewed its lease for this long is dead; its claims are delivered by the others' },
  { key: 'deadAfter', flag: 'dead-after', env: 'SPOOLD_DEAD_AFTER', kind: 'count', min: 0, max: 1_000_000, help: 'consecutive transient failures (and at least the destination concurrency) that make a destination dead: its messages wait, attempts unspent (0: never)' },
  { key: 'deadCoolOff', flag: 'dead-cool-off', env: 'SPOOLD_DEAD_COOL_OFF', kind: 'duration', min: 10, max: 86_400_000, help: 'how long a dead destination is left alone before one probe; doubles while it stays dead' },
  { key: 'deadMaxCoolOff', flag: 'dead-max-cool-off', env: 'SPOOLD_DEAD_MAX_COOL_OFF', kind: 'duration', min: 10, max: 7 * 86_400_000, help: 'cap on the doubling cool-off' },
  { key: 'bounceHook', flag: 'bounce-hook', env: 'SPOOLD_BOUNCE_HOOK', kind: 'url', min: 0, max: 0, help: 'URL receiving a JSON notice per bounced message, delivered through this spool' },
  { key: 'notify', flag: 'notify', env: 'SPOOLD_NOTIFY', kind: 'list', min: 0, max: 0, help: 'notices besides bounces, comma-separated, through --bounce-hook and --bounce-command: delivered, delayed (once, after --delay-warning), recovered (delivered after a delayed notice)' },
  { key: 'delayWarning', flag: 'delay-warning', env: 'SPOOLD_DELAY_WARNING', kind: 'duration', min: 1000, max: 3650 * 86_400_000, help: 'with --notify delayed: a message still not delivered after this long gets one delayed notice, at its next attempt' },
  { key: 'bounceCommand', flag: 'bounce-command', env: 'SPOOLD_BOUNCE_COMMAND', kind: 'command', min: 0, max: 0, help: 'command run with /bin/sh -c per bounced message, the JSON notice on its standard input' },
  { key: 'signingSecret', flag: 'signing-secret', env: 'SPOOLD_SIGNING_SECRET', kind: 'secret', min: 0, max: 0, help: 'Standard Webhooks signing secrets, whsec_…, space-separated while rotating (environment or config file only: never on a command line)' },
  { key: 'signingSecretFile', flag: 'signing-secret-file', env: 'SPOOLD_SIGNING_SECRET_FILE', kind: 'path', min: 0, max: 0, help: 'file holding the signing secrets; re-read on SIGHUP' },
  { key: 'logFormat', flag: 'log-format', env: 'SPOOLD_LOG_FORMAT', kind: 'choice', min: 0, max: 0, choices: ['auto', 'json', 'pretty'], help: 'json lines, or pretty for people (auto: pretty on a terminal)' },
];

/** A setting's default as --help and the README show it. */
export function defaultText(s: Setting): string {
  const v = DEFAULTS[s.key];
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'string') return v === '' ? 'none' : v;
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.join(',');
  if (s.kind === 'duration') return formatDuration(v as number);
  if (s.kind === 'size') return v === 0 ? '0' : v % (1024 * 1024) === 0 ? `${(v as number) / 1024 / 1024}MiB` : `${v} bytes`;
  return String(v);
}

/** Settings a SIGHUP can change; the rest need a restart. */
export const RELOADABLE: readonly (keyof Config)[] = [
  'concurrency', 'perDestination', 'activeLimit', 'activeBytes', 'minBackoff', 'maxBackoff', 'maxAttempts', 'maxAge', 'keepDelivered', 'timeout', 'maxSize', 'scanInterval', 'shutdownGrace',
  'allowDestinations', 'denyDestinations', 'blockPrivate', 'logLevel',
  'signingSecret', 'signingSecretFile', 'destinationSettings', 'signingKeys', 'bounceHook', 'bounceCommand', 'notify', 'delayWarning', 'deadAfter', 'deadCoolOff', 'deadMaxCoolOff',
];

export class ConfigError extends SpoolError {
  constructor(message: string) {
    super(message, 'SPOOL_ERR_CONFIG');
    this.name = 'ConfigError';
  }
}

type Value = string | number | boolean | string[];

function parseValue(s: Setting, raw: Value, source: string): Value {
  if (s.kind === 'list') {
    const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
    return items.map((x) => x.trim()).filter((x) => x !== '');
  }
  if (s.kind === 'flag') {
    if (typeof raw === 'boolean') return raw;
    if (/^(1|true|yes|on)$/i.test(String(raw))) return true;
    if (/^(0|false|no|off)$/i.test(String(raw))) return false;
    throw new ConfigError(`${source}: ${JSON.stringify(String(raw))} is not true or false`);
  }
  if (Array.isArray(raw) || typeof raw === 'boolean') throw new ConfigError(`${source}: expected a ${s.kind}, not ${JSON.stringify(raw)}`);
  if (s.kind === 'path') {
    if (String(raw).trim() === '') throw new ConfigError(`${source}: the path must not be empty`);
    return String(raw);
  }
  if (s.kind === 'secret' || s.kind === 'command') return String(raw).trim();
  if (s.kind === 'address') {
    const text = String(raw).trim();
    if (text !== '' && !/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):?\d{1,5}$/.test(text)) throw new ConfigError(`${source}: ${JSON.stringify(text)} is not host:port (e.g. 127.0.0.1:9464)`);
    return text;
  }
  if (s.kind === 'url') {
    const text = String(raw).trim();
    if (text === '') return '';
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ConfigError(`${source}: ${JSON.stringify(text)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${source}: only http and https URLs`);
    return text;
  }
  if (s.kind === 'choice') {
    if (!s.choices!.includes(String(raw))) throw new ConfigError(`${source}: ${JSON.stringify(String(raw))} is not one of ${s.choices!.join(', ')}`);
    return String(raw);
  }
  let value: number;
  try {
    value =
      typeof raw === 'number' ? raw
      : s.kind === 'duration' ? parseDuration(raw)
      : s.kind === 'size' ? parseSize(raw)
      : /^\s*\d+\s*$/.test(raw) ? Number(raw)
      : NaN;
  } catch (err) {
    throw new ConfigError(`${source}: ${(err as Error).message}`);
  }
  const bound = (n: number) => (s.kind === 'duration' ? formatDuration(n) : String(n));
  const expected = `${s.kind === 'count' ? 'a whole number' : `a ${s.kind}`} from ${bound(s.min)} to ${bound(s.max)}`;
  if (Number.isNaN(value)) throw new ConfigError(`${source}: ${JSON.stringify(String(raw))} is not ${s.kind === 'count' ? 'a whole number' : `a ${s.kind}`}; expected ${expected}`);
  if (!Number.isInteger(value) || value < s.min || value > s.max) throw new ConfigError(`${source}: ${JSON.stringify(String(raw))} is out of range; expected ${expected}`);
  return value;
}

/**
 * Reads a config file: a JSON object of settings, by option name
 * (`"per-destination"`) or by key (`"perDestination"`), values as on the
 * command line (`"30s"`) or as numbers.
 */
export type SettingValues = Partial<Record<keyof Config, Value>> & { destinations?: unknown };

export function readConfigFile(file: string): SettingValues {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message.split('\n')[0]})`}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a JSON object of settings`);
  const values: SettingValues = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (name === 'destinations') {
      values.destinations = value;
      continue;
    }
    const s = SETTINGS.find((x) => x.flag === name || x.key === name);
    if (!s) throw new ConfigError(`${file}: unknown setting ${JSON.stringify(name)}; known: ${SETTINGS.map((x) => x.flag).join(', ')}`);
    const ok = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
    if (!ok) throw new ConfigError(`${file}: ${name} must be a string, a number, true/false or a list of strings`);
    values[s.key] = value;
  }
  return values;
}

/**
 * Settles the configuration: defaults, then the config file, then the
 * environment, then command-line options (keyed by setting, as commander
 * gives them).
 */
export function resolveConfig(options: SettingValues, env: NodeJS.ProcessEnv = process.env, file: { path: string; values: SettingValues } | null = null): Config {
  const config: Record<string, unknown> = { ...DEFAULTS };
  for (const s of SETTINGS) {
    const fromFile = file?.values[s.key];
    if (fromFile !== undefined) config[s.key] = parseValue(s, fromFile, `${file!.path}: ${s.flag}`);
    const fromEnv = env[s.env];
    if (fromEnv !== undefined && fromEnv !== '') config[s.key] = parseValue(s, fromEnv, s.env);
    const fromFlag = options[s.key];
    if (fromFlag !== undefined) config[s.key] = parseValue(s, fromFlag, `--${s.flag}`);
  }
  const c = config as unknown as Config;
  // Under systemd, LoadCredential=signing-secret:FILE hands the secrets over without a path in the unit's options.
  const credential = env.CREDENTIALS_DIRECTORY ? path.join(env.CREDENTIALS_DIRECTORY, 'signing-secret') : '';
  if (!c.signingSecretFile && !c.signingSecret && credential && existsSync(credential)) c.signingSecretFile = credential;
  c.signingKeys = signingKeys(c.signingSecretFile, c.signingSecret, c.signingSecretFile ? c.signingSecretFile : 'signing-secret');
  c.destinationSettings = parseDestinationSettings(file?.values.destinations, file?.path ?? 'config');
  const kinds = ['delivered', 'delayed', 'recovered'];
  for (const k of c.notify) if (!kinds.includes(k)) throw new ConfigError(`notify: ${JSON.stringify(k)} is not one of ${kinds.join(', ')} (bounces are always announced)`);
  if (c.minBackoff > c.maxBackoff) throw new ConfigError(`min-backoff (${formatDuration(c.minBackoff)}) is above max-backoff (${formatDuration(c.maxBackoff)})`);
  if (c.perDestination > c.concurrency) c.perDestination = c.concurrency;
  if (c.deadCoolOff > c.deadMaxCoolOff) throw new ConfigError(`dead-cool-off (${c.deadCoolOff} ms) is above dead-max-cool-off (${c.deadMaxCoolOff} ms)`);
  return c;
}

function signingKeys(file: string, inline: string, source: string): Buffer[] {
  let text = inline;
  if (file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`signing-secret-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  }
  if (text.trim() === '') return [];
  try {
    return parseSigningSecrets(text, source);
  } catch (err) {
    if (err instanceof SigningSecretError) throw new ConfigError(err.message);
    throw err;
  }
}

const RULE_FIELDS = ['match', 'concurrency', 'adaptive', 'rps', 'timeout', 'minBackoff', 'maxBackoff', 'maxAttempts', 'signingSecret', 'signingSecretFile', 'headers'];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The config file's "destinations": a list of objects, each with `match` (a
 * pattern or a list of them, as in allow-destinations) and any of the
 * per-destination settings. Values take the same forms as the options.
 */
export function parseDestinationSettings(raw: unknown, source: string): DestinationSettings[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`${source}: destinations must be a list of objects`);
  return raw.map((rule: unknown, i) => {
    const where = `${source}: destinations[${i}]`;
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new ConfigError(`${where} must be an object`);
    const r = rule as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!RULE_FIELDS.includes(k)) throw new ConfigError(`${where}: unknown field ${JSON.stringify(k)}; known: ${RULE_FIELDS.join(', ')}`);
    const match = typeof r.match === 'string' ? [r.match] : Array.isArray(r.match) && r.match.every((m) => typeof m === 'string') ? (r.match as string[]) : null;
    if (!match || match.length === 0) throw new ConfigError(`${where}: match must be a host pattern or a list of them`);
    const out: DestinationSettings = { match };
    const setting = (key: keyof Config) => SETTINGS.find((s) => s.key === key)!;
    const num = (key: 'concurrency' | 'timeout' | 'minBackoff' | 'maxBackoff' | 'maxAttempts') => {
      if (r[key] === undefined) return;
      out[key] = parseValue(setting(key), r[key] as Value, `${where}: ${key}`) as number;
    };
    num('concurrency');
    num('timeout');
    num('minBackoff');
    num('maxBackoff');
    num('maxAttempts');
    if ((out.minBackoff ?? 0) > (out.maxBackoff ?? Infinity)) throw new ConfigError(`${where}: minBackoff is above maxBackoff`);
    if (r.adaptive !== undefined) {
      if (typeof r.adaptive !== 'boolean') throw new ConfigError(`${where}: adaptive must be true or false`);
      out.adaptive = r.adaptive;
    }
    if (r.rps !== undefined) {
      const rps = Number(r.rps);
      if (!Number.isFinite(rps) || rps <= 0 || rps > 100_000) throw new ConfigError(`${where}: rps must be a number of requests per second above 0`);
      out.rps = rps;
    }
    if (r.signingSecret !== undefined || r.signingSecretFile !== undefined) {
      const keys = signingKeys(typeof r.signingSecretFile === 'string' ? r.signingSecretFile : '', typeof r.signingSecret === 'string' ? r.signingSecret : '', `${where}: signingSecret`);
      if (keys.length === 0) throw new ConfigError(`${where}: signingSecret is empty`);
      out.signingKeys = keys;
    }
    if (r.headers !== undefined) {
      if (typeof r.headers !== 'object' || r.headers === null || Array.isArray(r.headers)) throw new ConfigError(`${where}: headers must be an object of name: value`);
      out.headers = Object.entries(r.headers as Record<string, unknown>).map(([name, value]) => {
        if (!HEADER_NAME.test(name) || typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new ConfigError(`${where}: header ${JSON.stringify(name)} must be a token with a one-line string value`);
        return [name, value] as [string, string];
      });
    }
    return out;
  });
}

/** The settings as they may be logged: secrets and added header values hidden. */
export function publicSettings(config: Config): Record<string, unknown> {
  const { spool: _spool, signingKeys, signingSecret, destinationSettings, ...rest } = config;
  return {
    ...rest,
    signing: signingKeys.length > 0 ? `${signingKeys.length} secret(s)` : 'off',
    ...(signingSecret && { signingSecret: '[redacted]' }),
    destinationSettings: destinationSettings.map(({ signingKeys: keys, headers, ...r }) => ({
      ...r,
      ...(keys && { signing: `${keys.length} secret(s)` }),
      ...(headers && { headers: headers.map(([name]) => `${name}: [redacted]`) }),
    })),
  };
}
