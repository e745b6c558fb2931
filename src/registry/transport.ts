// The registry transport, as go-containerregistry's remote/transport: one undici agent per
// registry, http or https resolved as Docker does, auth (Basic; Bearer tokens cached per scope),
// deadlines (connect, response headers, idle body: seconds, not minutes) and retries with
// backoff for what is safe to send again. Every error names the request and says whether
// retrying can help. The distribution API on top of it is client.ts.
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { Agent, Client, request, type Dispatcher } from './http.js';
import { AuthError, RegistryError } from '../errors.js';
import { registerSecret } from '../util/secrets.js';
import { parseWwwAuthenticate, type Challenge } from './auth.js';
import { CredentialStore } from './credentials.js';
import { tracked } from '../util/inflight.js';
import { DOCKER_HUB, isLoopbackRegistry } from '../oci/reference.js';
import { CancelledError, DEFAULT_RETRY, retry, sleep, type RetryDecision, type RetryPolicy } from '../util/retry.js';
import { setMaxListeners } from 'node:events';

/** Deadlines, in ms. The body deadline is idle time between chunks, not the whole transfer. */
export interface Timeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly bodyIdleMs: number;
}

/** Defaults: a fault is named within seconds (--registry-timeout scales all three). */
export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 30_000 };

export function timeoutsFromSeconds(seconds: number): Timeouts {
  const ms = seconds * 1000;
  return { connectMs: Math.min(ms, 10_000), headersMs: ms, bodyIdleMs: ms };
}

export interface RetryInfo {
  readonly method: string;
  readonly registry: string;
  readonly path: string;
  readonly attempt: number;
  readonly attempts: number;
  readonly reason: string;
  readonly delayMs: number;
}

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
  /** Time all retries of one request may take, from its first attempt (default 30 s). */
  readonly retryBudgetMs?: number;
  /** The command's: once it fires (SIGINT, SIGTERM, a decision to fail) every request, body read and wait ends. */
  readonly signal?: AbortSignal;
  /** Where Docker keeps per-registry CAs (certs.d). */
  readonly certsDir?: string;
  readonly timeouts?: Timeouts;
  /** Told about every retry, so it can be shown as a progress line. */
  readonly onRetry?: (info: RetryInfo) => void;
  /** Told about every answer (or failure) of every request: `--debug`'s request log. */
  readonly onRequest?: (info: RequestInfo) => void;
}

/** One request as the request log shows it: no headers, no query (they may carry credentials). */
export interface RequestInfo {
  readonly method: string;
  readonly registry: string;
  readonly path: string;
  /** The HTTP status, or the failure. */
  readonly outcome: number | string;
  readonly startedMs: number;
  readonly ms: number;
}

export interface ReqOpts {
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  /** A replayable body, or a one-shot stream (which disables retries). */
  readonly body?: Buffer | Readable;
  /** Safe to send again after a failure. */
  readonly idempotent: boolean;
  /** What the request is for, for error messages ("layer 2 of …"). */
  readonly what?: string;
}

export type Resp = Dispatcher.ResponseData<unknown>;

export const USER_AGENT = 'crossbuild/0.1';

export class Transport {
  readonly opts: ClientOptions;
  readonly credentials: CredentialStore;
  readonly timeouts: Timeouts;
  private readonly bases = new Map<string, Promise<string>>();
  /** Per registry, the base an answer came from: no ping needs waiting for once one request was answered. */
  private readonly confirmed = new Map<string, string>();
  private readonly challenges = new Map<string, Challenge | null>();
  private readonly tokens = new Map<string, Promise<string>>();
  private readonly agents = new Map<string, Agent>();
  private readonly connOpts = new Map<string, ReturnType<Transport['readConnectionOptions']>>();
  /** Per registry: no request before this time (a Retry-After or 429/503 one request got holds for all, as regclient does). */
  private readonly pausedUntil = new Map<string, number>();
  readonly policy: RetryPolicy;
  private readonly controller = new AbortController();
  /** Fires on the command's signal or on close(): in-flight requests and waits end, quietly. */
  readonly signal: AbortSignal;

