// The transport and client against an in-process registry (no Docker): one retry policy with
// Retry-After shared per registry and a total budget, cancellation that ends any wait at once, a
// trickling body cut off, typed reads that name what is wrong, and a read-back that catches a
// registry which answered 201 but stored nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/errors.js';
import { RegistryClient, type RequestInfo, type RetryInfo } from '../../src/registry/client.js';
import { publishList } from '../../src/registry/publish.js';
import { planList, pushList } from '../../src/manifest/assemble.js';
import type { SpecChild } from '../../src/manifest/spec.js';
import { CancelledError, retry } from '../../src/util/retry.js';
import { startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let reg: RegistryStub;
let retries: RetryInfo[];
const client = (o: ConstructorParameters<typeof RegistryClient>[0] = {}) => new RegistryClient({ backoffMs: 20, onRetry: (r) => retries.push(r), ...o });

/** A tiny image in the stub: config + manifest; returns the manifest digest. */
function image(repo: string, tag: string, platform = { os: 'linux', architecture: 'arm64' }): string {
  const config = JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] } });
  const cd = reg.putBlob(config);
  return reg.putManifest(repo, tag, JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [] }), MANIFEST);
}

beforeEach(async () => {
  reg = await startRegistryStub();
  retries = [];
});
afterEach(async () => {
  await reg.close();
});

