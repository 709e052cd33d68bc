/**
 * Noticing new messages in incoming/: chokidar's events for speed, a periodic
 * rescan (in the queue manager) for safety. File events are only a hint:
 * watchers are known to miss events under bursts or when inotify watches run
 * out, and a missed event must delay a message, never lose it.
 */
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import type { Spool } from './layout.js';
import { parseIncomingName } from './names.js';

export async function watchIncoming(spool: Spool, onName: (name: string) => void, onError: (err: unknown) => void): Promise<FSWatcher> {
  const { watch } = await import('chokidar');
  const dir = spool.dir('incoming');
  const watcher = watch(dir, {
    ignoreInitial: true,
    depth: 0,
    // Temp files of write-file-atomic (`x.json.1234`), dot-files and swap
    // files are never looked at, not even stat()ed.
    ignored: (p: string) => p !== dir && parseIncomingName(path.basename(p)) === null,
  });
  watcher.on('add', (p) => onName(path.basename(p)));
  // chokidar reports a name re-added soon after it vanished as a change.
  watcher.on('change', (p) => onName(path.basename(p)));
  watcher.on('error', onError);
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return watcher;
}
