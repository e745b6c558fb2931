// The distribution API (manifests, blobs, uploads, mounts) on the transport: typed reads that
// check what they get — every manifest against its digest, every blob against its descriptor's
// size and digest (too long is cut off as it streams, too short or wrong is a named error).
// run, manifest and verify all use this one client.
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { CrossbuildError, RegistryError } from '../errors.js';
import { CancelledError } from '../util/retry.js';
import { sha256Digest } from '../oci/digest.js';
import { ImageConfigSchema, ImageIndexSchema, ImageManifestSchema, isIndexMediaType, MANIFEST_ACCEPT, type ImageConfig, type ImageIndex, type ImageManifest } from '../oci/types.js';
import { scope as repositoryScope } from '../oci/reference.js';
import { request } from './http.js';
import { describeCause, errorInfo, header, stripQuery, Transport, USER_AGENT, type ClientOptions, type ReqOpts, type Resp } from './transport.js';
import type { CredentialStore } from './credentials.js';

export type { ClientOptions, RequestInfo, RetryInfo, Timeouts } from './transport.js';
export { DEFAULT_TIMEOUTS, timeoutsFromSeconds } from './transport.js';

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/**
 * A body that trickles (a byte every few seconds never trips the idle deadline) is cut off: after
 * the grace period it must average MIN_BYTES_PER_SECOND. --registry-timeout scales the grace.
 */
const MIN_BYTES_PER_SECOND = 1024;
class RateGuard {
  private readonly started = Date.now();
  constructor(private readonly graceMs: number) {}
  /** Why the body is too slow, or undefined. */
  check(bytes: number): string | undefined {
    const elapsed = Date.now() - this.started;
    if (elapsed < this.graceMs || bytes >= (MIN_BYTES_PER_SECOND * elapsed) / 1000) return undefined;
    return `too slow: ${bytes} bytes in ${Math.round(elapsed / 1000)} s, below ${MIN_BYTES_PER_SECOND} bytes/s (--registry-timeout gives more time)`;
  }
}

/** What a descriptor points at: media type, digest and size, all known. */
export interface ManifestHead {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/**
 * A manifest read and parsed once, as go-containerregistry's Descriptor.Image()/ImageIndex():
 * an image or an index, with the descriptor it was read as. Registry bytes are parsed here and
 * nowhere else.
 */
export type RemoteManifest =
  | { readonly kind: 'image'; readonly descriptor: ManifestHead; readonly manifest: ImageManifest; readonly bytes: Buffer }
  | { readonly kind: 'index'; readonly descriptor: ManifestHead; readonly index: ImageIndex; readonly bytes: Buffer };

/** An image manifest with its config blob, checked against the config's descriptor. */
export interface RemoteImage {
  readonly descriptor: ManifestHead;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
}

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A config is JSON of a few KiB; 16 MiB leaves room for long histories and refuses a hostile one. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * A blob body checked as it streams: more bytes than the descriptor's size stop the stream at
 * once (an endless body cannot run forever), fewer or a wrong digest fail at the end. The error
 * names the blob and what it was for.
 */
class CheckedBlob extends Transform {
  private readonly hash = createHash('sha256');
  private n = 0;
  private readonly rate: RateGuard;
  constructor(
    private readonly expect: { digest: string; size?: number },
    private readonly what: string,
    graceMs: number,
  ) {
    super();
    this.rate = new RateGuard(graceMs);
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    const slow = this.rate.check(this.n);
    if (slow) {
      cb(new RegistryError(`${this.what}: ${slow}`, { retriable: true }));
      return;
    }
    if (this.expect.size !== undefined && this.n > this.expect.size) {
      cb(new RegistryError(`${this.what}: more than the ${this.expect.size} bytes its descriptor says (cut off at ${this.n})`, { retriable: false }));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expect.size !== undefined && this.n < this.expect.size) {
      cb(new RegistryError(`${this.what}: ${this.n} bytes, short of the ${this.expect.size} its descriptor says`, { retriable: true }));
      return;
    }
    const got = `sha256:${this.hash.digest('hex')}`;
    if (this.expect.digest.startsWith('sha256:') && got !== this.expect.digest) {
      cb(new RegistryError(`${this.what}: the bytes hash to ${got}, not ${this.expect.digest}`, { retriable: true }));
      return;
    }
    cb();
  }
}

export class RegistryClient {
  readonly transport: Transport;