describe('one retry policy', () => {
  it('a 503 is retried with a progress notice, then the answer is used', async () => {
    const d = image('app', 'v1');
    let fails = 2;
    reg.fault = (req, res) => {
      if (req.url?.includes('/manifests/') && fails-- > 0) return void res.writeHead(503).end(), true;
      return false;
    };
    const c = client();
    const m = await c.manifest(reg.addr, 'app', 'v1');
    expect(m.descriptor.digest).toBe(d);
    expect(retries.map((r) => [r.method, r.path, r.attempt, r.reason])).toEqual([
      ['GET', '/v2/app/manifests/v1', 2, 'HTTP 503'],
      ['GET', '/v2/app/manifests/v1', 3, 'HTTP 503'],
    ]);
    await c.close();
  });

  it("a 429's Retry-After is honoured (the wait is at least what the registry asked)", async () => {
    image('app', 'a');
    image('app', 'b');
    let limited = false;
    reg.fault = (req, res) => {
      if (req.url === '/v2/app/manifests/a' && !limited) {
        limited = true;
        res.writeHead(429, { 'retry-after': '1' }).end();
        return true;
      }
      return false;
    };
    const c = client();
    await c.manifest(reg.addr, 'app', 'a');
    const firstRetryAt = reg.requests.filter((r) => r.path === '/v2/app/manifests/a')[1]!.at;
    // A request started while the pause holds waits for it too.
    const started = Date.now();
    limited = true;
    await c.manifest(reg.addr, 'app', 'b');
    expect(retries).toHaveLength(1);
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(1000);
    expect(firstRetryAt - reg.requests[1]!.at).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(1000);
    await c.close();
  });

  it('concurrent requests during a pause wait for it (per-registry backoff)', async () => {
    image('app', 'a');
    image('app', 'b');
    let once = true;
    reg.fault = (req, res) => {
      if (req.url === '/v2/app/manifests/a' && once) {
        once = false;
        res.writeHead(503, { 'retry-after': '1' }).end();
        return true;
      }
      return false;
    };
    const c = client();
    const a = c.manifest(reg.addr, 'app', 'a');
    // b starts once a's 503 set the pause (its retry is announced right after), not after a guess.
    while (retries.length === 0) await new Promise((r) => setTimeout(r, 10));
    const bStarted = Date.now();
    await Promise.all([a, c.manifest(reg.addr, 'app', 'b')]);
    const paused = reg.requests.find((r) => r.path === '/v2/app/manifests/a')!.at;
    const b = reg.requests.find((r) => r.path === '/v2/app/manifests/b')!;
    expect(bStarted - paused).toBeLessThan(950); // b was asked for while the pause held
    expect(b.at - paused).toBeGreaterThanOrEqual(950); // and waited for it
    await c.close();
  });

  it('a persistent 5xx is named within the retry budget, as a temporary failure', async () => {
    image('app', 'v1');
    reg.fault = (req, res) => (req.url?.includes('/manifests/') ? (res.writeHead(502).end(), true) : false);
    const c = client({ attempts: 50, retryBudgetMs: 1500, backoffMs: 200 });
    const started = Date.now();
    const e = (await c.manifest(reg.addr, 'app', 'v1').catch((x: unknown) => x)) as RegistryError;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(e).toBeInstanceOf(RegistryError);
    expect(e).toMatchObject({ status: 502, kind: 'temporary', retriable: true });
    expect(e.message).toMatch(/GET manifest app:v1 on 127\.0\.0\.1:\d+ failed: HTTP 502/);
    expect(retries.length).toBeGreaterThan(1);
    await c.close();
  });

  it('when an attempt itself uses up the budget, one last attempt reports what it gets (never the internal retry signal)', async () => {
    const seen: boolean[] = [];
    const answer = await retry(
      async (_n, last) => {
        seen.push(last);
        await new Promise((r) => setTimeout(r, 60));
        if (!last) throw new Error('worth another try');
        return 'the answer, as it is';
      },
      { policy: { attempts: 10, baseMs: 30, maxDelayMs: 1000, budgetMs: 100 }, what: 'op', decide: () => ({ reason: 'again' }) },
    );
    expect(answer).toBe('the answer, as it is');
    expect(seen.at(-1)).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(3);
  });

  // distribution 2.8's answer (captured, test/fixtures/registry) when a manifest PUT meets a blob link another push of the
  // same blob is rewriting at that moment: every code is kept, and the telling one is not first.
  const BEHIND = readFileSync(join(__dirname, '..', 'fixtures', 'registry', 'manifest-put-behind-its-writes.json'), 'utf8');
  const MANIFEST_BODY = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }, layers: [] });

  it('a manifest PUT refused for a blob the registry does not see yet (pushed just before) is sent again, and said', async () => {
    let refusals = 2;
    reg.fault = (req, res) => {
      if (req.method === 'PUT' && req.url?.includes('/manifests/') && refusals-- > 0) return void res.writeHead(400, { 'content-type': 'application/json' }).end(BEHIND), true;
      return false;
    };
    const c = client();
    const d = await c.putManifest(reg.addr, 'app', 'v1', Buffer.from(MANIFEST_BODY), MANIFEST);
    expect(reg.manifests.get('app')!.get('v1')!.bytes.toString()).toBe(MANIFEST_BODY);
    expect(d).toMatch(/^sha256:/);
    expect(retries.map((r) => [r.method, r.path, r.attempt])).toEqual([
      ['PUT', '/v2/app/manifests/v1', 2],
      ['PUT', '/v2/app/manifests/v1', 3],
    ]);
    expect(retries[0]!.reason).toBe('the registry does not see yet what the manifest names (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN)');
    await c.close();
  });

  it('a manifest PUT refused as invalid is not sent again; a refusal that persists is named with every code', async () => {
    reg.fault = (req, res) => (req.method === 'PUT' ? (res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid' }] })), true) : false);
    const c = client();
    const invalid = (await c.putManifest(reg.addr, 'app', 'v1', Buffer.from(MANIFEST_BODY), MANIFEST).catch((x: unknown) => x)) as RegistryError;
    expect(invalid).toMatchObject({ status: 400, code: 'MANIFEST_INVALID', codes: ['MANIFEST_INVALID'] });
    expect(retries).toEqual([]);
    reg.fault = (req, res) => (req.method === 'PUT' ? (res.writeHead(400, { 'content-type': 'application/json' }).end(BEHIND), true) : false);
    const behind = (await c.putManifest(reg.addr, 'app', 'v1', Buffer.from(MANIFEST_BODY), MANIFEST).catch((x: unknown) => x)) as RegistryError;
    expect(behind).toMatchObject({ status: 400, code: 'DIGEST_INVALID', codes: ['DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN'] });
    expect(behind.message).toMatch(/PUT manifest app:v1 on 127\.0\.0\.1:\d+ failed: HTTP 400 DIGEST_INVALID: .*MANIFEST_BLOB_UNKNOWN: blob unknown to registry/);
    expect(retries).toHaveLength(3);
    await c.close();
  });

  it('a missing manifest is not retried: kind not-found, with the registry code', async () => {
    const c = client();
    const e = (await c.manifest(reg.addr, 'app', 'nope').catch((x: unknown) => x)) as RegistryError;
    expect(e).toMatchObject({ status: 404, kind: 'not-found', code: 'MANIFEST_UNKNOWN' });
    expect(retries).toEqual([]);
    await c.close();
  });
});

