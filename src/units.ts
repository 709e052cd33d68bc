/**
 * Durations and sizes as operators write them: `250ms`, `30s`, `5m`, `1h`,
 * `2d` or plain milliseconds; `1048576`, `512k`, `1m`, `1g` or `1MiB` for bytes.
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(String(text));
  if (!m) throw new RangeError(`invalid duration ${JSON.stringify(text)}: use milliseconds or a unit, e.g. 250ms, 30s, 5m, 1h, 2d`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']!;
  if (!Number.isFinite(ms)) throw new RangeError(`invalid duration ${JSON.stringify(text)}`);
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || !(unit in SIZE_UNITS)) throw new RangeError(`invalid size ${JSON.stringify(text)}: use bytes or a unit, e.g. 1048576, 512k, 1MiB`);
  return Math.round(Number(m[1]) * SIZE_UNITS[unit]!);
}

/** A duration as an operator writes it: 250ms, 30s, 5m, 1h, 2d (the largest unit that divides it). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** "in 4m", "3h ago": for tables read by people. */
export function formatRelative(ms: number): string {
  const abs = Math.abs(ms);
  const text =
    abs < 1000 ? `${Math.round(abs)}ms`
    : abs < 60_000 ? `${Math.round(abs / 1000)}s`
    : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m`
    : abs < 86_400_000 ? `${Math.round(abs / 3_600_000)}h`
    : `${Math.round(abs / 86_400_000)}d`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}