  constructor(opts: ClientOptions = {}) {
    this.transport = new Transport(opts);
  }

  get credentials(): CredentialStore {
    return this.transport.credentials;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private send(registry: string, method: string, path: string, o: ReqOpts): Promise<Resp> {
    return this.transport.send(registry, method, path, o);
  }

  private base(registry: string): Promise<string> {
    return this.transport.base(registry);
  }

  private agent(registry: string) {
    return this.transport.agent(registry);
  }

  /** Read a body whole; a read that breaks off (or comes wrong) is retried from the start, with the transport's policy (GETs only). */
  private readRetrying<T>(registry: string, what: string, path: string, once: () => Promise<T>): Promise<T> {
    return this.transport
      .retry('GET', registry, path, () => once(), (e) => {
        // The transport already retried HTTP answers; here only a body that broke off or came wrong is read again.
        const bodyFault = !(e instanceof RegistryError) || (e.retriable && e.status === undefined);
        return bodyFault && !(e instanceof CancelledError) ? { reason: `${what}: ${e instanceof Error ? describeCause(e) : String(e)}` } : undefined;
      })
      .catch((e: unknown) => {
        if (e instanceof CrossbuildError) throw e;
        throw new RegistryError(`GET ${registry}${stripQuery(path)} (${what}): the answer broke off: ${describeCause(e)}`, { retriable: true, cause: e });
      });
  }

  private async failure(registry: string, what: string, res: Resp): Promise<RegistryError> {
    const { detail, code, codes } = await errorInfo(res);
    return new RegistryError(`${what} on ${registry} failed: HTTP ${res.statusCode}${detail ? ` ${detail}` : ''}`, {
      status: res.statusCode,
      ...(code ? { code } : {}),
      ...(codes ? { codes } : {}),
      retriable: res.statusCode === 429 || res.statusCode >= 500,
    });
  }

  async getManifest(registry: string, repository: string, reference: string): Promise<FetchedManifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const what = `manifest ${repository}:${reference}`;
    return this.readRetrying(registry, what, path, async () => this.fetchedFrom(registry, repository, reference, await this.send(registry, 'GET', path, manifestGet(repository, what))));
  }

