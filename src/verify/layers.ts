// Stream an image's layers from the registry, all at once, into their facts (layer-facts.ts, on
// worker threads: facts-pool.ts), from the layer cache where it has them (layer-cache.ts), then
// merge them top-down into an ImageFs. Each blob's digest is verified as it flows; only facts of
// layers whose bytes matched their digest reach the cache.
import { availableParallelism } from 'node:os';
import { CrossbuildError, RegistryError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { tracked } from '../util/inflight.js';
import { limiter } from '../util/limit.js';
import { CancelledError } from '../util/retry.js';
import { factsOf } from './facts-pool.js';
import { ImageFs } from './image-fs.js';
import type { LayerCache, LayerFacts } from './layer-cache.js';
import { applyFacts } from './layer-facts.js';

export interface ScanOptions {
  /** Layer facts kept by digest (absent: every layer is read). */
  readonly cache?: LayerCache;
  /** The scan is no longer wanted: layer reads no other scan shares stop (queued ones never start). */
  readonly signal?: AbortSignal;
}

export interface ScanResult {
  readonly fs: ImageFs;
  /** Every layer was read. */
  readonly complete: boolean;
  readonly layers: number;
  /** Layers whose facts came from the cache, not the registry. */
  readonly fromCache: number;
}

/** Layers read at once, across every image of a command (each inflates on the thread pool). */
const LAYER_CONCURRENCY = Math.max(2, Math.min(8, availableParallelism() * 2));
const layerSlots = limiter(LAYER_CONCURRENCY);
/**
 * A layer two images share (a common base) is read once even when both ask at the same time;
 * `users` counts the scans waiting for it, and the read stops when the last of them gives up.
 */
interface Reading {
  readonly facts: Promise<LayerFacts>;
  readonly stop: AbortController;
  users: number;
}
const reading = new Map<string, Reading>();

/**
 * HEADs of cached layers being asked, per client by registry/repository/digest: platforms that
 * share a layer (same digest) ask once. Only while in flight: a later scan asks again.
 */
const asking = new WeakMap<RegistryClient, Map<string, Promise<boolean>>>();
function askServed(client: RegistryClient, registry: string, repository: string, digest: string): Promise<boolean> {
  const key = `${registry}/${repository}/${digest}`;
  let mine = asking.get(client);
  if (!mine) asking.set(client, (mine = new Map()));
  let there = mine.get(key);
  if (!there) {
    there = client.hasBlob(registry, repository, digest);
    mine.set(key, there);
    const asked = there;
    const done = () => {
      if (mine.get(key) === asked) mine.delete(key);
    };
    void asked.then(done, done);
  }
  return there;
}

/** Layers read ahead at once: their own few slots, so a scan's reads never queue behind them. */
const aheadSlots = limiter(2);

async function fetchFacts(client: RegistryClient, registry: string, repository: string, layer: Descriptor, what: string, signal: AbortSignal, slots = layerSlots, onStart?: () => void): Promise<LayerFacts> {
  const path = `/v2/${repository}/blobs/${layer.digest}`;
  const cancelled = () => new CancelledError(`reading ${what} (${layer.digest})`);
  try {
    if (signal.aborted) throw cancelled(); // given up before its turn: not even queued
    return await slots(() => {
      onStart?.();
      return client.transport.retry(
        'GET',
        registry,
        path,
        async () => {
          if (signal.aborted) throw cancelled();
          const stream = await client.getBlob(registry, repository, layer.digest, { size: layer.size, what });
          const stop = () => stream.destroy(cancelled());
          signal.addEventListener('abort', stop, { once: true });
          try {
            if (signal.aborted) stop();
            // The checked stream fails unless the bytes hash to the digest: facts come only from the right bytes.
            return await tracked(`reading ${what} (${layer.digest})`, () => factsOf(stream, layer));
          } catch (e) {
            stream.destroy();
            throw signal.aborted ? cancelled() : e; // a stream that broke off is read again from the start
          } finally {
            signal.removeEventListener('abort', stop);
          }
        },
        (e) => (e instanceof RegistryError && e.retriable && e.status === undefined ? { reason: e.message.replace(/^GET \S+ /, '') } : undefined),
      );
    });
  } catch (e) {
    if (e instanceof CrossbuildError) throw e;
    throw new CrossbuildError(`${what} (${layer.digest}) could not be read as a tar stream: ${(e as Error).message}`);
  }
}

/**
 * Layers read ahead (readAhead), by digest, until they are read: a scan that needs one that is
 * being read waits for it instead of reading it a second time (undefined: the read failed, the
 * scan reads it itself); one still queued is called off and read by the scan.
 */
interface Ahead {
  readonly facts: Promise<LayerFacts | undefined>;
  readonly stop: AbortController;
  started: boolean;
}
const ahead = new Map<string, Ahead>();

/**
 * Read layers into the cache before any scan asks for them (a base image's, while the build that
 * pulled it runs): each one not in the cache already, from its own repository, digest-checked as
 * every read is. Never fails: a layer it could not read is read by the scan that needs it. Answers
 * how many it read.
 */
export async function readAhead(client: RegistryClient, registry: string, repository: string, layers: readonly Descriptor[], cache: LayerCache, signal: AbortSignal): Promise<number> {
  const jobs = layers
    .filter((l) => l.digest.startsWith('sha256:') && !cache.holds(l.digest) && !ahead.has(l.digest))
    .map((layer) => {
      const stop = new AbortController();
      const entry: { -readonly [K in keyof Ahead]: Ahead[K] } = { facts: Promise.resolve(undefined), stop, started: false };
      const what = `layer ${layer.digest.slice(7, 19)} of ${registry}/${repository} (read ahead)`;
      entry.facts = fetchFacts(client, registry, repository, layer, what, AbortSignal.any([signal, stop.signal]), aheadSlots, () => (entry.started = true)).then(
        (f) => {
          cache.put(layer.digest, f);
          return f;
        },
        () => undefined,
      );
      ahead.set(layer.digest, entry);
      void entry.facts.then(() => {
        if (ahead.get(layer.digest) === entry) ahead.delete(layer.digest);
      });
      return entry.facts;
    });
  return (await Promise.all(jobs)).filter((f) => f !== undefined).length;
}

/**
 * Every layer of an image into its merged filesystem: the facts of each layer from the cache
 * when it has them, else read from the registry — all layers at once — then merged top-down.
 */
export async function scanImage(client: RegistryClient, registry: string, repository: string, layers: readonly Descriptor[], opts: ScanOptions = {}): Promise<ScanResult> {
  let fromCache = 0;
  const joined: [string, Reading][] = [];
  const facts = layers.map((layer, i) => {
    const what = `layer ${i} of ${layers.length} of ${registry}/${repository}`;
    // Only what the digest check vouches for (sha256) is kept or taken from the cache.
    const cacheable = layer.digest.startsWith('sha256:');
    // The facts are the layer's; that this repository still serves it (as a pull needs) is asked.
    const served = (f: LayerFacts) => {
      fromCache++;
      return askServed(client, registry, repository, layer.digest).then((there) => {
        if (!there) throw new CrossbuildError(`${what} (${layer.digest}) is not in the repository any more (its facts are known, but a pull would fail)`);
        return f;
      });
    };
    const cached = cacheable ? opts.cache?.get(layer.digest) : undefined;
    if (cached) return served(cached);
    // Being read ahead: its facts when that read ends (the scan reads it itself if that read failed);
    // still waiting for its turn: called off, the scan reads it now.
    const pending = cacheable ? ahead.get(layer.digest) : undefined;
    if (pending && !pending.started) {
      pending.stop.abort();
      ahead.delete(layer.digest);
    } else if (pending) {
      return pending.facts.then((f) => {
        if (f) return served(f);
        if (opts.signal?.aborted) throw new CancelledError(`reading ${what} (${layer.digest})`);
        return read(layer, what, cacheable);
      });
    }
    return read(layer, what, cacheable);
  });
  function read(layer: Descriptor, what: string, cacheable: boolean): Promise<LayerFacts> {
    const key = `${registry}/${repository}/${layer.digest}`;
    let r = reading.get(key);
    if (!r) {
      const stop = new AbortController();
      const facts = fetchFacts(client, registry, repository, layer, what, stop.signal).then((f) => {
        if (cacheable) opts.cache?.put(layer.digest, f);
        return f;
      });
      const entry: Reading = { facts, stop, users: 0 };
      reading.set(key, entry);
      const done = () => {
        if (reading.get(key) === entry) reading.delete(key);
      };
      void facts.then(done, done);
      r = entry;
    }
    joined.push([key, r]);
    r.users++;
    return r.facts;
  }
  // Given up on (the config this scan was started beside could not be read): every read only this
  // scan waits for stops, and is forgotten so that a later scan starts its own.
  const giveUp = () => {
    for (const [key, r] of joined) {
      if (--r.users > 0) continue;
      r.stop.abort();
      if (reading.get(key) === r) reading.delete(key);
    }
  };
  if (opts.signal?.aborted) giveUp();
  else opts.signal?.addEventListener('abort', giveUp, { once: true });
  // Every read settles before the scan ends, so none fails later with nothing waiting for it.
  const settled = await Promise.allSettled(facts);
  opts.signal?.removeEventListener('abort', giveUp);
  const fs = new ImageFs();
  for (let i = layers.length - 1; i >= 0; i--) {
    const r = settled[i]!;
    if (r.status === 'rejected') throw r.reason;
    fs.beginLayer(i);
    applyFacts(r.value, fs);
    fs.endLayer();
  }
  return { fs, complete: true, layers: layers.length, fromCache };
}