  constructor(opts: ClientOptions = {}) {
    this.opts = opts;
    this.credentials = opts.credentials ?? new CredentialStore();
    this.timeouts = opts.timeouts ?? DEFAULT_TIMEOUTS;
    this.policy = {
      attempts: Math.max(1, opts.attempts ?? DEFAULT_RETRY.attempts),
      baseMs: opts.backoffMs ?? DEFAULT_RETRY.baseMs,
      maxDelayMs: DEFAULT_RETRY.maxDelayMs,
      budgetMs: opts.retryBudgetMs ?? DEFAULT_RETRY.budgetMs,
    };
    this.signal = opts.signal ? AbortSignal.any([opts.signal, this.controller.signal]) : this.controller.signal;
    // Every request in flight listens to it: dozens at once (all of a list's layers) are normal,
    // not the leak Node warns about at 11.
    setMaxListeners(1024, this.signal);
  }

  get attempts(): number {
    return this.policy.attempts;
  }

  /**
   * The transport's retry policy around one operation on a registry: every retry said as a line
   * (until the command stops), waits shared per registry, everything ended by the signal.
   */
  retry<T>(method: string, registry: string, path: string, op: (attempt: number, last: boolean) => Promise<T>, decide: (e: unknown, attempt: number) => RetryDecision): Promise<T> {
    return retry(op, {
      policy: this.policy,
      signal: this.signal,
      what: `${method} ${registry}${stripQuery(path)}`,
      decide,
      onRetry: (n) => {
        if (!this.signal.aborted) this.opts.onRetry?.({ method, registry, path: stripQuery(path), attempt: n.attempt, attempts: n.attempts, reason: n.reason, delayMs: n.delayMs });
      },
      before: async () => {
        const until = this.pausedUntil.get(registry) ?? 0;
        if (until > Date.now()) await sleep(until - Date.now(), this.signal, `${method} ${registry}${stripQuery(path)}`);
      },
      onPause: (until) => this.pausedUntil.set(registry, Math.max(until, this.pausedUntil.get(registry) ?? 0)),
    });
  }

  /** Stop everything in flight (no retry lines after the decision), then release the connections. */
  async close(): Promise<void> {
    this.controller.abort();
    await Promise.all([...this.agents.values()].map((a) => a.destroy().catch(() => undefined)));
  }

  host(registry: string): string {
    return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
  }

  /** May we fall back to plain HTTP? With --insecure, and for loopback registries, as Docker does. */
  private httpFallbackFor(registry: string): boolean {
    return this.opts.insecure === true || isLoopbackRegistry(registry);
  }

  agent(registry: string): Agent {
    let a = this.agents.get(registry);
    if (!a) {
      a = new Agent({ connections: 16, keepAliveTimeout: 10_000, ...this.connectionOptions(registry) });
      this.agents.set(registry, a);
    }
    return a;
  }

  private connectionOptions(registry: string): ReturnType<Transport['readConnectionOptions']> {
    let c = this.connOpts.get(registry);
    if (!c) this.connOpts.set(registry, (c = this.readConnectionOptions(registry)));
    return c;
  }

