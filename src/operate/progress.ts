/**
 * Progress where a person waits: a one-line bar on standard error while a
 * spoolctl command walks a large queue. Only on a terminal (never in a pipe
 * or a log), redrawn at most ten times a second, erased when done. Where the
 * share walked is known (deferred/, by time bucket) it draws a bar; always,
 * the messages read so far and the rate.
 */
export interface Progress {
  /** One more message read in `queue`; `fraction`: the share of it walked, when known. */
  tick(queue: string, fraction?: number | null): void;
  done(): void;
}

const BAR = 24;

function bar(fraction: number): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * BAR);
  return `[${'#'.repeat(full)}${'.'.repeat(BAR - full)}] ${String(Math.floor(fraction * 100)).padStart(3)}% `;
}

const REDRAW_MS = 100;

export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { tick: () => undefined, done: () => undefined };
  let count = 0;
  let drawn = 0;
  let shown = false;
  const started = Date.now();
  return {
    tick(queue, fraction = null) {
      count++;
      const now = Date.now();
      // Quick commands print nothing: the line appears only after a moment.
      if (now - drawn < REDRAW_MS || now - started < 2 * REDRAW_MS) return;
      drawn = now;
      shown = true;
      const rate = Math.round((count * 1000) / Math.max(1, now - started));
      stream.write(`\r\x1b[K${label}: ${queue}/ ${fraction === null ? '' : bar(fraction)}${count.toLocaleString('en')} messages read, ${rate.toLocaleString('en')}/s`);
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}
