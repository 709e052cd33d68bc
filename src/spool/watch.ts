/**
 * Noticing new messages in incoming/: chokidar's events for speed, a periodic
 * rescan (in the queue manager) for safety. File events are only a hint:
 * watchers are known to miss events under bursts or when inotify watches run
 * out, and a missed event must delay a message, never lose it.
 *
 * chokidar watches the directory only. Left to track the files too, it would
 * stat each new file, put a watch on it, and re-read (and lstat) the whole
 * directory on every burst: measured, that was a third of the daemon's CPU
 * in a 20,000-message drain. Its raw events already carry each new name.
 * While incoming/ holds a backlog the daemon scans it anyway, so the watch is
 * paused then (see IncomingWatch.pause).
 */
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import type { Spool } from './layout.js';

export interface IncomingWatch {
  /** Stop watching while a backlog is being scanned; resume when it is drained. */
  pause(paused: boolean): void;
  close(): Promise<void>;
}

export async function watchIncoming(spool: Spool, onName: (name: string) => void, onError: (err: unknown) => void, startPaused = false): Promise<IncomingWatch> {
  const { watch } = await import('chokidar');
  const dir = spool.dir('incoming');
  const watcher: FSWatcher = watch([], { ignoreInitial: true, depth: 0, ignored: (p: string) => p !== dir });
  watcher.on('raw', (_event, name, details) => {
    if ((details as { watchedPath?: string } | undefined)?.watchedPath === dir && typeof name === 'string') onName(path.basename(name));
  });
  watcher.on('error', onError);
  let paused = startPaused;
  if (!paused) watcher.add(dir);
  return {
    pause(p: boolean) {
      if (p === paused) return;
      paused = p;
      if (p) watcher.unwatch(dir);
      else watcher.add(dir);
    },
    close: () => watcher.close(),
  };
}
