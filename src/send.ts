/**
 * One HTTP attempt with undici: keep-alive pools per origin (undici's Agent
 * keeps one Pool per origin, capped at the per-destination limit), a timeout
 * over the whole exchange, and a response body read only up to a bound.
 *
 * Never throws: every failure becomes an AttemptResult with an error code, so
 * the classifier sees every attempt.
 *
 * A response counts once its body has ended, or once DRAIN_BYTES of it have
 * arrived (an endless body is cut there: memory stays flat, and the status
 * line is the receiver's answer). A body that breaks off or stalls before
 * that is a failed attempt: the receiver may not have finished either.
 */
import { Agent } from 'undici';
import type { AttemptResult } from './classify.js';
import { guardedLookup } from './destinations.js';
import type { Message } from './message.js';
import { signatureHeaders } from './signing.js';

/** Kept from the response body for the bounce reason. */
const EXCERPT_BYTES = 512;
/** Read beyond this and the connection is dropped rather than drained. */
const DRAIN_BYTES = 64 * 1024;
const CONNECT_TIMEOUT = 10_000;

export interface SendOptions {
  id: string;
  timeout: number;
  /** Standard Webhooks keys: sign this attempt with each (see signing.ts). */
  signingKeys?: readonly Buffer[];
  /** The destination's added headers; the message's own of the same name win. */
  headers?: readonly [string, string][];
}

const SIGNATURE_HEADERS = new Set(['webhook-id', 'webhook-timestamp', 'webhook-signature']);

export class Sender {
  private readonly agent: Agent;

  constructor(opts: { perDestination: number; timeout: number; blockPrivate: boolean; destinationSettings?: readonly { concurrency?: number }[] }) {
    this.agent = new Agent({
      // undici keeps one pool per origin: sized for the largest per-destination limit.
      connections: Math.max(opts.perDestination, ...(opts.destinationSettings ?? []).map((d) => d.concurrency ?? 0)),
      pipelining: 1,
      connect: { timeout: Math.min(CONNECT_TIMEOUT, opts.timeout), ...(opts.blockPrivate && { lookup: guardedLookup }) },
      headersTimeout: opts.timeout,
      bodyTimeout: opts.timeout,
    });
  }

  async send(message: Message, opts: SendOptions): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const controller = new AbortController();
    let timedOut = false;
    let phase: 'headers' | 'body' = 'headers';
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeout);
    try {
      const headers: string[] = [];
      const given = new Set<string>();
      const signing = opts.signingKeys && opts.signingKeys.length > 0;
      for (const [name, value] of message.headers) {
        const lower = name.toLowerCase();
        // Signed requests carry the daemon's signature headers, never a producer's.
        if (signing && SIGNATURE_HEADERS.has(lower)) continue;
        given.add(lower);
        headers.push(name, value);
      }
      for (const [name, value] of opts.headers ?? []) if (!given.has(name.toLowerCase())) headers.push(name, value);
      const hasKey = given.has('idempotency-key');
      if (signing) for (const [name, value] of signatureHeaders(opts.id, Math.floor(Date.now() / 1000), message.body, opts.signingKeys!)) headers.push(name, value);
      // Retries and crash recovery can repeat a request; the key lets the
      // receiver drop the repeat.
      if (!hasKey) headers.push('idempotency-key', opts.id);

      const res = await this.agent.request({
        origin: message.origin,
        path: message.url.pathname + message.url.search,
        method: message.method as 'POST',
        headers,
        body: message.body,
        signal: controller.signal,
        headersTimeout: opts.timeout,
        bodyTimeout: opts.timeout,
      });

      phase = 'body';
      let excerpt = '';
      let read = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (excerpt.length < EXCERPT_BYTES) excerpt += chunk.subarray(0, EXCERPT_BYTES - excerpt.length).toString('utf8');
        read += chunk.length;
        if (read > DRAIN_BYTES) {
          // Not worth draining for keep-alive: drop this connection instead.
          res.body.destroy();
          break;
        }
      }
      const retryAfter = res.headers['retry-after'];
      return {
        kind: 'response',
        status: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        excerpt: excerpt.replace(/\s+/g, ' ').trim().slice(0, 200),
        elapsed: elapsed(),
      };
    } catch (err) {
      // The whole-request timer fired: name the part of the exchange it cut.
      if (timedOut) {
        return phase === 'headers'
          ? { kind: 'error', code: 'HEADERS_TIMEOUT', message: `no response headers within ${opts.timeout} ms`, elapsed: elapsed() }
          : { kind: 'error', code: 'BODY_TIMEOUT', message: `response body not complete within ${opts.timeout} ms`, elapsed: elapsed() };
      }
      const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
      // undici's parser errors carry no code, only a class name.
      const code = e.code ?? e.cause?.code ?? (e.name && e.name !== 'Error' ? e.name : 'ERROR');
      return { kind: 'error', code, message: String(e.message ?? err), elapsed: elapsed() };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Cuts every request in flight (they fail with UND_ERR_DESTROYED and are deferred). */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  /** Takes no new requests; those in flight finish, then connections close. */
  async retire(): Promise<void> {
    await this.agent.close();
  }
}