  /** A manifest GET's answer, read within limits and checked against its digest. */
  private async fetchedFrom(registry: string, repository: string, reference: string, res: Resp): Promise<FetchedManifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    if (res.statusCode !== 200) throw await this.failure(registry, `GET manifest ${repository}:${reference}`, res);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, new RateGuard(this.transport.timeouts.bodyIdleMs), `GET ${registry}${path} (manifest ${repository}:${reference})`);
    const digest = sha256Digest(bytes);
    const claimed = header(res, 'docker-content-digest');
    if (claimed && claimed !== digest) {
      throw new RegistryError(`registry ${registry} sent manifest ${repository}:${reference} with Docker-Content-Digest ${claimed} but its body hashes to ${digest}`, { retriable: true });
    }
    if (reference.includes(':') && reference !== digest) {
      throw new RegistryError(`registry ${registry} returned content hashing to ${digest} for ${repository}@${reference}`, { retriable: true });
    }
    const mediaType = mediaTypeOf(parseJson(bytes), header(res, 'content-type'));
    return { bytes, mediaType, digest, size: bytes.length };
  }

  /**
   * The typed read: a manifest (by tag or digest) as an image or an index, checked against its
   * digest (and `expect.size` when a descriptor gave one). A body that is not a manifest of its
   * kind is an `invalid` error naming the digest.
   */
  async manifest(registry: string, repository: string, reference: string, expect: { size?: number } = {}): Promise<RemoteManifest> {
    return typed(registry, repository, await this.getManifest(registry, repository, reference), expect);
  }

  /**
   * A manifest by digest whose bytes were kept from an earlier read (they must hash to it), typed
   * as a read would type it; `served` settles when the registry has said it still serves it
   * (HEAD), and fails if it does not. One round trip fewer than reading it, and no GET counted
   * against a pull limit.
   */
  known(registry: string, repository: string, digest: string, kept: { readonly bytes: Buffer; readonly mediaType: string }): { manifest: RemoteManifest; served: Promise<void> } {
    if (kept.bytes.length > MAX_MANIFEST_BYTES || sha256Digest(kept.bytes) !== digest) throw new RegistryError(`the manifest kept for ${registry}/${repository}@${digest} is not it`, { kind: 'invalid' });
    // The bytes' own media type wins, the kept one stands in for the Content-Type header: as a read.
    const manifest = typed(registry, repository, { bytes: kept.bytes, mediaType: mediaTypeOf(parseJson(kept.bytes), kept.mediaType), digest, size: kept.bytes.length });
    const served = this.headManifest(registry, repository, digest).then((head) => {
      if (head?.digest !== digest) throw new CrossbuildError(`manifest ${registry}/${repository}@${digest} is not in the repository any more (its bytes are known, but a pull would fail)`);
    });
    return { manifest, served };
  }

  /** An image's config blob, checked against its descriptor's size and digest, parsed. */
  async config(registry: string, repository: string, manifest: ImageManifest): Promise<ImageConfig> {
    const d = manifest.config;
    const what = `config ${repository}@${d.digest}`;
    if (d.size > MAX_CONFIG_BYTES) throw new RegistryError(`${what} on ${registry} is ${d.size} bytes, more than the ${MAX_CONFIG_BYTES} a config may be`, { kind: 'invalid' });
    const bytes = await this.getBlobBytes(registry, repository, d.digest, MAX_CONFIG_BYTES, what, d.size);
    const parsed = ImageConfigSchema.safeParse(parseJson(bytes));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RegistryError(`${what} on ${registry} is not an image config: ${issue ? `${issue.path.join('.') || 'top level'}: ${issue.message}` : 'not JSON'}`, { kind: 'invalid' });
    }
    return parsed.data;
  }

  /** A reference that must be a single image: its manifest and checked config. */
  async image(registry: string, repository: string, reference: string, expect: { size?: number } = {}): Promise<RemoteImage> {
    const m = await this.manifest(registry, repository, reference, expect);
    if (m.kind !== 'image') throw new RegistryError(`${registry}/${repository}@${m.descriptor.digest} is a list (${m.descriptor.mediaType}), not an image`, { kind: 'invalid' });
    return { descriptor: m.descriptor, manifest: m.manifest, config: await this.config(registry, repository, m.manifest) };
  }

  /** HEAD a manifest: undefined when it does not exist. */
  async headManifest(registry: string, repository: string, reference: string): Promise<ManifestHead | undefined> {
    const res = await this.send(registry, 'HEAD', `/v2/${repository}/manifests/${reference}`, {
      scopes: [repositoryScope(repository, 'pull')],
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      idempotent: true,
    });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.failure(registry, `HEAD manifest ${repository}:${reference}`, res);
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    if (!digest || !Number.isInteger(size) || size <= 0 || mediaType === '') {
      // Some registries omit the digest, type or length on HEAD; GET is authoritative, never a guess.
      const m = await this.getManifest(registry, repository, reference);
      return { mediaType: m.mediaType, digest: m.digest, size: m.size };
    }
    return { mediaType, digest, size };
  }

  /**
   * PUT a manifest. Every caller has pushed what it names first (children before parents), so a
   * registry that answers MANIFEST_BLOB_UNKNOWN is behind its own writes and is asked again with
   * the transport's policy: distribution's filesystem store rewrites a blob's link in place while
   * another push of the same blob commits (two runs of one repository), and a store on S3 or GCS
   * may not list a blob written a moment ago. Measured here: 14 of 600 concurrent PUTs, each
   * accepted when sent again 100 ms later.
   */
  async putManifest(registry: string, repository: string, reference: string, bytes: Buffer, mediaType: string, refused?: RegistryError): Promise<string> {
    const path = `/v2/${repository}/manifests/${reference}`;
    return this.transport.retry(
      'PUT',
      registry,
      path,
      async (attempt) => {
        // A refusal already had (the pipelined write's) counts as the first attempt.
        if (attempt === 1 && refused) throw refused;
        return this.putAnswer(registry, repository, reference, bytes, await this.send(registry, 'PUT', path, manifestPut(repository, bytes, mediaType)));
      },
      (e) => (behindItsWrites(e) ? { reason: `the registry does not see yet what the manifest names (${(e as RegistryError).codes.join(', ')})` } : undefined),
    );
  }

  private async putAnswer(registry: string, repository: string, reference: string, bytes: Buffer, res: Resp): Promise<string> {
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) {
      throw await this.failure(registry, `PUT manifest ${repository}:${reference}`, res);
    }
    await res.body.dump();
    const digest = sha256Digest(bytes);
    const claimed = header(res, 'docker-content-digest');
    if (claimed && claimed !== digest) {
      throw new RegistryError(`registry ${registry} stored ${repository}:${reference} as ${claimed}, expected ${digest}`);
    }
    return digest;
  }

  /**
   * PUT a manifest by tag and read back what the tag then serves, in one round trip where the
   * registry allows (the GET pipelined behind the PUT on one connection, see Transport.pipelined),
   * else one after the other with the usual retries. `served` is the typed read, or its failure.
   */
  async putManifestAndRead(registry: string, repository: string, tag: string, bytes: Buffer, mediaType: string): Promise<{ digest: string; served: Promise<RemoteManifest> }> {
    const path = `/v2/${repository}/manifests/${tag}`;
    const what = `manifest ${repository}:${tag}`;
    const pair = await this.transport.pipelined(registry, { method: 'PUT', path, o: manifestPut(repository, bytes, mediaType) }, { method: 'GET', path, o: manifestGet(repository, what) });
    if (!pair) {
      const digest = await this.putManifest(registry, repository, tag, bytes, mediaType);
      return { digest, served: this.manifest(registry, repository, tag) };
    }
    const [put, got] = pair;
    let digest: string;
    try {
      digest = await this.putAnswer(registry, repository, tag, bytes, put);
    } catch (e) {
      await got.body.dump().catch(() => undefined);
      if (!behindItsWrites(e)) throw e;
      digest = await this.putManifest(registry, repository, tag, bytes, mediaType, e as RegistryError);
      return { digest, served: this.manifest(registry, repository, tag) };
    }
    // Only an answer that agrees is taken from the pipelined read. A server may (against RFC 9112)
    // run pipelined requests side by side and answer the GET from before the PUT; anything else —
    // another digest, a 404, a read that broke off — is read again the ordinary way, after the
    // PUT's answer, and that read decides.
    const served = this.fetchedFrom(registry, repository, tag, got)
      .then((m) => (m.digest === digest ? typed(registry, repository, m) : undefined), () => undefined)
      .then((m) => m ?? this.manifest(registry, repository, tag));
    return { digest, served };
  }

  async hasBlob(registry: string, repository: string, digest: string): Promise<boolean> {
    const res = await this.send(registry, 'HEAD', `/v2/${repository}/blobs/${digest}`, { scopes: [repositoryScope(repository, 'pull')], idempotent: true });
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await this.failure(registry, `HEAD blob ${repository}@${digest}`, res);
  }

  /** One GET of a blob from `offset` on (a Range request past 0), following redirects to storage without our credentials. */
  private async openBlob(registry: string, repository: string, digest: string, what: string, offset: number): Promise<Resp> {
    const range = offset > 0 ? { range: `bytes=${offset}-` } : undefined;
    let res = await this.send(registry, 'GET', `/v2/${repository}/blobs/${digest}`, { scopes: [repositoryScope(repository, 'pull')], idempotent: true, what, ...(range ? { headers: range } : {}) });
    for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 5; hops++) {
      const loc = header(res, 'location');
      await res.body.dump();
      if (!loc) break;
      const base = await this.base(registry);
      const target = new URL(loc, `${base}/v2/${repository}/blobs/${digest}`);
      // Storage back-ends get no registry credentials.
      try {
        res = await request(target, { method: 'GET', dispatcher: this.agent(target.host), headers: { 'user-agent': USER_AGENT, ...(range ?? {}) }, signal: this.transport.signal });
      } catch (e) {
        throw new RegistryError(`GET ${target.origin}${target.pathname} (${what}, redirected by ${registry}) failed: ${describeCause(e)}`, { retriable: true, cause: e });
      }
    }
    return res;
  }

  /**
   * Stream a blob, checked against its digest and, when known, its descriptor's size as it flows.
   * A body that breaks off is resumed where it stopped (a Range request, under the transport's
   * retry policy) when the registry serves ranges; else the caller reads it again from the start.
   */
  async getBlob(registry: string, repository: string, digest: string, expect: { size?: number; what?: string } = {}): Promise<Readable> {
    const what = expect.what ?? `blob ${repository}@${digest}`;
    const path = `/v2/${repository}/blobs/${digest}`;
    const res = await this.openBlob(registry, repository, digest, what, 0);
    if (res.statusCode !== 200) throw await this.failure(registry, `GET ${what}`, res);
    const checked = new CheckedBlob({ digest, ...(expect.size !== undefined ? { size: expect.size } : {}) }, `GET ${registry}${path} (${what})`, this.transport.timeouts.bodyIdleMs);
    let delivered = 0;
    let resumes = 0;
    let current: Readable | undefined;
    const brokeOff = (e: unknown) => new RegistryError(`GET ${registry}${path} (${what}) broke off: ${describeCause(e)}`, { retriable: true, cause: e });
    const feed = (r: Resp) => {
      const body = r.body as unknown as Readable;
      current = body;
      body.on('data', (c: Buffer) => {
        delivered += c.length;
      });
      body.on('error', (e) => void resume(e));
      const closeDelimited = header(r, 'content-length') === undefined && !/chunked/i.test(header(r, 'transfer-encoding') ?? '');
      if (closeDelimited) {
        // A body ended by closing the connection (legal HTTP/1.1): undici 7 asserts if the socket
        // ends while its parser is paused for backpressure, so such a body is read without pausing
        // (it buffers in the checked stream when the reader is slower).
        body.on('data', (c: Buffer) => checked.write(c));
        body.on('end', () => checked.end());
      } else {
        body.pipe(checked);
      }
    };
    const resume = async (cause: unknown): Promise<void> => {
      current?.unpipe(checked);
      if (checked.destroyed || this.transport.signal.aborted) return;
      // Nothing delivered yet, or no resumes left: the caller's retry reads it again.
      if (delivered === 0 || resumes >= this.transport.attempts - 1) {
        checked.destroy(brokeOff(cause));
        return;
      }
      resumes++;
      const from = delivered;
      try {
        let first = true;
        const next = await this.transport.retry(
          'GET',
          registry,
          path,
          async () => {
            // The first attempt is the one that broke: said as a retry, then resumed from `from`.
            if (first) {
              first = false;
              throw brokeOff(cause);
            }
            // The reader gave up during the wait: ask for nothing more.
            if (checked.destroyed) throw new CancelledError(`GET ${registry}${path} (${what})`);
            return this.openBlob(registry, repository, digest, what, from);
          },
          (e) => (e instanceof RegistryError && e.retriable && e.status === undefined ? { reason: `${describeCause((e.cause as Error) ?? e)} (resuming at byte ${from})` } : undefined),
        );
        if (checked.destroyed) {
          // The reader gave up while we asked again: let the answer go.
          await next.body.dump().catch(() => undefined);
          return;
        }
        const cr = header(next, 'content-range') ?? '';
        if (next.statusCode !== 206 || !cr.startsWith(`bytes ${from}-`)) {
          // The registry sent the whole blob again (or another range): no resuming here.
          await next.body.dump().catch(() => undefined);
          checked.destroy(brokeOff(cause));
          return;
        }
        feed(next);
      } catch (e) {
        checked.destroy(e instanceof RegistryError ? e : brokeOff(e));
      }
    };
    checked.on('close', () => {
      if (current && !current.destroyed) current.destroy();
    });
    feed(res);
    return checked;
  }

  async getBlobBytes(registry: string, repository: string, digest: string, limit = 64 * 1024 * 1024, what = `blob ${repository}@${digest}`, size?: number): Promise<Buffer> {
    return this.readRetrying(registry, what, `/v2/${repository}/blobs/${digest}`, async () => {
      const stream = await this.getBlob(registry, repository, digest, { what, ...(size !== undefined ? { size } : {}) });
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of stream) {
        n += (c as Buffer).length;
        if (n > limit) {
          stream.destroy();
          throw new RegistryError(`${what} on ${registry} is larger than ${limit} bytes`, { retriable: false });
        }
        chunks.push(c as Buffer);
      }
      return Buffer.concat(chunks);
    });
  }

  /**
   * May we push to this repository? Starts an upload, as a push does first, and cancels it: the
   * registry is reachable, speaks v2 and takes our credentials for push — checked in seconds
   * before any build, not after minutes of them.
   */
  async checkPush(registry: string, repository: string): Promise<void> {
    const res = await this.send(registry, 'POST', `/v2/${repository}/blobs/uploads/`, { scopes: [repositoryScope(repository, 'pull,push')], idempotent: true, what: 'the push check' });
    if (res.statusCode !== 202) throw await this.failure(registry, `starting an upload to ${repository} (the push check)`, res);
    await res.body.dump();
    await this.cancelUpload(registry, repository, res, 'cancel of the push check');
  }

  /** End an upload session we opened and will not use; a registry that keeps it lets it expire. */
  private async cancelUpload(registry: string, repository: string, started: Resp, what: string): Promise<void> {
    const loc = header(started, 'location');
    if (!loc) return;
    const url = new URL(loc, `${await this.base(registry)}/v2/${repository}/blobs/uploads/`);
    await this.send(registry, 'DELETE', url.toString(), { scopes: [repositoryScope(repository, 'pull,push')], idempotent: true, what })
      .then((r) => r.body.dump())
      .catch(() => undefined);
  }

  /**
   * Upload a blob unless the repository has it. `body` is a Buffer, or a factory for a stream of
   * `size` bytes (streams are never buffered). Monolithic upload: POST then PUT.
   */
  async pushBlob(registry: string, repository: string, digest: string, size: number, body: Buffer | (() => Promise<Readable> | Readable)): Promise<'exists' | 'uploaded'> {
    if (await this.hasBlob(registry, repository, digest)) return 'exists';
    // Starting an upload again after a failure only leaves an unused session behind: safe to retry.
    const start = await this.send(registry, 'POST', `/v2/${repository}/blobs/uploads/`, { scopes: [repositoryScope(repository, 'pull,push')], idempotent: true, what: `upload of ${digest}` });
    await this.finishUpload(registry, repository, digest, size, body, start);
    return 'uploaded';
  }

  /**
   * A cross-repository mount and nothing more: true when mounted (or already there), false when
   * the registry would rather take an upload (202: the session it opened is cancelled).
   */
  async tryMountBlob(registry: string, repository: string, digest: string, fromRepository: string): Promise<boolean> {
    const res = await this.postMount(registry, repository, digest, fromRepository);
    await res.body.dump();
    if (res.statusCode === 201) return true;
    if (res.statusCode === 202) await this.cancelUpload(registry, repository, res, `cancel of an upload of ${digest}`);
    return false;
  }

  /** POST a cross-repository mount: 201 mounted, 202 an upload session instead. */
  private postMount(registry: string, repository: string, digest: string, fromRepository: string): Promise<Resp> {
    // No HEAD first: a mount of a blob the target already has answers 201 just the same.
    const q = new URLSearchParams({ mount: digest, from: fromRepository });
    return this.send(registry, 'POST', `/v2/${repository}/blobs/uploads/?${q}`, {
      scopes: [repositoryScope(repository, 'pull,push'), repositoryScope(fromRepository, 'pull')],
      // A mount that failed mounted nothing (or left an unused upload session): safe to retry.
      idempotent: true,
      what: `mount of ${digest} from ${fromRepository}`,
    });
  }

  /** Cross-repository mount on the same registry; when the registry starts an upload instead (202), the blob is streamed across. */
  async mountBlob(registry: string, repository: string, digest: string, size: number, fromRepository: string): Promise<'mounted' | 'copied'> {
    const res = await this.postMount(registry, repository, digest, fromRepository);
    if (res.statusCode === 201) {
      await res.body.dump();
      return 'mounted';
    }
    await this.finishUpload(registry, repository, digest, size, () => this.getBlob(registry, fromRepository, digest, { size, what: `copy of ${digest} into ${repository}` }), res);
    return 'copied';
  }

  private async finishUpload(registry: string, repository: string, digest: string, size: number, body: Buffer | (() => Promise<Readable> | Readable), start: Resp): Promise<void> {
    if (start.statusCode !== 202) throw await this.failure(registry, `start upload to ${repository}`, start);
    await start.body.dump();
    const loc = header(start, 'location');
    if (!loc) throw new RegistryError(`registry ${registry} started an upload without a Location`);
    const base = await this.base(registry);
    const url = new URL(loc, `${base}/v2/${repository}/blobs/uploads/`);
    url.searchParams.set('digest', digest);
    const payload = Buffer.isBuffer(body) ? body : await body();
    const res = await this.send(registry, 'PUT', url.toString(), {
      scopes: [repositoryScope(repository, 'pull,push')],
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: payload,
      idempotent: false,
    });
    if (res.statusCode !== 201) throw await this.failure(registry, `upload ${digest} to ${repository}`, res);
    await res.body.dump();
  }
}

