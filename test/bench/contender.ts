/**
 * The client side of each contender, run as its own process so that its CPU
 * is measured apart from the sink's. Reports { cpuMs, ms, ... } over IPC.
 *
 *   ceiling   an in-memory loop POSTing every message (no durability)
 *   produce   spoold's producer: the library's enqueue / enqueueMany
 *   wfa       a producer writing each message straight into incoming/ with
 *             write-file-atomic (its temp file lands in incoming/ too)
 *   bullmq    BullMQ Queue.add + Worker POSTing (redis on REDIS_PORT)
 *   rabbit    amqplib: durable queue, persistent, confirms, prefetch; consumer POSTing
 *
 * With DRAIN=1 the brokers are loaded with every message first; the
 * contender says { loaded: true } and waits for "go" before consuming, so
 * the drain is timed (and its CPU counted) on its own.
 */
import { request, Pool } from 'undici';

const mode = process.argv[2]!;
const N = Number(process.argv[3]);
const CONCURRENCY = Number(process.argv[4] ?? 64);
const target = process.argv[5]!; // sink URL, or spool dir for `produce`
const ratePerSecond = Number(process.env.RATE ?? 0);
/** Put before every message id: a rate row's warm-up (compare.ts WARM_MESSAGES) names its messages apart from the measured ones. */
const PREFIX = process.env.ID_PREFIX ?? '';

function body(i: number): string {
  return JSON.stringify({ t: Date.now(), i, pad: 'x'.repeat(960) });
}

// CPU counted from here: the loader's start-up (tsx compiling this file) is not the contender's.
let cpuStart = process.cpuUsage();

function report(extra: Record<string, unknown>): void {
  const cpu = process.cpuUsage(cpuStart);
  process.send!({ cpuMs: (cpu.user + cpu.system) / 1000, ...extra }, () => process.exit(0));
}

const DRAIN = process.env.DRAIN === '1';

/** Drain mode: say the broker is loaded, wait for the go, and count CPU and time from there. */
async function loaded(): Promise<number> {
  const go = new Promise<void>((r) => process.once('message', () => r()));
  process.send!({ loaded: true });
  await go;
  cpuStart = process.cpuUsage();
  return performance.now();
}

async function pool<T>(count: number, parallel: number, work: (i: number) => Promise<T>): Promise<void> {
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < count; i = next++) {
        if (ratePerSecond > 0) {
          const due = started + (i * 1000) / ratePerSecond;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        await work(i);
      }
    }),
  );
}

async function ceiling(): Promise<void> {
  const p = new Pool(target, { connections: CONCURRENCY });
  const t0 = performance.now();
  await pool(N, CONCURRENCY, async (i) => {
    const res = await p.request({ path: '/hook', method: 'POST', headers: { 'content-type': 'application/json', 'x-id': `${PREFIX}c-${i}` }, body: body(i) });
    await res.body.dump();
  });
  report({ ms: performance.now() - t0 });
}

/**
 * The physical limit of a file spool on this file system: one process doing
 * spoold's file operations (write + fsync in tmp/, rename into incoming/, a
 * directory fsync shared by concurrent writers, rename into active/, read,
 * unlink) around the same POSTs, with nothing else.
 */
async function bareLoop(): Promise<void> {
  const fs = await import('node:fs');
  const fsp = await import('node:fs/promises');
  const path = await import('node:path');
  const dir = process.env.BARE_DIR!;
  for (const q of ['tmp', 'incoming', 'active']) fs.mkdirSync(path.join(dir, q), { recursive: true });
  const p = new Pool(target, { connections: CONCURRENCY });
  // Group commit, as spoold's enqueue does: waiters share the next fsync.
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  const doSync = async () => {
    const h = await fsp.open(path.join(dir, 'incoming'), 'r');
    await h.sync();
    await h.close();
  };
  const start = (): Promise<void> => (running = doSync().finally(() => (running = null)));
  const syncDir = (): Promise<void> => {
    if (next) return next;
    if (!running) return start();
    next = running.then(() => {
      next = null;
      return start();
    });
    return next;
  };
  const t0 = performance.now();
  await pool(N, CONCURRENCY, async (i) => {
    const name = `${PREFIX}b-${i}.json`;
    const payload = body(i);
    const h = await fsp.open(path.join(dir, 'tmp', name), 'w');
    await h.writeFile(payload);
    await h.sync();
    await h.close();
    fs.renameSync(path.join(dir, 'tmp', name), path.join(dir, 'incoming', name));
    await syncDir();
    fs.renameSync(path.join(dir, 'incoming', name), path.join(dir, 'active', name));
    const text = fs.readFileSync(path.join(dir, 'active', name), 'utf8');
    await post(p, `${PREFIX}b-${i}`, text);
    fs.unlinkSync(path.join(dir, 'active', name));
  });
  report({ ms: performance.now() - t0 });
}

