/**
 * A fresh process's first request costs about 20 ms more than the ones after
 * it: undici compiles its HTTP parser (llhttp, WebAssembly) on its first
 * connection, and loads and compiles the rest of its send path. Without a
 * warm-up the first message after every start pays it, and with it the tail
 * of a steady rate. One request to a throwaway server on 127.0.0.1 pays it
 * before the daemon says it is ready; the parser is undici's, shared by every
 * Agent in the process.
 *
 * A side path: bounded in time, and never fails. A sandbox that forbids
 * listening or connecting only means the first message pays instead.
 */
import http from 'node:http';
import { Agent, request } from 'undici';

export async function warmUp(limitMs = 1000): Promise<void> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const agent = new Agent({ connections: 1 });
  const limit = AbortSignal.timeout(limitMs);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as { port: number };
    const res = await request(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' }, dispatcher: agent, signal: limit });
    await res.body.text();
  } catch {
    // The first message pays instead.
  } finally {
    // Closed before ready: nothing of it may hold a stopping daemon's event loop.
    await agent.destroy().catch(() => {});
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
