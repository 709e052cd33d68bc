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
import { Agent, type Dispatcher } from 'undici';
import type { AttemptResult } from './classify.js';
import { guardedLookup } from './guard.js';
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

  send(message: Message, opts: SendOptions): Promise<AttemptResult> {
    const headers: string[] = [];
    const given = new Set<string>();
    const signing = opts.signingKeys !== undefined && opts.signingKeys.length > 0;
    for (const [name, value] of message.headers) {
      const lower = name.toLowerCase();
      // Signed requests carry the daemon's signature headers, never a producer's.
      if (signing && SIGNATURE_HEADERS.has(lower)) continue;
      given.add(lower);
      headers.push(name, value);
    }
    for (const [name, value] of opts.headers ?? []) if (!given.has(name.toLowerCase())) headers.push(name, value);
    if (signing) for (const [name, value] of signatureHeaders(opts.id, Math.floor(Date.now() / 1000), message.body, opts.signingKeys!)) headers.push(name, value);
    // Retries and crash recovery can repeat a request; the key lets the
    // receiver drop the repeat.
    if (!given.has('idempotency-key')) headers.push('idempotency-key', opts.id);

    return new Promise<AttemptResult>((resolve) => {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      let controller: Dispatcher.DispatchController | null = null;
      let settled = false;
      let status = 0;
      let retryAfter: string | undefined;
      let excerpt = '';
      let read = 0;
      const answered = (): AttemptResult => ({ kind: 'response', status, retryAfter, excerpt: excerpt.replace(/\s+/g, ' ').trim().slice(0, 200), elapsed: elapsed() });
      const settle = (result: AttemptResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      // One timer over the whole exchange (undici's own timeouts are per
      // phase, and restart with every body chunk): named by the phase it cut.
      const timer = setTimeout(() => {
        settle(
          status === 0
            ? { kind: 'error', code: 'HEADERS_TIMEOUT', message: `no response headers within ${opts.timeout} ms`, elapsed: elapsed() }
            : { kind: 'error', code: 'BODY_TIMEOUT', message: `response body not complete within ${opts.timeout} ms`, elapsed: elapsed() },
        );
        controller?.abort(new Error('timed out'));
      }, opts.timeout);
      try {
        this.agent.dispatch(
          {
            origin: message.origin,
            path: message.url.pathname + message.url.search,
            method: message.method as Dispatcher.HttpMethod,
            headers,
            body: message.body ?? null,
            headersTimeout: opts.timeout,
            bodyTimeout: opts.timeout,
          },
          {
            onRequestStart(c) {
              controller = c;
              // Still queued for a connection when its time ran out: never sent.
              if (settled) c.abort(new Error('timed out'));
            },
            onResponseStart(_c, statusCode, responseHeaders) {
              if (statusCode < 200) return; // 1xx: informational, the answer is still to come
              status = statusCode;
              const value = responseHeaders['retry-after'];
              retryAfter = Array.isArray(value) ? value[0] : value;
            },
            onResponseData(c, chunk) {
              if (excerpt.length < EXCERPT_BYTES) excerpt += chunk.subarray(0, EXCERPT_BYTES - excerpt.length).toString('utf8');
              read += chunk.length;
              if (read > DRAIN_BYTES) {
                // Not worth draining for keep-alive: the status is the answer; drop this connection.
                settle(answered());
                c.abort(new Error('response body cut'));
              }
            },
            onResponseEnd() {
              settle(answered());
            },
            onResponseError(_c, err) {
              const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
              // undici's parser errors carry no code, only a class name.
              const code = e.code ?? e.cause?.code ?? (e.name && e.name !== 'Error' ? e.name : 'ERROR');
              settle({ kind: 'error', code, message: String(e.message ?? err), elapsed: elapsed() });
            },
          },
        );
      } catch (err) {
        settle({ kind: 'error', code: (err as { code?: string }).code ?? 'ERROR', message: String((err as Error).message ?? err), elapsed: elapsed() });
      }
    });
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
