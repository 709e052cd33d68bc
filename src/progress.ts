/**
 * Progress where a person waits: a one-line counter on standard error while a
 * spoolctl command walks a large queue. Only on a terminal (never in a pipe
 * or a log), redrawn at most ten times a second, erased when done.
 */
export interface Progress {
  /** One more message read in `queue`. */
  tick(queue: string): void;
  done(): void;
}

const REDRAW_MS = 100;

export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { tick: () => undefined, done: () => undefined };
  let count = 0;
  let drawn = 0;
  let shown = false;
  const started = Date.now();
  return {
    tick(queue) {
      count++;
      const now = Date.now();
      // Quick commands print nothing: the line appears only after a moment.
      if (now - drawn < REDRAW_MS || now - started < 2 * REDRAW_MS) return;
      drawn = now;
      shown = true;
      const rate = Math.round((count * 1000) / Math.max(1, now - started));
      stream.write(`\r\x1b[K${label}: ${count.toLocaleString('en')} messages read (${queue}/), ${rate.toLocaleString('en')}/s`);
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}