describe('cancellation and deadlines', () => {
  it('the signal ends a request that waits for headers, at once, with no retry after it', async () => {
    reg.fault = (req) => req.url?.includes('/manifests/') === true; // never answers
    const stop = new AbortController();
    const c = client({ signal: stop.signal });
    const p = c.manifest(reg.addr, 'app', 'v1').catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 300));
    const at = Date.now();
    stop.abort();
    const e = await p;
    expect(Date.now() - at).toBeLessThan(500);
    expect(e).toBeInstanceOf(CancelledError);
    expect(retries).toEqual([]);
    await c.close();
  });

  it('the signal ends a retry wait at once', async () => {
    reg.fault = (req, res) => (req.url?.includes('/manifests/') ? (res.writeHead(503, { 'retry-after': '30' }).end(), true) : false);
    const stop = new AbortController();
    const c = client({ signal: stop.signal });
    const p = c.manifest(reg.addr, 'app', 'v1').catch((x: unknown) => x);
    while (retries.length === 0) await new Promise((r) => setTimeout(r, 20));
    const at = Date.now();
    stop.abort();
    expect(await p).toBeInstanceOf(CancelledError);
    expect(Date.now() - at).toBeLessThan(300);
    await c.close();
  });

  it('close() stops what is still in flight, quietly: no retry notices after the decision', async () => {
    let calls = 0;
    reg.fault = (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      calls++;
      setTimeout(() => res.writeHead(503).end(), 100);
      return true;
    };
    const c = client({ attempts: 10, retryBudgetMs: 20_000 });
    const p = c.manifest(reg.addr, 'app', 'v1').catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 50));
    await c.close();
    const seen = retries.length;
    expect(await p).toBeInstanceOf(CancelledError);
    await new Promise((r) => setTimeout(r, 400));
    expect(retries.length).toBe(seen);
    expect(calls).toBeLessThanOrEqual(2);
  });

  it('a manifest that trickles (a byte at a time, never idle long) is cut off as too slow', async () => {
    reg.fault = (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': MANIFEST });
      const t = setInterval(() => res.write('{'), 200);
      res.on('close', () => clearInterval(t));
      return true;
    };
    const c = client({ timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 }, retryBudgetMs: 1000 });
    const started = Date.now();
    const e = (await c.manifest(reg.addr, 'app', 'v1').catch((x: unknown) => x)) as Error;
    expect(e.message).toMatch(/too slow: \d+ bytes in \d+ s, below 1024 bytes\/s \(--registry-timeout gives more time\)/);
    expect(Date.now() - started).toBeLessThan(6000);
    await c.close();
  });
});

describe('typed reads', () => {
  it('an image or an index, parsed once, with the descriptor it was read as', async () => {
    const d = image('app', 'v1');
    const c = client();
    const img = await c.image(reg.addr, 'app', 'v1');
    expect(img.descriptor).toMatchObject({ digest: d, mediaType: MANIFEST });
    expect(img.config).toMatchObject({ os: 'linux', architecture: 'arm64' });
    const size = reg.manifests.get('app')!.get(d)!.bytes.length;
    const idx = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: MANIFEST, digest: d, size, platform: { os: 'linux', architecture: 'arm64' } }] });
    reg.putManifest('app', 'list', idx, INDEX);
    const m = await c.manifest(reg.addr, 'app', 'list');
    expect(m.kind).toBe('index');
    if (m.kind === 'index') expect(m.index.manifests[0]!.digest).toBe(d);
    await expect(c.image(reg.addr, 'app', 'list')).rejects.toThrow(/is a list \(application\/vnd\.oci\.image\.index\.v1\+json\), not an image/);
    await c.close();
  });

  it('bytes that are not a manifest of their kind are an invalid error naming the digest', async () => {
    const d = reg.putManifest('app', 'bad', JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, layers: 'x' }), MANIFEST);
    const c = client();
    const e = (await c.manifest(reg.addr, 'app', 'bad').catch((x: unknown) => x)) as RegistryError;
    expect(e).toMatchObject({ kind: 'invalid' });
    expect(e.message).toContain(`${reg.addr}/app@${d}`);
    expect(e.message).toMatch(/is not a valid image manifest: config: /);
    await expect(c.manifest(reg.addr, 'app', d, { size: 3 })).rejects.toThrow(/bytes, not the 3 its descriptor says/);
    await c.close();
  });

  it('a config blob is checked against its descriptor size', async () => {
    const config = JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } });
    const cd = reg.putBlob(config);
    reg.putManifest('app', 'liar', JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length - 5 }, layers: [] }), MANIFEST);
    const c = client({ attempts: 1 });
    await expect(c.image(reg.addr, 'app', 'liar')).rejects.toThrow(/more than the \d+ bytes its descriptor says/);
    await c.close();
  });

  it('a HEAD without Content-Type or Content-Length asks GET, never guesses', async () => {
    const d = image('app', 'v1');
    reg.fault = (req, res) => {
      if (req.method !== 'HEAD') return false;
      res.writeHead(200, { 'docker-content-digest': d }).end();
      return true;
    };
    const c = client();
    const h = await c.headManifest(reg.addr, 'app', 'v1');
    expect(h).toEqual({ digest: d, mediaType: MANIFEST, size: reg.manifests.get('app')!.get(d)!.bytes.length });
    expect(reg.requests.filter((r) => r.method === 'GET' && r.path === '/v2/app/manifests/v1')).toHaveLength(1);
    await c.close();
  });
});