async function produce(): Promise<void> {
  const { enqueue, enqueueMany } = (await import(process.env.SPOOLD_LIB!)) as typeof import('../../src/index.js');
  const url = process.env.SINK_URL!;
  const writes: number[] = [];
  const t0 = performance.now();
  const batch = Number(process.env.BATCH ?? 0);
  if (batch > 0) {
    await pool(Math.ceil(N / batch), Math.max(1, Math.floor(CONCURRENCY / 8)), async (b) => {
      const msgs = [];
      for (let i = b * batch; i < Math.min(N, (b + 1) * batch); i++) msgs.push({ message: { url: `${url}/hook`, body: body(i) as unknown as string }, id: `${PREFIX}m-${i}` });
      const w0 = performance.now();
      await enqueueMany(msgs, { spool: target });
      writes.push(performance.now() - w0);
    });
  } else {
    await pool(N, CONCURRENCY, async (i) => {
      const w0 = performance.now();
      await enqueue({ url: `${url}/hook`, body: body(i) as unknown as string }, { spool: target, id: `${PREFIX}m-${i}` });
      writes.push(performance.now() - w0);
    });
  }
  writes.sort((a, b) => a - b);
  report({ ms: performance.now() - t0, writeP50: writes[Math.floor(writes.length / 2)] ?? 0, writeP99: writes[Math.floor(writes.length * 0.99)] ?? 0 });
}

async function wfa(): Promise<void> {
  const { default: writeFileAtomic } = await import('write-file-atomic');
  const path = await import('node:path');
  const url = process.env.SINK_URL!;
  const writes: number[] = [];
  const t0 = performance.now();
  await pool(N, CONCURRENCY, async (i) => {
    const w0 = performance.now();
    await writeFileAtomic(path.join(target, 'incoming', `${PREFIX}w-${i}.json`), JSON.stringify({ url: `${url}/hook`, body: body(i) }));
    writes.push(performance.now() - w0);
  });
  writes.sort((a, b) => a - b);
  report({ ms: performance.now() - t0, writeP50: writes[Math.floor(writes.length / 2)] ?? 0, writeP99: writes[Math.floor(writes.length * 0.99)] ?? 0 });
}

async function post(p: Pool, id: string, payload: string): Promise<void> {
  const res = await p.request({ path: '/hook', method: 'POST', headers: { 'content-type': 'application/json', 'x-id': id }, body: payload });
  await res.body.dump();
  if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
}

async function bullmq(): Promise<void> {
  // Installed by compare.ts when it runs (not in the lock file).
  const { Queue, Worker } = await import('bullmq' as string);
  const { Redis } = await import('ioredis' as string);
  const connection = new Redis({ host: '127.0.0.1', port: Number(process.env.REDIS_PORT), maxRetriesPerRequest: null });
  const queue = new Queue('bench', { connection });
  await queue.obliterate({ force: true }).catch(() => undefined);
  const p = new Pool(target, { connections: CONCURRENCY });
  let done = 0;
  let finish: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  let t0 = performance.now();
  const worker = new Worker(
    'bench',
    async (job: { id?: string; data: { body: string } }) => {
      await post(p, String(job.id), job.data.body as string);
    },
    { connection, concurrency: CONCURRENCY, removeOnComplete: { count: 0 }, removeOnFail: { count: 1000 }, autorun: !DRAIN },
  );
  worker.on('completed', () => {
    if (++done === N) finish();
  });
  await pool(N, 32, async (i) => {
    await queue.add('m', { body: body(i) }, { jobId: `${PREFIX}b-${i}`, attempts: 100, backoff: { type: 'exponential', delay: 100 }, removeOnComplete: true });
  });
  if (DRAIN) {
    t0 = await loaded();
    void worker.run();
  }
  await finished;
  const ms = performance.now() - t0;
  await worker.close();
  await queue.close();
  connection.disconnect();
  report({ ms });
}

async function rabbit(): Promise<void> {
  const amqp = await import('amqplib');
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${process.env.AMQP_PORT}`);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('bench', { durable: true });
  await ch.purgeQueue('bench');
  const consumer = await conn.createChannel();
  await consumer.prefetch(CONCURRENCY);
  const p = new Pool(target, { connections: CONCURRENCY });
  let done = 0;
  let finish: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  let t0 = performance.now();
  const consume = () => consumer.consume('bench', (msg) => {
    if (!msg) return;
    post(p, String(msg.properties.messageId), msg.content.toString('utf8')).then(
      () => {
        consumer.ack(msg);
        if (++done === N) finish();
      },
      () => consumer.nack(msg, false, true),
    );
  });
  if (!DRAIN) await consume();
  // Confirms are asynchronous: keep many publishes in flight, as a tuned
  // producer would, rather than waiting for each confirm in turn.
  await pool(N, 512, async (i) => {
    await new Promise<void>((resolve, reject) =>
      ch.sendToQueue('bench', Buffer.from(body(i)), { persistent: true, messageId: `${PREFIX}r-${i}`, contentType: 'application/json' }, (err) => (err ? reject(err) : resolve())),
    );
  });
  if (DRAIN) {
    t0 = await loaded();
    await consume();
  }
  await finished;
  const ms = performance.now() - t0;
  await ch.close();
  await consumer.close();
  await conn.close();
  report({ ms });
}

void request;
const modes: Record<string, () => Promise<void>> = { ceiling, bareLoop, produce, wfa, bullmq, rabbit };
await import('undici');
cpuStart = process.cpuUsage();
await modes[mode]!();