/** A fetched manifest as an image or an index; a body that is not a manifest of its kind is an `invalid` error naming the digest. */
function typed(registry: string, repository: string, m: FetchedManifest, expect: { size?: number } = {}): RemoteManifest {
  const descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.size };
  const where = `${registry}/${repository}@${m.digest}`;
  if (expect.size !== undefined && expect.size !== m.size) {
    throw new RegistryError(`manifest ${where} is ${m.size} bytes, not the ${expect.size} its descriptor says`, { kind: 'invalid' });
  }
  const json = parseJson(m.bytes);
  if (json === undefined) throw new RegistryError(`manifest ${where} is not JSON`, { kind: 'invalid' });
  const asIndex = isIndexMediaType(m.mediaType) || (m.mediaType === '' && Array.isArray((json as { manifests?: unknown }).manifests));
  const parsed = (asIndex ? ImageIndexSchema : ImageManifestSchema).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RegistryError(`manifest ${where} (${m.mediaType || 'no media type'}) is not a valid ${asIndex ? 'index' : 'image manifest'}: ${issue ? `${issue.path.join('.') || 'top level'}: ${issue.message}` : 'schema mismatch'}`, { kind: 'invalid' });
  }
  return asIndex
    ? { kind: 'index', descriptor, index: parsed.data as ImageIndex, bytes: m.bytes }
    : { kind: 'image', descriptor, manifest: parsed.data as ImageManifest, bytes: m.bytes };
}

