/**
 * What a message file may say, checked once and turned into the request the
 * daemon sends. Pure: no I/O. A message that fails here can never succeed, so
 * the caller bounces it with the returned reason; it is never deleted.
 *
 * Reasons never quote the file's content: a file may be a link to a secret.
 */
import { parseDuration } from '../units.js';

export interface Message {
  url: URL;
  origin: string;
  method: string;
  /** Header pairs as given, plus content-type for JSON bodies. */
  headers: [string, string][];
  body: Buffer | null;
  /** Per-message overrides of the daemon's delivery policy. */
  maxAttempts?: number;
  /** Absolute expiry, epoch ms. */
  expiresAt?: number;
  /** Per-message max age, ms (counted from arrival). */
  maxAge?: number;
  timeout?: number;
  /** Messages with the same key are delivered one at a time, in arrival order (see ordering.ts). */
  orderingKey?: string;
  /** Not sent before this time, epoch ms ("deliverAt"). */
  deliverAt?: number;
  /** Not sent before this long after the file was written, ms ("delay"). */
  delay?: number;
}

export type Validation = { ok: true; message: Message } | { ok: false; reason: string };

const KNOWN_FIELDS = new Set(['url', 'method', 'headers', 'body', 'maxAttempts', 'expiresAt', 'maxAge', 'timeout', 'orderingKey', 'deliverAt', 'delay', 'meta']);
export const MAX_ORDERING_KEY = 256;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Header values may not smuggle a second header or a NUL. */
const UNSAFE_VALUE = /[\r\n\0]/;
/** Set by the HTTP client from the connection and the body, never by a message. */
const RESERVED_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer', 'proxy-connection']);
const METHODS_REFUSED = new Set(['CONNECT', 'TRACE', 'TRACK']);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(reason: string): Validation {
  return { ok: false, reason };
}

function timeField(v: unknown): number | null {
  const t = typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? (/^\d+$/.test(v) ? Number(v) : Date.parse(v)) : NaN;
  return Number.isFinite(t) && t > 0 ? t : null;
}

/**
 * When a message may first be sent (wall ms), or null for at once. A delay
 * counts from the file's writing, so a hand-written file means what it says
 * however long it waited in incoming/.
 */
export function scheduledAt(message: Message, writtenAt: number): number | null {
  if (message.deliverAt !== undefined) return message.deliverAt;
  if (message.delay !== undefined) return writtenAt + message.delay;
  return null;
}

function durationField(v: unknown, name: string): number | string {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  if (typeof v === 'string') {
    try {
      const ms = parseDuration(v);
      if (ms > 0) return ms;
    } catch {
      /* reported below */
    }
  }
  return `"${name}" must be a positive duration (milliseconds, or e.g. "30s", "2h")`;
}

export function validateMessage(input: unknown): Validation {
  if (!isPlainObject(input)) return fail('message is not a JSON object');
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) return fail(`unknown field ${JSON.stringify(key.slice(0, 40))} (put your own data under "meta")`);
  }

  if (typeof input.url !== 'string' || input.url === '') return fail('"url" is missing or not a string');
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    return fail('"url" is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(`"url" scheme ${url.protocol} is not allowed: only http: and https:`);
  if (url.username || url.password) return fail('"url" carries credentials: send them in an Authorization header instead');
  url.hash = '';

  let method = 'POST';
  if (input.method !== undefined) {
    if (typeof input.method !== 'string' || !TOKEN.test(input.method)) return fail('"method" is not a valid HTTP method');
    method = input.method.toUpperCase();
    if (METHODS_REFUSED.has(method)) return fail(`"method" ${method} is not allowed`);
  }

  const headers: [string, string][] = [];
  if (input.headers !== undefined) {
    if (!isPlainObject(input.headers)) return fail('"headers" must be an object of strings');
    for (const [name, value] of Object.entries(input.headers)) {
      if (!TOKEN.test(name)) return fail(`header name ${JSON.stringify(name.slice(0, 40))} is not a valid HTTP token`);
      if (typeof value !== 'string') return fail(`header ${name} must be a string`);
      if (UNSAFE_VALUE.test(value)) return fail(`header ${name} contains CR, LF or NUL`);
      if (RESERVED_HEADERS.has(name.toLowerCase())) return fail(`header ${name} is set by spoold and may not be given`);
      headers.push([name, value]);
    }
  }

  let body: Buffer | null = null;
  if (input.body !== undefined && input.body !== null) {
    if (typeof input.body === 'string') {
      body = Buffer.from(input.body, 'utf8');
    } else {
      body = Buffer.from(JSON.stringify(input.body), 'utf8');
      if (!headers.some(([n]) => n.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
    }
  }
  if (body && (method === 'GET' || method === 'HEAD')) return fail(`a ${method} request cannot carry a body`);

  const message: Message = { url, origin: url.origin, method, headers, body };

  if (input.maxAttempts !== undefined) {
    const n = input.maxAttempts;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) return fail('"maxAttempts" must be a whole number (0: no limit)');
    message.maxAttempts = n;
  }
  for (const field of ['expiresAt', 'deliverAt'] as const) {
    if (input[field] === undefined) continue;
    const t = timeField(input[field]);
    if (t === null) return fail(`"${field}" must be epoch milliseconds or an ISO 8601 date`);
    message[field] = t;
  }
  if (input.delay !== undefined) {
    if (message.deliverAt !== undefined) return fail('give "deliverAt" or "delay", not both');
    const v = durationField(input.delay, 'delay');
    if (typeof v === 'string') return fail(v);
    message.delay = v;
  }
  if (message.deliverAt !== undefined && message.expiresAt !== undefined && message.deliverAt >= message.expiresAt) {
    return fail('"deliverAt" is not before "expiresAt": it would expire before its first attempt');
  }
  for (const field of ['maxAge', 'timeout'] as const) {
    if (input[field] === undefined) continue;
    const v = durationField(input[field], field);
    if (typeof v === 'string') return fail(v);
    message[field] = v;
  }
  if (input.orderingKey !== undefined) {
    const k = input.orderingKey;
    if (typeof k !== 'string' || k === '' || k.length > MAX_ORDERING_KEY) return fail(`"orderingKey" must be a string of 1 to ${MAX_ORDERING_KEY} characters`);
    message.orderingKey = k;
  }
  return { ok: true, message };
}