  /** Deadlines and TLS for a registry's connections (its certs.d CA read once). */
  private readConnectionOptions(registry: string) {
    const certsDir = this.opts.certsDir ?? process.env.CROSSBUILD_CERTS_D ?? '/etc/docker/certs.d';
    const caFile = `${certsDir}/${registry}/ca.crt`;
    // node:tls only when a registry has a CA of its own (undici loads it for https anyway; a
    // plain-HTTP or no-registry command starts without it).
    const ca = existsSync(caFile) ? [...(createRequire(import.meta.url)('node:tls') as typeof import('node:tls')).rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
    return {
      // TLS is verified unless --insecure, loopback included: a loopback registry without TLS is
      // reached through the plain-HTTP fallback instead.
      connect: { rejectUnauthorized: this.opts.insecure !== true, timeout: this.timeouts.connectMs, ...(ca ? { ca } : {}) },
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyIdleMs,
    };
  }

  /**
   * A write and a read of what it wrote in one round trip: both on one new connection, the read
   * sent right behind the write (HTTP/1.1 pipelining). A server answers pipelined requests in
   * order and may not start a read before an unsafe request ahead of it is done (RFC 9112 §9.3.2),
   * so the read sees the write — on a server that keeps to that: a read that disagrees proves
   * nothing and must be asked again after the write's answer. Only once the registry has answered
   * (its scheme and challenge are known). Undefined whenever it did not go cleanly in one go (a
   * 401/403, a 429/5xx, a pause, a connection that broke): the caller then takes the ordinary way,
   * with its retries.
   */
  async pipelined(registry: string, write: { method: string; path: string; o: ReqOpts }, read: { method: string; path: string; o: ReqOpts }): Promise<[Resp, Resp] | undefined> {
    const base = this.confirmed.get(registry);
    if (!base || !(write.o.body === undefined || Buffer.isBuffer(write.o.body))) return undefined;
    // A registry that asked for a pause gets it: the ordinary way waits and retries.
    if ((this.pausedUntil.get(registry) ?? 0) > Date.now()) return undefined;
    return tracked(`${write.method} ${registry}${stripQuery(write.path)} and ${read.method} behind it`, async () => {
      // Both requests' credentials first, so nothing can put the read on the wire before the write.
      const headers = await Promise.all(
        [write, read].map(async (r) => {
          const h: Record<string, string> = { 'user-agent': USER_AGENT, ...(r.o.headers ?? {}) };
          const auth = await this.authHeader(registry, r.o.scopes);
          if (auth) h.authorization = auth;
          return h;
        }),
      );
      const client = new Client(base, { pipelining: 2, ...this.connectionOptions(registry) });
      const one = (r: typeof write, h: Record<string, string>, first: boolean): Promise<Resp> =>
        this.logged(r.method, registry, r.path, () =>
          request(`${base}${r.path}`, { method: r.method as Dispatcher.HttpMethod, headers: h, ...(r.o.body !== undefined ? { body: r.o.body } : {}), dispatcher: client, signal: this.signal, ...(first ? { blocking: false, idempotent: true } : {}) }),
        );
      try {
        // Queued in this order on the one connection: the write goes out first.
        const [w, r] = await Promise.allSettled([one(write, headers[0]!, true), one(read, headers[1]!, false)]);
        // Anything but a plain answer (auth, a pause, a server error, a broken connection) goes the ordinary way.
        const bad = (x: PromiseSettledResult<Resp>) => x.status === 'rejected' || x.value.statusCode === 401 || x.value.statusCode === 403 || x.value.statusCode === 429 || x.value.statusCode >= 500;
        if (bad(w) || bad(r)) {
          for (const x of [w, r]) if (x.status === 'fulfilled') await x.value.body.dump().catch(() => undefined);
          if (this.signal.aborted) throw new CancelledError(`${write.method} ${registry}${stripQuery(write.path)}`);
          return undefined;
        }
        return [(w as PromiseFulfilledResult<Resp>).value, (r as PromiseFulfilledResult<Resp>).value];
      } finally {
        // Closed once both answers are read (or at once on failure).
        void client.close().catch(() => undefined);
      }
    });
  }

  /** http or https, decided once per registry: plain when asked, https else, http fallback for insecure/loopback. */
  base(registry: string): Promise<string> {
    const known = this.confirmed.get(registry);
    if (known) return Promise.resolve(known);
    let b = this.bases.get(registry);
    if (!b) {
      b = this.resolveBase(registry).then((base) => {
        if (!this.confirmed.has(registry)) this.confirmed.set(registry, base);
        return this.confirmed.get(registry)!;
      });
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
      // An HTTP answer is final (a 503 over plain HTTP is a plain-HTTP registry that is busy, not a
      // TLS one); a failed handshake may mean the other scheme.
      // (A TLS server answers plain HTTP with a 400: that one means "try https".)
      const answered = e instanceof RegistryError && e.status !== undefined && !(order[0] === 'http' && e.status === 400);
      if (!this.httpFallbackFor(registry) || answered) throw e;
      try {
        return await this.ping(registry, `${order[1]}://${host}`);
      } catch (e2) {
        // The TLS error says more than "HTTP 400 to an HTTPS server"; a port refused both ways says so.
        const refusedBoth = [e, e2].every((x) => /ECONNREFUSED/.test(describeCause((x as RegistryError).cause ?? x)));
        throw order[0] === 'https' || refusedBoth ? e : e2;
      }
    }
  }

  /** GET /v2/: proves the base works and learns the auth challenge up front. Retried like any GET. */
  private async ping(registry: string, base: string): Promise<string> {
    const refusedRe = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|certificate|SSL|TLS|wrong version number|EPROTO/i;
    const res = await this.retry(
      'GET',
      registry,
      '/v2/',
      async (_attempt, last) => {
        let r: Resp;
        try {
          r = await this.logged('GET', registry, '/v2/', () => request(`${base}/v2/`, { method: 'GET', dispatcher: this.agent(registry), headers: { 'user-agent': USER_AGENT }, signal: this.signal }));
        } catch (e) {
          if (this.signal.aborted) throw new CancelledError(`GET ${base}/v2/`);
          const why = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`;
          const refused = refusedRe.test(why);
          const closed = /ECONNREFUSED/.test(why);
          // A refused connection or a TLS mismatch is an answer about the scheme: no retry, let the caller fall back.
          throw new RegistryError(`cannot reach registry ${registry} at ${base} (GET /v2/): ${describeCause(e)}`, {
            retriable: !refused,
            cause: e,
            hint: closed
              ? `nothing listens on ${new URL(base).host}: is the registry running, and is the port right?`
              : base.startsWith('https') && /certificate|SSL|TLS|wrong version number|EPROTO/i.test(why)
                ? 'for a registry without TLS use --plain-http; for a self-signed certificate put its CA in /etc/docker/certs.d/<host:port>/ca.crt or use --insecure'
                : 'is the registry running?',
          });
        }
        if ((r.statusCode === 429 || r.statusCode >= 500) && !last) {
          await r.body.dump().catch(() => undefined);
          throw new StatusRetry(r.statusCode, retryAfterMs(header(r, 'retry-after')));
        }
        return r;
      },
      (e) => (e instanceof StatusRetry ? { reason: `HTTP ${e.status}`, ...(e.afterMs !== undefined ? { afterMs: e.afterMs } : {}) } : e instanceof RegistryError && e.retriable ? { reason: describeCause(e.cause ?? e) } : undefined),
    );
    await res.body.dump().catch(() => undefined);
    if (res.statusCode === 401) {
      this.challenges.set(registry, parseWwwAuthenticate(header(res, 'www-authenticate')) ?? null);
    } else if (res.statusCode >= 400) {
      throw new RegistryError(`GET ${base}/v2/ (ping of registry ${registry}) answered ${res.statusCode}${res.statusCode >= 500 ? '' : ' — is it a distribution (v2) registry?'}`, { status: res.statusCode, retriable: res.statusCode === 429 || res.statusCode >= 500 });
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

  private fetchToken(registry: string, ch: Challenge, scopes: readonly string[]): Promise<string> {
    return this.retry('GET', registry, `token service ${ch.params.realm ?? ''}`, () => this.fetchTokenOnce(registry, ch, scopes), (e) => (e instanceof RegistryError && e.retriable ? { reason: e.message } : undefined));
  }

  private async fetchTokenOnce(registry: string, ch: Challenge, scopes: readonly string[]): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`registry ${registry} sent a Bearer challenge without a realm`);
    const url = new URL(realm);
    const cred = await this.credentials.get(registry);
    let res: Resp;
    try {
      if (cred?.identityToken) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'crossbuild', scope: scopes.join(' ') });
        if (ch.params.service) form.set('service', ch.params.service);
        res = await request(url, { method: 'POST', dispatcher: this.agent(url.host), headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT }, body: form.toString(), signal: this.signal });
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
        res = await request(url, { method: 'GET', dispatcher: this.agent(url.host), headers, signal: this.signal });
      }
    } catch (e) {
      throw new RegistryError(`token request to ${url.origin}${url.pathname} (for ${registry}) failed: ${describeCause(e)}`, { retriable: true, cause: e });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      throw new RegistryError(`token request to ${url.origin}${url.pathname} (for ${registry}): the answer broke off: ${describeCause(e)}`, { retriable: true, cause: e });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new AuthError(`registry ${registry} refused the credentials${cred ? ` for user "${cred.username ?? 'token'}"` : ' (none were found)'}`, {
        status: res.statusCode,
        hint: `log in with \`docker login ${registry}\`, or pass --username and --password-stdin`,
      });
    }
    if (res.statusCode >= 400) throw new RegistryError(`token request to ${url.origin}${url.pathname} (for ${registry}) answered ${res.statusCode}`, { status: res.statusCode, retriable: res.statusCode === 429 || res.statusCode >= 500 });
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
    const replayable = o.body === undefined || Buffer.isBuffer(o.body);
    const canRetry = o.idempotent && replayable;
    let authRetried = false;
    const exchange = async (base: string, last: boolean): Promise<Resp> => {
      const url = path.startsWith('http') ? path : `${base}${path}`;
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...(o.headers ?? {}) };
      const auth = await this.authHeader(registry, o.scopes);
      if (auth) headers.authorization = auth;
      let res: Resp;
      try {
        res = await this.logged(method, registry, path, () => request(url, { method: method as Dispatcher.HttpMethod, headers, ...(o.body !== undefined ? { body: o.body } : {}), dispatcher: this.agent(registry), signal: this.signal }));
      } catch (e) {
        if (this.signal.aborted) throw new CancelledError(`${method} ${registry}${stripQuery(path)}`);
        throw new RegistryError(`${method} ${registry}${stripQuery(path)}${o.what ? ` (${o.what})` : ''} failed: ${describeCause(e)}`, { retriable: true, cause: e });
      }
      if (res.statusCode === 401 && !authRetried && replayable) {
        await res.body.dump();
        const ch = parseWwwAuthenticate(header(res, 'www-authenticate'));
        if (ch) {
          this.challenges.set(registry, ch);
          // A token that was refused, or a new challenge (another realm or scope): drop this
          // registry's tokens. A request sent before the challenge was known drops nothing.
          if (auth) for (const k of this.tokens.keys()) if (k.startsWith(`${registry}|`)) this.tokens.delete(k);
        }
        authRetried = true;
        return exchange(base, last);
      }
      if (res.statusCode === 401 || res.statusCode === 403) {
        const detail = await errorDetail(res);
        const cred = await this.credentials.get(registry).catch(() => undefined);
        throw new AuthError(`registry ${registry} denied ${method} ${stripQuery(path)} (${res.statusCode}${detail ? `: ${detail}` : ''})${cred ? '' : '; no credentials were found for it'}`, {
          status: res.statusCode,
          hint: `log in with \`docker login ${registry}\`, or pass --username and --password-stdin`,
        });
      }
      if ((res.statusCode === 429 || res.statusCode >= 500) && canRetry && !last) {
        await res.body.dump().catch(() => undefined);
        throw new StatusRetry(res.statusCode, retryAfterMs(header(res, 'retry-after')));
      }
      return res;
    };
    // The first request to a registry does not wait for the ping: it goes out beside it, on the
    // scheme the ping tries first, and an HTTP answer settles the scheme (a round trip saved per
    // command; a 401 teaches the challenge as the ping would; a 429/5xx goes through the retry
    // policy as any). No answer at all, or a 400 (a TLS server spoken to in plain HTTP), waits for
    // the ping: its error says more, and on another scheme the request is sent again there.
    let base = this.confirmed.get(registry);
    const ping = base === undefined ? this.base(registry) : undefined;
    ping?.catch(() => undefined);
    if (base === undefined && (!replayable || path.startsWith('http'))) base = await ping!;
    let pingFailed = false;
    const viaPing = async (): Promise<string> => {
      try {
        return await ping!;
      } catch (e) {
        pingFailed = true;
        throw e;
      }
    };
    const attempt = async (last: boolean): Promise<Resp> => {
      if (base !== undefined) return exchange(base, last);
      const guess = this.firstScheme(registry);
      const settle = () => {
        if (!this.confirmed.has(registry)) this.confirmed.set(registry, guess);
        base = this.confirmed.get(registry);
      };
      let res: Resp;
      try {
        res = await exchange(guess, last);
      } catch (e) {
        if (e instanceof StatusRetry || e instanceof AuthError) settle();
        if (base !== undefined || e instanceof CancelledError) throw e;
        base = await viaPing();
        if (base === guess) throw e;
        authRetried = false;
        return exchange(base, last);
      }
      // A 400 may be a TLS server spoken to in plain HTTP, a 404 something that is no registry at
      // all: the ping, sent at the same moment, decides (and names it) before either is believed.
      if (res.statusCode !== 400 && res.statusCode !== 404) {
        settle();
        return res;
      }
      base = await viaPing().catch(async (e: unknown) => {
        await res.body.dump().catch(() => undefined);
        throw e;
      });
      if (base === guess) return res;
      await res.body.dump().catch(() => undefined);
      authRetried = false;
      return exchange(base, last);
    };
    return this.retry(method, registry, path, (_attempt, last) => attempt(last), (e) => {
      if (!canRetry || pingFailed) return undefined;
      if (e instanceof StatusRetry) return { reason: `HTTP ${e.status}`, ...(e.afterMs !== undefined ? { afterMs: e.afterMs } : {}) };
      if (e instanceof RegistryError && e.retriable && !(e instanceof AuthError)) return { reason: describeCause(e.cause ?? e) };
      return undefined;
    });
  }

