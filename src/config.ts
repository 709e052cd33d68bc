/**
 * The daemon's settings: every one with its default and its bounds, in one
 * place. A bad value stops the daemon with a message saying how to fix it;
 * nothing is silently replaced by a default.
 */
import { readFileSync } from 'node:fs';
import { parseDuration, parseSize } from './units.js';

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
  /** Requests in flight at once, all destinations together. */
  concurrency: number;
  /** Requests in flight at once to one origin (scheme://host:port). */
  perDestination: number;
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
  /** Share the spool with other daemons (leases) instead of locking it. */
  shared: boolean;
  /** In a shared spool: a daemon silent for this long is dead, and its claims are recovered. */
  leaseTtl: number;
}

export const DEFAULTS = {
  spool: './spool',
  concurrency: 64,
  perDestination: 16,
  minBackoff: 30_000,
  maxBackoff: 3_600_000,
  maxAttempts: 100,
  maxAge: 5 * 86_400_000,
  timeout: 30_000,
  maxSize: 1024 * 1024,
  scanInterval: 2_000,
  shutdownGrace: 8_000,
  allowDestinations: [] as string[],
  denyDestinations: [] as string[],
  blockPrivate: false,
  logLevel: 'info',
  logFormat: 'auto',
  shared: false,
  leaseTtl: 30_000,
} satisfies Config;

type Kind = 'count' | 'duration' | 'size' | 'path' | 'choice' | 'list' | 'flag';
interface Setting {
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
  { key: 'spool', flag: 'spool', env: 'SPOOL_DIR', kind: 'path', min: 0, max: 0, help: 'spool directory' },
  { key: 'concurrency', flag: 'concurrency', env: 'SPOOLD_CONCURRENCY', kind: 'count', min: 1, max: 10_000, help: 'requests in flight at once, all destinations' },
  { key: 'perDestination', flag: 'per-destination', env: 'SPOOLD_PER_DESTINATION', kind: 'count', min: 1, max: 10_000, help: 'requests in flight at once to one origin' },
  { key: 'minBackoff', flag: 'min-backoff', env: 'SPOOLD_MIN_BACKOFF', kind: 'duration', min: 0, max: 365 * 86_400_000, help: 'delay before the first retry; doubles per attempt' },
  { key: 'maxBackoff', flag: 'max-backoff', env: 'SPOOLD_MAX_BACKOFF', kind: 'duration', min: 0, max: 365 * 86_400_000, help: 'cap on the retry delay (a Retry-After may ask for more)' },
  { key: 'maxAttempts', flag: 'max-attempts', env: 'SPOOLD_MAX_ATTEMPTS', kind: 'count', min: 0, max: 999_999, help: 'requests in total before a message bounces (0: no limit)' },
  { key: 'maxAge', flag: 'max-age', env: 'SPOOLD_MAX_AGE', kind: 'duration', min: 0, max: 3650 * 86_400_000, help: 'a failing message older than this bounces' },
  { key: 'timeout', flag: 'timeout', env: 'SPOOLD_TIMEOUT', kind: 'duration', min: 1, max: 3_600_000, help: 'whole-request timeout (connect, headers, body)' },
  { key: 'maxSize', flag: 'max-size', env: 'SPOOLD_MAX_SIZE', kind: 'size', min: 2, max: 1024 ** 3, help: 'largest message file accepted (bytes, or 512k, 1MiB)' },
  { key: 'scanInterval', flag: 'scan-interval', env: 'SPOOLD_SCAN_INTERVAL', kind: 'duration', min: 10, max: 3_600_000, help: 'safety-net rescan of incoming/ for missed file events' },
  { key: 'shutdownGrace', flag: 'shutdown-grace', env: 'SPOOLD_SHUTDOWN_GRACE', kind: 'duration', min: 0, max: 3_600_000, help: 'time in-flight requests get to finish on SIGTERM' },
  { key: 'allowDestinations', flag: 'allow-destinations', env: 'SPOOLD_ALLOW_DESTINATIONS', kind: 'list', min: 0, max: 0, help: 'only these hosts, comma-separated: example.com, *.example.com, https://example.com:8443' },
  { key: 'denyDestinations', flag: 'deny-destinations', env: 'SPOOLD_DENY_DESTINATIONS', kind: 'list', min: 0, max: 0, help: 'never these hosts (same patterns)' },
  { key: 'blockPrivate', flag: 'block-private', env: 'SPOOLD_BLOCK_PRIVATE', kind: 'flag', min: 0, max: 0, help: 'refuse loopback, private and link-local addresses, checked after DNS resolution' },
  { key: 'logLevel', flag: 'log-level', env: 'SPOOLD_LOG_LEVEL', kind: 'choice', min: 0, max: 0, choices: ['debug', 'info', 'warn', 'error'], help: 'least severe log lines written' },
  { key: 'shared', flag: 'shared', env: 'SPOOLD_SHARED', kind: 'flag', min: 0, max: 0, help: 'share the spool with other daemons started with --shared, on this host or others (leases instead of the lock)' },
  { key: 'leaseTtl', flag: 'lease-ttl', env: 'SPOOLD_LEASE_TTL', kind: 'duration', min: 300, max: 3_600_000, help: 'with --shared: a daemon that has not renewed its lease for this long is dead; its claims are delivered by the others' },
  { key: 'logFormat', flag: 'log-format', env: 'SPOOLD_LOG_FORMAT', kind: 'choice', min: 0, max: 0, choices: ['auto', 'json', 'pretty'], help: 'json lines, or pretty for people (auto: pretty on a terminal)' },
];

/** Settings a SIGHUP can change; the rest need a restart. */
export const RELOADABLE: readonly (keyof Config)[] = [
  'concurrency', 'perDestination', 'minBackoff', 'maxBackoff', 'maxAttempts', 'maxAge', 'timeout', 'maxSize', 'scanInterval', 'shutdownGrace',
  'allowDestinations', 'denyDestinations', 'blockPrivate', 'logLevel',
];

export class ConfigError extends Error {
  readonly code = 'SPOOL_ERR_CONFIG';
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
    if (String(raw).trim() === '') throw new ConfigError(`${source}: the spool directory must not be empty`);
    return String(raw);
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
  if (!Number.isInteger(value) || value < s.min || value > s.max) {
    throw new ConfigError(`${source}: ${JSON.stringify(String(raw))} is out of range; expected ${s.kind === 'count' ? 'a whole number' : `a ${s.kind}`} from ${s.min} to ${s.max}`);
  }
  return value;
}

/**
 * Reads a config file: a JSON object of settings, by option name
 * (`"per-destination"`) or by key (`"perDestination"`), values as on the
 * command line (`"30s"`) or as numbers.
 */
export type SettingValues = Partial<Record<keyof Config, Value>>;

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
  const config: Record<string, Value> = { ...DEFAULTS };
  for (const s of SETTINGS) {
    const fromFile = file?.values[s.key];
    if (fromFile !== undefined) config[s.key] = parseValue(s, fromFile, `${file!.path}: ${s.flag}`);
    const fromEnv = env[s.env];
    if (fromEnv !== undefined && fromEnv !== '') config[s.key] = parseValue(s, fromEnv, s.env);
    const fromFlag = options[s.key];
    if (fromFlag !== undefined) config[s.key] = parseValue(s, fromFlag, `--${s.flag}`);
  }
  const c = config as unknown as Config;
  if (c.minBackoff > c.maxBackoff) throw new ConfigError(`min-backoff (${c.minBackoff} ms) is above max-backoff (${c.maxBackoff} ms)`);
  if (c.perDestination > c.concurrency) c.perDestination = c.concurrency;
  return c;
}
