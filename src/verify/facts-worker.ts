// A worker thread that turns layer bytes into layer facts (inflate, tar, ELF headers), so every
// core reads layers while the main thread only talks HTTP and checks digests. The main thread
// sends a job's bytes as they arrive and waits for an ack of each before sending much more:
// memory stays bounded whatever the layer size. See facts-pool.ts.
import { PassThrough } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { readLayerFacts } from './layer-facts.js';

export type ToWorker =
  | { readonly t: 'start'; readonly id: number; readonly mediaType: string }
  | { readonly t: 'chunk'; readonly id: number; readonly buf: ArrayBuffer }
  | { readonly t: 'end'; readonly id: number }
  | { readonly t: 'abort'; readonly id: number };

export type FromWorker =
  | { readonly t: 'ack'; readonly id: number; readonly n: number }
  | { readonly t: 'done'; readonly id: number; readonly facts: unknown }
  | { readonly t: 'error'; readonly id: number; readonly name: string; readonly message: string };

const port = parentPort;
if (port) {
  const jobs = new Map<number, PassThrough>();
  port.on('message', (m: ToWorker) => {
    if (m.t === 'start') {
      const input = new PassThrough({ highWaterMark: 1024 * 1024 });
      jobs.set(m.id, input);
      readLayerFacts(input, { mediaType: m.mediaType }).then(
        (facts) => port.postMessage({ t: 'done', id: m.id, facts } satisfies FromWorker),
        (e: unknown) => port.postMessage({ t: 'error', id: m.id, name: (e as Error).name ?? 'Error', message: (e as Error).message ?? String(e) } satisfies FromWorker),
      ).finally(() => jobs.delete(m.id));
      return;
    }
    const input = jobs.get(m.id);
    if (!input) return;
    if (m.t === 'chunk') {
      const n = m.buf.byteLength;
      // Acked once the reader took it: the main thread sends more only as this one keeps up.
      input.write(Buffer.from(m.buf), () => port.postMessage({ t: 'ack', id: m.id, n } satisfies FromWorker));
    } else if (m.t === 'end') input.end();
    else input.destroy(new Error('aborted: the layer stream failed on the main thread'));
  });
}