  /** The base the ping tries first (see resolveBase). */
  private firstScheme(registry: string): string {
    const host = this.host(registry);
    return this.opts.plainHttp || isLoopbackRegistry(registry) ? `http://${host}` : `https://${host}`;
  }

  /** One HTTP exchange, told to the request log (`--debug`). */
  private async logged(method: string, registry: string, path: string, send: () => Promise<Resp>): Promise<Resp> {
    const log = this.opts.onRequest;
    if (!log) return send();
    const t0 = Date.now();
    const startedMs = Math.round(performance.now());
    try {
      const res = await send();
      log({ method, registry, path: stripQuery(path), outcome: res.statusCode, startedMs, ms: Date.now() - t0 });
      return res;
    } catch (e) {
      log({ method, registry, path: stripQuery(path), outcome: describeCause(e), startedMs, ms: Date.now() - t0 });
      throw e;
    }
  }
}

/** An answer worth asking again (429, 5xx), thrown inside the retry loop only. */
class StatusRetry extends Error {
  constructor(
    readonly status: number,
    readonly afterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
}

export function header(res: Resp, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function stripQuery(path: string): string {
  const p = path.replace(/^https?:\/\/[^/]+/, '');
  const i = p.indexOf('?');
  return i < 0 ? p : p.slice(0, i);
}

export function retryAfterMs(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.min(Math.max(secs, 0), 60) * 1000;
  const when = Date.parse(v);
  return Number.isNaN(when) ? undefined : Math.min(Math.max(when - Date.now(), 0), 60_000);
}

/** Registry error JSON: {"errors":[{"code","message","detail"}]} → "CODE: message", the first code as such, and every code. */
export async function errorInfo(res: Resp): Promise<{ detail?: string; code?: string; codes?: string[] }> {
  let text = '';
  try {
    text = await res.body.text();
  } catch {
    return {};
  }
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (Array.isArray(j.errors) && j.errors.length > 0) {
      const detail = j.errors.map((e) => `${e.code ?? 'ERROR'}: ${e.message ?? ''}${e.detail && typeof e.detail === 'object' ? ` ${JSON.stringify(e.detail)}` : ''}`).join('; ');
      const codes = j.errors.flatMap((e) => (typeof e.code === 'string' ? [e.code] : []));
      const code = typeof j.errors[0]!.code === 'string' ? j.errors[0]!.code : undefined;
      return { detail, ...(code ? { code } : {}), codes };
    }
  } catch {
    // not JSON
  }
  const detail = text.trim().slice(0, 200);
  return detail ? { detail } : {};
}

export async function errorDetail(res: Resp): Promise<string | undefined> {
  return (await errorInfo(res)).detail;
}

/** undici's errors carry the useful part in `cause` or `code` (UND_ERR_HEADERS_TIMEOUT, ECONNRESET). */
export function describeCause(e: unknown): string {
  const err = e as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const code = err.code ?? err.cause?.code;
  const friendly: Record<string, string> = {
    UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
    UND_ERR_BODY_TIMEOUT: 'the body stalled (no data in time)',
    UND_ERR_CONNECT_TIMEOUT: 'could not connect in time',
    UND_ERR_SOCKET: 'the connection closed',
    ECONNRESET: 'the connection was reset',
    ECONNREFUSED: 'connection refused',
  };
  const base = err.message ?? String(e);
  return code && friendly[code] ? `${friendly[code]} (${code})${err.cause?.message && err.cause.message !== base ? `: ${err.cause.message}` : ''}` : base;
}