describe('round trips', () => {
  it('the first request goes out beside the ping, not after it, and the request log tells both', async () => {
    const d = image('app', 'v1');
    // The ping is held until the test lets it go, after the manifest was answered (or not).
    let release!: () => void;
    const pingHeld = new Promise<void>((r) => (release = r));
    reg.fault = async (req) => {
      if (req.url === '/v2/') await pingHeld;
      return false;
    };
    const log: RequestInfo[] = [];
    const c = client({ onRequest: (r) => log.push(r) });
    let timer: NodeJS.Timeout | undefined;
    const queued = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the manifest read waited for the held ping')), 5000)));
    // Answered while the ping still waits: it did not queue behind it.
    const m = await Promise.race([c.manifest(reg.addr, 'app', 'v1'), queued]);
    clearTimeout(timer);
    expect(m.descriptor.digest).toBe(d);
    expect(log.map((r) => `${r.method} ${r.path} ${r.outcome}`)).toContain('GET /v2/app/manifests/v1 200');
    await c.close();
    // The client hung up on the held ping: the registry's side ends inside this test, not in a later one.
    release();
    await new Promise((r) => setImmediate(r));
  });

  it('a host that is no registry is named as such, not as a missing manifest, though the request went out beside the ping', async () => {
    reg.fault = (req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
      return true;
    };
    const c = client({ attempts: 1 });
    await expect(c.manifest(reg.addr, 'app', 'v1')).rejects.toThrow(/ping of registry 127\.0\.0\.1:\d+\) answered 404 — is it a distribution \(v2\) registry\?/);
    await c.close();
  });

  it('a list refused on the pipelined connection for a child the registry does not see yet is written again and read back', async () => {
    const d = image('app', 'v1-arm64');
    const size = reg.manifests.get('app')!.get(d)!.bytes.length;
    const c = client();
    const entry = { mediaType: MANIFEST, digest: d, size, platform: { os: 'linux', architecture: 'arm64' } };
    await c.headManifest(reg.addr, 'app', d);
    let refusals = 1;
    reg.fault = (req, res) => {
      if (req.method === 'PUT' && refusals-- > 0) return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: d }] })), true;
      return false;
    };
    const res = await publishList(c, { registry: reg.addr, repository: 'app' }, 'v1', 'oci', [entry]);
    expect(reg.manifests.get('app')!.get('v1')!.bytes.length).toBe(res.size);
    expect(reg.requests.filter((r) => r.method === 'PUT' && r.path === '/v2/app/manifests/v1')).toHaveLength(2);
    // The pipelined refusal was the first attempt: the write again is the second, after a wait, and said.
    expect(retries.map((r) => [r.method, r.path, r.attempt])).toEqual([['PUT', '/v2/app/manifests/v1', 2]]);
    expect(retries[0]!.delayMs).toBeGreaterThan(0);
    await c.close();
  });

  it('a list is written and read back on one connection, the GET right behind the PUT (this stub runs them side by side: a read that disagrees is asked again)', async () => {
    const d = image('app', 'v1-arm64');
    const size = reg.manifests.get('app')!.get(d)!.bytes.length;
    const c = client({ attempts: 1 });
    const entry = { mediaType: MANIFEST, digest: d, size, platform: { os: 'linux', architecture: 'arm64' } };
    await c.headManifest(reg.addr, 'app', d); // the registry has answered once: its scheme is known
    reg.requests.length = 0;
    const res = await publishList(c, { registry: reg.addr, repository: 'app' }, 'v1', 'oci', [entry]);
    const put = reg.requests.findIndex((r) => r.method === 'PUT' && r.path === '/v2/app/manifests/v1');
    const get = reg.requests.findIndex((r) => r.method === 'GET' && r.path === '/v2/app/manifests/v1');
    expect(put).toBeGreaterThanOrEqual(0);
    expect(get).toBeGreaterThan(put);
    expect(reg.requests[get]!.port).toBe(reg.requests[put]!.port);
    expect(reg.manifests.get('app')!.get('v1')!.bytes.length).toBe(res.size);
    await c.close();
  });
});

