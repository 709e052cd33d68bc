/**
 * Standard Webhooks signatures (standardwebhooks.com), so receivers can check
 * that a request came from this sender and was not replayed much later:
 *
 *   webhook-id         the message id (the same on every attempt)
 *   webhook-timestamp  seconds since the epoch, set at each attempt
 *   webhook-signature  v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">,
 *                      one per secret, space-separated (secret rotation)
 *
 * Secrets are `whsec_` followed by base64 (the spec's form); the key is the
 * decoded bytes. They come from the daemon's configuration only, never from
 * a message file: a producer must not choose what the daemon signs with.
 */
import { createHmac } from 'node:crypto';

export class SigningSecretError extends Error {}

/** One or more secrets separated by spaces or commas; each `whsec_<base64>`. */
export function parseSigningSecrets(raw: string, source: string): Buffer[] {
  const items = raw.split(/[\s,]+/).filter(Boolean);
  if (items.length === 0) throw new SigningSecretError(`${source}: no signing secret given`);
  return items.map((item, i) => {
    const b64 = item.startsWith('whsec_') ? item.slice('whsec_'.length) : item;
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
    // The spec asks for 24 to 64 random bytes; fewer than 16 is not a secret.
    if (key.length < 16) throw new SigningSecretError(`${source}: secret ${i + 1} is not whsec_ followed by base64 of at least 16 bytes`);
    return key;
  });
}

export function signatureHeaders(id: string, timestampSeconds: number, body: Buffer | null, keys: readonly Buffer[]): [string, string][] {
  const ts = String(timestampSeconds);
  const signatures = keys.map((key) => {
    const mac = createHmac('sha256', key).update(`${id}.${ts}.`);
    if (body) mac.update(body);
    return `v1,${mac.digest('base64')}`;
  });
  return [
    ['webhook-id', id],
    ['webhook-timestamp', ts],
    ['webhook-signature', signatures.join(' ')],
  ];
}
