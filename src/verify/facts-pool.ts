// Worker threads for layer facts (CROSSBUILD_LAYER_WORKERS=N), made when first needed. The main thread
// keeps the HTTP body and its digest check (CheckedBlob) and streams the bytes to a worker, at
// most IN_FLIGHT unacknowledged bytes at a time. Where there is no worker script (the sources
// run by the unit tests) layers are read on the main thread, the same code either way.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { CrossbuildError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import type { FromWorker, ToWorker } from './facts-worker.js';
import type { LayerFacts } from './layer-cache.js';
import { readLayerFacts } from './layer-facts.js';

const IN_FLIGHT = 4 * 1024 * 1024;

/**
 * How many workers: CROSSBUILD_LAYER_WORKERS (default 0: the main thread reads, its inflate
 * already on libuv's thread pool). Measured on 2 cores (bench/RESULTS.md notes): workers made a
 * Debian list's cold verify 15 % slower and took twice the memory; they are for many-core hosts.
 */
function workerCount(): number {
  const n = Number(process.env.CROSSBUILD_LAYER_WORKERS ?? 0);
  return Number.isInteger(n) && n > 0 ? Math.min(n, availableParallelism()) : 0;
}

/** The bundled worker (dist/cli/facts-worker.js), seen from the chunk this module is bundled into. */
function workerScript(): URL | undefined {
  if (workerCount() === 0) return undefined;
  for (const rel of ['../cli/facts-worker.js', './facts-worker.js']) {
    const u = new URL(rel, import.meta.url);
    if (u.protocol === 'file:' && existsSync(fileURLToPath(u))) return u;
  }
  return undefined;
}

interface Slot {
  readonly worker: Worker;
  readonly handlers: Map<number, (m: FromWorker) => void>;
  busy: boolean;
}

let slots: Slot[] | undefined;
const waiting: ((s: Slot | undefined) => void)[] = [];
let seq = 0;

function pool(): Slot[] | undefined {
  if (slots) return slots.length ? slots : undefined;
  const script = workerScript();
  slots = [];
  if (!script) return undefined;
  // Loaded here, not at start-up: most commands start no workers.
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  for (let i = 0; i < workerCount(); i++) {
    const worker = new Worker(script);
    const slot: Slot = { worker, handlers: new Map(), busy: false };
    worker.on('message', (m: FromWorker) => slot.handlers.get(m.id)?.(m));
    worker.on('error', (e) => {
      for (const h of slot.handlers.values()) h({ t: 'error', id: -1, name: 'Error', message: `layer worker failed: ${e.message}` });
    });
    // A worker that died takes no more jobs; the rest share them (none left: the main thread reads).
    worker.on('exit', () => {
      slots = slots?.filter((s) => s !== slot);
      for (const h of slot.handlers.values()) h({ t: 'error', id: -1, name: 'Error', message: 'layer worker exited' });
      if (slots?.length === 0) for (const w of waiting.splice(0)) w(undefined);
    });
    // An idle worker must not keep the command alive.
    worker.unref();
    slots.push(slot);
  }
  return slots;
}

/** A live worker, when one is free or frees up; none once every worker has died (the main thread reads). */
async function acquire(): Promise<Slot | undefined> {
  const live = slots ?? [];
  if (live.length === 0) return undefined;
  const free = live.find((s) => !s.busy);
  const slot = free ?? (await new Promise<Slot | undefined>((r) => waiting.push(r)));
  if (!slot) return undefined;
  slot.busy = true;
  slot.worker.ref();
  return slot;
}

function release(slot: Slot): void {
  const alive = slots?.includes(slot) ?? false;
  if (alive) {
    const next = waiting.shift();
    if (next) {
      next(slot);
      return;
    }
    slot.busy = false;
    slot.worker.unref();
    return;
  }
  // A dead worker is handed to nobody; with none left alive, the waiting read on the main thread.
  if ((slots ?? []).length === 0) for (const w of waiting.splice(0)) w(undefined);
}

/** A layer's facts from its (digest-checked) byte stream, on a worker thread when there are any. */
export async function factsOf(source: Readable, layer: Pick<Descriptor, 'mediaType'>): Promise<LayerFacts> {
  if (!pool()) return readLayerFacts(source, layer);
  // The body may fail while it waits for a worker: caught from now on, its verdict kept.
  let early: Error | undefined;
  const onEarly = (e: Error) => {
    early ??= e;
  };
  source.on('error', onEarly);
  const slot = await acquire();
  source.off('error', onEarly);
  if (early) throw early;
  if (!slot) return readLayerFacts(source, layer);
  const id = ++seq;
  const post = (m: ToWorker, transfer?: ArrayBuffer[]) => slot.worker.postMessage(m, transfer);
  try {
    return await new Promise<LayerFacts>((resolve, reject) => {
      let inFlight = 0;
      let ended = false;
      slot.handlers.set(id, (m) => {
        if (m.t === 'ack') {
          inFlight -= m.n;
          if (inFlight < IN_FLIGHT && source.isPaused() && !ended) source.resume();
        } else if (m.t === 'done') resolve(m.facts as LayerFacts);
        else reject(m.name === 'CrossbuildError' ? new CrossbuildError(m.message) : new Error(m.message));
      });
      post({ t: 'start', id, mediaType: layer.mediaType });
      source.on('data', (c: Buffer) => {
        // A copy of its own to hand over: stream chunks may be views of a shared pool.
        const buf = new Uint8Array(c.length);
        buf.set(c);
        inFlight += c.length;
        post({ t: 'chunk', id, buf: buf.buffer }, [buf.buffer]);
        if (inFlight >= IN_FLIGHT) source.pause();
      });
      source.on('end', () => {
        ended = true;
        post({ t: 'end', id });
      });
      // The body's own failure (a wrong digest, a cut) is the verdict, whatever the worker says.
      source.on('error', (e) => {
        post({ t: 'abort', id });
        reject(e);
      });
    });
  } finally {
    slot.handlers.delete(id);
    release(slot);
  }
}