describe('children brought from another repository (manifest push)', () => {
  /** An image with one layer in repository `repo` of the stub. */
  const withLayer = (repo: string, tag: string, architecture: string, layer: string) => {
    const config = JSON.stringify({ os: 'linux', architecture, rootfs: { type: 'layers', diff_ids: [] } });
    const cd = reg.putBlob(config);
    const ld = reg.putBlob(layer);
    return reg.putManifest(repo, tag, JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: ld, size: layer.length }] }), MANIFEST);
  };
  const child = (repo: string, tag: string, i: number): SpecChild => ({ text: `${reg.addr}/${repo}:${tag}`, ref: { registry: reg.addr, repository: repo, tag }, platform: {}, field: `manifests[${i}]` });
  const uploads = () => reg.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));

  it('a registry that will not mount copies nothing before the plan is checked; a bad plan leaves no blob copied', async () => {
    withLayer('src', 'a', 'arm64', 'layer-a');
    withLayer('src', 'b', 'arm64', 'layer-b');
    withLayer('src', 'c', 'amd64', 'layer-c');
    const c = client({ attempts: 1 });
    const target = { registry: reg.addr, repository: 'dst', tag: 'v1' };
    // Each cancel of an upload session answered slowly: the failed plan still waits for it.
    let cancelled = 0;
    reg.fault = async (req) => {
      if (req.method === 'DELETE') {
        await new Promise((r) => setTimeout(r, 300));
        cancelled++;
      }
      return false;
    };
    // Two children of one platform: refused when the list is built, after every child was read.
    await expect(planList(c, target, [child('src', 'a', 0), child('src', 'b', 1)], 'oci')).rejects.toThrow(/linux\/arm64/);
    // The stub answers every mount with an upload session (202): tried, then let go, each session
    // cancelled before the failure returns (the CLI closes its client then, which would abort it).
    const mounts = reg.requests.filter((r) => r.method === 'POST' && r.path === '/v2/dst/blobs/uploads/').length;
    expect(mounts).toBeGreaterThan(0);
    expect(cancelled).toBe(mounts);
    reg.fault = undefined;
    expect(uploads()).toEqual([]);
    expect(reg.manifests.has('dst')).toBe(false);
    // A good plan: copied once checked, every blob of both children, counted as copied.
    const plan = await planList(c, target, [child('src', 'a', 0), child('src', 'c', 1)], 'oci');
    const res = await pushList(c, target, plan);
    expect(res.copied).toEqual({ mounted: 0, copied: 4, existed: 0, manifests: 2 });
    expect(uploads()).toHaveLength(4);
    expect(reg.manifests.get('dst')?.get('v1')).toBeDefined();
    await c.close();
  });
});

describe('the list publisher', () => {
  it('reads back what it wrote; a registry that answers 201 and stores nothing is named as such', async () => {
    const d = image('app', 'v1-arm64');
    const size = reg.manifests.get('app')!.get(d)!.bytes.length;
    const c = client({ attempts: 1 });
    const entry = { mediaType: MANIFEST, digest: d, size, platform: { os: 'linux', architecture: 'arm64' } };
    const ok = await publishList(c, { registry: reg.addr, repository: 'app' }, 'v1', 'oci', [entry]);
    expect(reg.manifests.get('app')!.get('v1')!.bytes.length).toBe(ok.size);
    reg.dropPuts = true;
    await expect(publishList(c, { registry: reg.addr, repository: 'app' }, 'v2', 'oci', [entry])).rejects.toThrow(/read back: 127\.0\.0\.1:\d+\/app:v2 was accepted \(sha256:[0-9a-f]{64}\) but the registry does not serve it/);
    await c.close();
  });
});

