// The one registry client (distribution-spec over undici), used by run, manifest and verify.
// It resolves http/https per registry as Docker does, authenticates (Basic, Bearer tokens cached
// per scope), retries what is safe to retry, and checks every manifest digest it reads or writes.
import { readFileSync, existsSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from './http.js';
import { AuthError, RegistryError } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import { MANIFEST_ACCEPT } from '../oci/types.js';
import { registerSecret } from '../util/secrets.js';
import { parseWwwAuthenticate, type Challenge } from './auth.js';
import { CredentialStore } from './credentials.js';
import { tracked } from '../util/inflight.js';
import { DOCKER_HUB, isLoopbackRegistry, scope as repositoryScope } from '../oci/reference.js';

export interface ClientOptions {
  /** Skip TLS verification (and allow falling back to plain HTTP), like Docker's insecure-registries. */
  readonly insecure?: boolean;
  /** Talk plain HTTP. */
  readonly plainHttp?: boolean;
  readonly credentials?: CredentialStore;
  /** Attempts for retriable failures (429, 5xx, dropped connections), including the first. */
  readonly attempts?: number;
  /** Base backoff in ms, doubled each retry. */
  readonly backoffMs?: number;
  /** Where Docker keeps per-registry CAs (certs.d). */
  readonly certsDir?: string;
  readonly onRetry?: (info: { method: string; url: string; attempt: number; reason: string; delayMs: number }) => void;
}

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface ManifestHead {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

interface ReqOpts {
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  /** A replayable body, or a one-shot stream (which disables retries). */
  readonly body?: Buffer | Readable;
  /** Safe to send again after a failure. */
  readonly idempotent: boolean;
}

type Resp = Dispatcher.ResponseData<unknown>;

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const USER_AGENT = 'crossbuild/0.1';

export class RegistryClient {
  readonly opts: ClientOptions;
  readonly credentials: CredentialStore;
  private readonly bases = new Map<string, Promise<string>>();
  private readonly challenges = new Map<string, Challenge | null>();
  private readonly tokens = new Map<string, Promise<string>>();
  private readonly agents = new Map<string, Agent>();

  constructor(opts: ClientOptions = {}) {
    this.opts = opts;
    this.credentials = opts.credentials ?? new CredentialStore();
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
  }

  private host(registry: string): string {
    return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
  }

  /** May we fall back to plain HTTP? With --insecure, and for loopback registries, as Docker does. */
  private httpFallbackFor(registry: string): boolean {
    return this.opts.insecure === true || isLoopbackRegistry(registry);
  }

  private agent(registry: string): Agent {
    let a = this.agents.get(registry);
    if (!a) {
      const certsDir = this.opts.certsDir ?? process.env.CROSSBUILD_CERTS_D ?? '/etc/docker/certs.d';
      const caFile = `${certsDir}/${registry}/ca.crt`;
      const ca = existsSync(caFile) ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
      a = new Agent({
        connections: 16,
        keepAliveTimeout: 10_000,
        // TLS is verified unless --insecure, loopback included: a loopback registry without TLS is
        // reached through the plain-HTTP fallback instead.
        connect: { rejectUnauthorized: this.opts.insecure !== true, ...(ca ? { ca } : {}) },
      });
      this.agents.set(registry, a);
    }
    return a;
  }

  /** http or https, decided once per registry: plain when asked, https else, http fallback for insecure/loopback. */
  private base(registry: string): Promise<string> {
    let b = this.bases.get(registry);
    if (!b) {
      b = this.resolveBase(registry);
      this.bases.set(registry, b);
      b.catch(() => this.bases.delete(registry));
    }
    return b;
  }

  private async resolveBase(registry: string): Promise<string> {
    const host = this.host(registry);
    if (this.opts.plainHttp) return this.ping(registry, `http://${host}`);
    // Loopback registries are nearly always plain HTTP (Docker treats them as insecure): ask that
    // first and save a failed TLS handshake. A TLS server answers plain HTTP with a 400.
    const order = isLoopbackRegistry(registry) ? ['http', 'https'] : ['https', 'http'];
    try {
      return await this.ping(registry, `${order[0]}://${host}`);
    } catch (e) {
      // An HTTP answer over TLS is final; a failed handshake may mean a plain-HTTP registry.
      const answeredOverTls = order[0] === 'https' && e instanceof RegistryError && e.status !== undefined;
      if (!this.httpFallbackFor(registry) || answeredOverTls) throw e;
      try {
        return await this.ping(registry, `${order[1]}://${host}`);
      } catch (e2) {
        throw order[0] === 'https' ? e : e2; // the TLS error says more than "HTTP 400 to an HTTPS server"
      }
    }
  }

  /** GET /v2/: proves the base works and learns the auth challenge up front. */
  private async ping(registry: string, base: string): Promise<string> {
    let res: Resp;
    try {
      res = await request(`${base}/v2/`, { method: 'GET', dispatcher: this.agent(registry), headers: { 'user-agent': USER_AGENT }, headersTimeout: 30_000, bodyTimeout: 30_000 });
    } catch (e) {
      throw new RegistryError(`cannot reach registry ${registry} at ${base}: ${(e as Error).message}`, {
        retriable: true,
        cause: e,
        hint: base.startsWith('https') ? 'for a registry without TLS use --plain-http; for a self-signed certificate put its CA in /etc/docker/certs.d/<host:port>/ca.crt or use --insecure' : 'is the registry running?',
      });
    }
    await res.body.dump();
    if (res.statusCode === 401) {
      this.challenges.set(registry, parseWwwAuthenticate(header(res, 'www-authenticate')) ?? null);
    } else if (res.statusCode >= 400) {
      throw new RegistryError(`registry ${registry} answered ${res.statusCode} to GET /v2/ — is it a distribution (v2) registry?`, { status: res.statusCode });
    }
    return base;
  }

  private async authHeader(registry: string, scopes: readonly string[]): Promise<string | undefined> {
    const ch = this.challenges.get(registry);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = await this.credentials.get(registry);
      if (!c?.username) return undefined;
      const v = Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64');
      registerSecret(v);
      return `Basic ${v}`;
    }
    const key = `${registry}|${[...scopes].sort().join(' ')}`;
    let t = this.tokens.get(key);
    if (!t) {
      t = this.fetchToken(registry, ch, scopes);
      this.tokens.set(key, t);
      t.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${await t}`;
  }

  private async fetchToken(registry: string, ch: Challenge, scopes: readonly string[]): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`registry ${registry} sent a Bearer challenge without a realm`);
    const url = new URL(realm);
    const cred = await this.credentials.get(registry);
    let res: Resp;
    try {
      if (cred?.identityToken) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'crossbuild', scope: scopes.join(' ') });
        if (ch.params.service) form.set('service', ch.params.service);
        res = await request(url, { method: 'POST', dispatcher: this.agent(url.host), headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT }, body: form.toString() });
      } else {
        if (ch.params.service) url.searchParams.set('service', ch.params.service);
        for (const s of scopes) url.searchParams.append('scope', s);
        const headers: Record<string, string> = { 'user-agent': USER_AGENT };
        if (cred?.username) {
          const v = Buffer.from(`${cred.username}:${cred.password ?? ''}`).toString('base64');
          registerSecret(v);
          headers.authorization = `Basic ${v}`;
          url.searchParams.set('account', cred.username);
        }
        res = await request(url, { method: 'GET', dispatcher: this.agent(url.host), headers });
      }
    } catch (e) {
      throw new RegistryError(`cannot reach the token service of ${registry} (${url.origin}${url.pathname}): ${(e as Error).message}`, { retriable: true, cause: e });
    }
    const text = await res.body.text();
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new AuthError(`registry ${registry} refused the credentials${cred ? ` for user "${cred.username ?? 'token'}"` : ' (none were found)'}`, {
        status: res.statusCode,
        hint: `log in with \`docker login ${registry}\`, or pass --username and --password-stdin`,
      });
    }
    if (res.statusCode >= 400) throw new RegistryError(`token service of ${registry} answered ${res.statusCode}`, { status: res.statusCode, retriable: res.statusCode >= 500 });
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new RegistryError(`token service of ${registry} answered with something that is not JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service of ${registry} returned no token`);
    registerSecret(token);
    return token;
  }

  /** One HTTP exchange with auth and retries. The caller consumes the body. */
  async send(registry: string, method: string, path: string, o: ReqOpts): Promise<Resp> {
    return tracked(`${method} ${registry}${stripQuery(path)}`, () => this.sendUntracked(registry, method, path, o));
  }

  private async sendUntracked(registry: string, method: string, path: string, o: ReqOpts): Promise<Resp> {
    const base = await this.base(registry);
    const attempts = Math.max(1, this.opts.attempts ?? 4);
    const backoff = this.opts.backoffMs ?? 250;
    const replayable = o.body === undefined || Buffer.isBuffer(o.body);
    let authRetried = false;
    for (let attempt = 1; ; attempt++) {
      const url = path.startsWith('http') ? path : `${base}${path}`;
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...(o.headers ?? {}) };
      const auth = await this.authHeader(registry, o.scopes);
      if (auth) headers.authorization = auth;
      let res: Resp;
      try {
        res = await request(url, { method: method as Dispatcher.HttpMethod, headers, ...(o.body !== undefined ? { body: o.body } : {}), dispatcher: this.agent(registry), headersTimeout: 60_000, bodyTimeout: 300_000 });
      } catch (e) {
        const canRetry = o.idempotent && replayable && attempt < attempts;
        if (!canRetry) throw new RegistryError(`${method} ${registry}${stripQuery(path)} failed: ${(e as Error).message}`, { retriable: true, cause: e });
        const delay = backoff * 2 ** (attempt - 1);
        this.opts.onRetry?.({ method, url: stripQuery(path), attempt, reason: (e as Error).message, delayMs: delay });
        await sleep(delay);
        continue;
      }
      if (res.statusCode === 401 && !authRetried && replayable) {
        await res.body.dump();
        const ch = parseWwwAuthenticate(header(res, 'www-authenticate'));
        if (ch) {
          this.challenges.set(registry, ch);
          // A new challenge may name a different realm or scope; drop tokens for this registry.
          for (const k of this.tokens.keys()) if (k.startsWith(`${registry}|`)) this.tokens.delete(k);
        }
        authRetried = true;
        attempt--;
        continue;
      }
      if (res.statusCode === 401 || res.statusCode === 403) {
        const detail = await errorDetail(res);
        const cred = await this.credentials.get(registry).catch(() => undefined);
        throw new AuthError(`registry ${registry} denied ${method} ${stripQuery(path)} (${res.statusCode}${detail ? `: ${detail}` : ''})${cred ? '' : '; no credentials were found for it'}`, {
          status: res.statusCode,
          hint: `log in with \`docker login ${registry}\`, or pass --username and --password-stdin`,
        });
      }
      const retriable = res.statusCode === 429 || res.statusCode >= 500;
      if (retriable && o.idempotent && replayable && attempt < attempts) {
        const retryAfter = retryAfterMs(header(res, 'retry-after'));
        await res.body.dump();
        const delay = retryAfter ?? backoff * 2 ** (attempt - 1);
        this.opts.onRetry?.({ method, url: stripQuery(path), attempt, reason: `HTTP ${res.statusCode}`, delayMs: delay });
        await sleep(delay);
        continue;
      }
      return res;
    }
  }

  private async failure(registry: string, what: string, res: Resp): Promise<RegistryError> {
    const detail = await errorDetail(res);
    const code = detail?.split(':')[0];
    return new RegistryError(`${what} on ${registry} failed: HTTP ${res.statusCode}${detail ? ` ${detail}` : ''}`, {
      status: res.statusCode,
      ...(code ? { code } : {}),
      retriable: res.statusCode === 429 || res.statusCode >= 500,
    });
  }

  async getManifest(registry: string, repository: string, reference: string): Promise<FetchedManifest> {
    const res = await this.send(registry, 'GET', `/v2/${repository}/manifests/${reference}`, {
      scopes: [repositoryScope(repository, 'pull')],
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      idempotent: true,
    });
    if (res.statusCode !== 200) throw await this.failure(registry, `GET manifest ${repository}:${reference}`, res);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES);
    const digest = sha256Digest(bytes);
    const claimed = header(res, 'docker-content-digest');
    if (claimed && claimed !== digest) {
      throw new RegistryError(`registry ${registry} sent manifest ${repository}:${reference} with Docker-Content-Digest ${claimed} but its body hashes to ${digest}`);
    }
    if (reference.includes(':') && reference !== digest) {
      throw new RegistryError(`registry ${registry} returned content hashing to ${digest} for ${repository}@${reference}`);
    }
    const mediaType = mediaTypeOf(bytes, header(res, 'content-type'));
    return { bytes, mediaType, digest, size: bytes.length };
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
    const size = Number(header(res, 'content-length') ?? '-1');
    if (!digest) {
      // Some registries omit the digest on HEAD; GET is authoritative.
      const m = await this.getManifest(registry, repository, reference);
      return { mediaType: m.mediaType, digest: m.digest, size: m.size };
    }
    return { mediaType: header(res, 'content-type') ?? '', digest, size };
  }

  async putManifest(registry: string, repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.send(registry, 'PUT', `/v2/${repository}/manifests/${reference}`, {
      scopes: [repositoryScope(repository, 'pull,push')],
      headers: { 'content-type': mediaType },
      body: bytes,
      idempotent: true,
    });
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

  async hasBlob(registry: string, repository: string, digest: string): Promise<boolean> {
    const res = await this.send(registry, 'HEAD', `/v2/${repository}/blobs/${digest}`, { scopes: [repositoryScope(repository, 'pull')], idempotent: true });
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await this.failure(registry, `HEAD blob ${repository}@${digest}`, res);
  }

  /** Stream a blob (following redirects to storage backends without our credentials). */
  async getBlob(registry: string, repository: string, digest: string): Promise<Readable> {
    let res = await this.send(registry, 'GET', `/v2/${repository}/blobs/${digest}`, { scopes: [repositoryScope(repository, 'pull')], idempotent: true });
    for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 5; hops++) {
      const loc = header(res, 'location');
      await res.body.dump();
      if (!loc) break;
      const base = await this.base(registry);
      const target = new URL(loc, `${base}/v2/${repository}/blobs/${digest}`);
      // Storage back-ends get no registry credentials.
      res = await request(target, { method: 'GET', dispatcher: this.agent(target.host), headers: { 'user-agent': USER_AGENT }, bodyTimeout: 300_000 });
    }
    if (res.statusCode !== 200) throw await this.failure(registry, `GET blob ${repository}@${digest}`, res);
    return res.body as unknown as Readable;
  }

  async getBlobBytes(registry: string, repository: string, digest: string, limit = 64 * 1024 * 1024): Promise<Buffer> {
    const stream = await this.getBlob(registry, repository, digest);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of stream) {
      n += (c as Buffer).length;
      if (n > limit) {
        stream.destroy();
        throw new RegistryError(`blob ${repository}@${digest} on ${registry} is larger than ${limit} bytes`);
      }
      chunks.push(c as Buffer);
    }
    const bytes = Buffer.concat(chunks);
    if (sha256Digest(bytes) !== digest) throw new RegistryError(`blob ${repository}@${digest} on ${registry} does not match its digest`);
    return bytes;
  }

  /**
   * Upload a blob unless the repository has it. `body` is a Buffer, or a factory for a stream of
   * `size` bytes (streams are never buffered). Monolithic upload: POST then PUT.
   */
  async pushBlob(registry: string, repository: string, digest: string, size: number, body: Buffer | (() => Promise<Readable> | Readable)): Promise<'exists' | 'uploaded'> {
    if (await this.hasBlob(registry, repository, digest)) return 'exists';
    const start = await this.send(registry, 'POST', `/v2/${repository}/blobs/uploads/`, { scopes: [repositoryScope(repository, 'pull,push')], idempotent: false });
    await this.finishUpload(registry, repository, digest, size, body, start);
    return 'uploaded';
  }

  /** Cross-repository mount on the same registry; when the registry starts an upload instead (202), the blob is streamed across. */
  async mountBlob(registry: string, repository: string, digest: string, size: number, fromRepository: string): Promise<'mounted' | 'copied'> {
    // No HEAD first: a mount of a blob the target already has answers 201 just the same.
    const q = new URLSearchParams({ mount: digest, from: fromRepository });
    const res = await this.send(registry, 'POST', `/v2/${repository}/blobs/uploads/?${q}`, {
      scopes: [repositoryScope(repository, 'pull,push'), repositoryScope(fromRepository, 'pull')],
      idempotent: false,
    });
    if (res.statusCode === 201) {
      await res.body.dump();
      return 'mounted';
    }
    await this.finishUpload(registry, repository, digest, size, () => this.getBlob(registry, fromRepository, digest), res);
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

function header(res: Resp, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function stripQuery(path: string): string {
  const p = path.replace(/^https?:\/\/[^/]+/, '');
  const i = p.indexOf('?');
  return i < 0 ? p : p.slice(0, i);
}

function retryAfterMs(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.min(Math.max(secs, 0), 60) * 1000;
  const when = Date.parse(v);
  return Number.isNaN(when) ? undefined : Math.min(Math.max(when - Date.now(), 0), 60_000);
}

async function readLimited(res: Resp, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > limit) throw new RegistryError(`manifest larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Registry error JSON: {"errors":[{"code","message","detail"}]} → "CODE: message". */
async function errorDetail(res: Resp): Promise<string | undefined> {
  let text = '';
  try {
    text = await res.body.text();
  } catch {
    return undefined;
  }
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (Array.isArray(j.errors) && j.errors.length > 0) {
      return j.errors.map((e) => `${e.code ?? 'ERROR'}: ${e.message ?? ''}${e.detail && typeof e.detail === 'object' ? ` ${JSON.stringify(e.detail)}` : ''}`).join('; ');
    }
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 200) || undefined;
}

function mediaTypeOf(bytes: Buffer, contentType: string | undefined): string {
  try {
    const j = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
    if (typeof j.mediaType === 'string') return j.mediaType;
  } catch {
    // fall through to the header
  }
  return (contentType ?? '').split(';')[0]!.trim();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
