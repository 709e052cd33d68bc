/**
 * The HTTP side (metrics, the status page) must never stop delivery. Its
 * handlers catch what they can and answer 500; this guard is for what
 * escapes them anyway (a throw in a callback, an error event nobody
 * listened to): each request is handled inside `httpSide`, whose context
 * Node keeps through callbacks and promises, so an uncaught exception can be
 * told apart. One from the HTTP side is logged loudly, with its stack, and
 * the daemon goes on; any other is what it always was: fatal.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '../service/log.js';

const httpSide = new AsyncLocalStorage<string>();

/** Runs `fn` (and everything it starts) as the HTTP side's, for `path`. */
export function onHttpSide<T>(path: string, fn: () => T): T {
  return httpSide.run(path, fn);
}

let installed: ((err: Error) => void) | null = null;

export function installHttpGuard(log: Logger): () => void {
  if (installed) process.off('uncaughtException', installed);
  const guard = (err: Error) => {
    const path = httpSide.getStore();
    if (path !== undefined) {
      log.error({ event: 'http-uncaught', path, error: err.message, stack: err.stack }, `an error escaped the status page or metrics (${path}): ${err.message}; delivery goes on`);
      return;
    }
    // Not ours to survive: as without a handler, the stack and exit 1 (the spool recovers at the next start).
    process.stderr.write(`${err.stack ?? String(err)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', guard);
  installed = guard;
  return () => {
    process.off('uncaughtException', guard);
    if (installed === guard) installed = null;
  };
}