describe('the push check (preflight)', () => {
  it('starts an upload and cancels it: the registry answers and takes a push, with no session left open', async () => {
    const c = client({ attempts: 1 });
    await c.checkPush(reg.addr, 'team/app');
    expect(reg.requests.filter((r) => r.path !== '/v2/').map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v2/team/app/blobs/uploads/', expect.stringMatching(/^DELETE \/v2\/team\/app\/blobs\/uploads\/s\d+$/)]);
    await c.close();
  });
  it('a registry that refuses the push is an auth error with the login hint, before anything is built', async () => {
    reg.fault = (req, res) => {
      if (req.method !== 'POST') return false;
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }));
      return true;
    };
    const c = client({ attempts: 1 });
    const e = await c.checkPush(reg.addr, 'team/app').then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).kind).toBe('denied');
    expect((e as RegistryError).message).toMatch(/denied POST \/v2\/team\/app\/blobs\/uploads\/ \(403: DENIED: requested access to the resource is denied\)/);
    expect((e as RegistryError).hint).toMatch(/docker login 127\.0\.0\.1:\d+/);
    await c.close();
  });
  it('a closed port says so, with no TLS advice', async () => {
    const addr = reg.addr;
    await reg.close();
    const c = client({ attempts: 1 });
    const e = (await c.checkPush(addr, 'app').then(() => undefined, (x: unknown) => x)) as RegistryError;
    expect(e.message).toMatch(/connection refused/);
    expect(e.hint).toMatch(/nothing listens on 127\.0\.0\.1:\d+: is the registry running, and is the port right\?/);
    expect(e.hint).not.toMatch(/TLS|plain-http/);
    reg = await startRegistryStub(); // for afterEach
    await c.close();
  });
});

describe('a body that breaks off', () => {
  const big = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
  /** The first GET of the blob sends `cut` bytes, then drops the connection. */
  const cutFirst = (cut: number) => {
    let done = false;
    reg.fault = (req, res) => {
      if (done || req.method !== 'GET' || !req.url?.includes('/blobs/') || req.headers.range) return false;
      done = true;
      res.writeHead(200, { 'content-length': String(big.length) });
      res.write(big.subarray(0, cut), () => res.socket?.destroy());
      return true;
    };
  };
  it('is resumed where it stopped (a Range request), said as a retry, and checked whole against its digest', async () => {
    const d = reg.putBlob(big);
    cutFirst(65_536);
    const c = client({ attempts: 4 });
    const got = await c.getBlobBytes(reg.addr, 'app', d, 1 << 20, 'the blob', big.length);
    expect(got.equals(big)).toBe(true);
    const gets = reg.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(gets[1]!.range!)![0])).toBeGreaterThan(0);
    expect(retries.map((r) => r.reason)).toEqual([expect.stringMatching(/resuming at byte \d+/)]);
    await c.close();
  });
  it('a registry that ignores Range sends it all again: read again from the start, still whole', async () => {
    const d = reg.putBlob(big);
    reg.ignoreRanges = true;
    cutFirst(65_536);
    const c = client({ attempts: 4 });
    const got = await c.getBlobBytes(reg.addr, 'app', d, 1 << 20, 'the blob', big.length);
    expect(got.equals(big)).toBe(true);
    // The broken GET, the ranged one answered 200 (dropped), then one whole GET.
    expect(reg.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/') && !r.range)).toHaveLength(2);
    await c.close();
  });
});

describe('many requests at once', () => {
  it('forty in flight on one client (all of a list\'s layers) raise no listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const c = client({ attempts: 1, signal: new AbortController().signal });
    try {
      const d = reg.putBlob('x');
      expect(await Promise.all(Array.from({ length: 40 }, () => c.hasBlob(reg.addr, 'app', d)))).toEqual(Array(40).fill(true));
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await c.close();
    }
  });
});