/** A manifest PUT refused for a blob or child the registry does not see (see putManifest). */
function behindItsWrites(e: unknown): boolean {
  return e instanceof RegistryError && e.status === 400 && e.codes.includes('MANIFEST_BLOB_UNKNOWN');
}

function manifestPut(repository: string, bytes: Buffer, mediaType: string): ReqOpts {
  return { scopes: [repositoryScope(repository, 'pull,push')], headers: { 'content-type': mediaType }, body: bytes, idempotent: true };
}

function manifestGet(repository: string, what: string): ReqOpts {
  return { scopes: [repositoryScope(repository, 'pull')], headers: { accept: MANIFEST_ACCEPT.join(', ') }, idempotent: true, what };
}

async function readLimited(res: Resp, limit: number, rate: RateGuard, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    const slow = rate.check(n);
    if (slow) {
      res.body.destroy();
      throw new RegistryError(`${what}: ${slow}`, { retriable: true });
    }
    if (n > limit) throw new RegistryError(`manifest larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** The manifest's own mediaType field wins over the header (registries echo what was PUT). */
function mediaTypeOf(json: unknown, contentType: string | undefined): string {
  const mt = (json as { mediaType?: unknown } | undefined)?.mediaType;
  if (typeof mt === 'string') return mt;
  return (contentType ?? '').split(';')[0]!.trim();
}
