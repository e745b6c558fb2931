// Base layers read ahead into the layer cache (verify/layers.ts readAhead): a later scan of an
// image with that layer takes it from there, one that starts while the read is under way waits
// for it (the layer is read once), and one whose read ahead failed reads the layer itself. Scans
// from the cache ask the repository once for a layer their platforms share.
// Against the in-process registry stub.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { LayerCache } from '../../src/verify/layer-cache.js';
import { readAhead, scanImage } from '../../src/verify/layers.js';
import { planBase, readBasesAhead } from '../../src/pipeline/read-ahead.js';
import { parsePlatform } from '../../src/platform/platform.js';
import type { PlatformPlan } from '../../src/pipeline/plan.js';
import { startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';
import { ustarHeader } from '../helpers/ustar.mjs';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let reg: RegistryStub;
let dir: string;
let client: RegistryClient;
beforeEach(async () => {
  reg = await startRegistryStub();
  dir = mkdtempSync(join(tmpdir(), 'cb-read-ahead-'));
  client = new RegistryClient({ attempts: 1 });
});
afterEach(async () => {
  await client.close();
  await reg.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A gzip'd tar of one file; its descriptor, stored in the stub. */
function layer(name: string, body: string) {
  const data = Buffer.from(body);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  const bytes = gzipSync(Buffer.concat([ustarHeader(name, data.length), data, pad, Buffer.alloc(1024)]));
  return { mediaType: LAYER, digest: reg.putBlob(bytes), size: bytes.length };
}
const blobGets = (digest: string) => reg.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`));

describe('readAhead', () => {
  it("puts the base's layer in the cache: the scan of an image built on it reads only its own layer", async () => {
    const base = layer('etc/base', 'base\n');
    const top = layer('etc/top', 'top\n');
    const cache = new LayerCache(dir);
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(1);
    const scan = await scanImage(client, reg.addr, 'app', [base, top], { cache });
    expect(scan.fromCache).toBe(1);
    expect(blobGets(base.digest).map((r) => r.path)).toEqual([`/v2/base/blobs/${base.digest}`]);
    expect(blobGets(top.digest).map((r) => r.path)).toEqual([`/v2/app/blobs/${top.digest}`]);
    expect(scan.fs.resolve('/etc/base').status).not.toBe('absent');
    expect(scan.fs.resolve('/etc/top').status).not.toBe('absent');
    // Already there: nothing is read again.
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(0);
  });

  it('a scan that starts while the layer is read ahead waits for that read', async () => {
    const base = layer('etc/base', 'base\n');
    const cache = new LayerCache(dir);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    reg.fault = async (req) => {
      if (req.url === `/v2/base/blobs/${base.digest}`) await held;
      return false;
    };
    const ahead = readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal);
    while (blobGets(base.digest).length === 0) await new Promise((r) => setTimeout(r, 10));
    const scan = scanImage(client, reg.addr, 'app', [base], { cache });
    await new Promise((r) => setTimeout(r, 100));
    release();
    const [n, s] = await Promise.all([ahead, scan]);
    expect(n).toBe(1);
    expect(s.fromCache).toBe(1);
    expect(blobGets(base.digest)).toHaveLength(1);
  });

  it('a read ahead that failed leaves the layer to the scan, which reads it itself', async () => {
    const base = layer('etc/base', 'base\n');
    const cache = new LayerCache(dir);
    reg.fault = (req, res) => {
      if (req.url !== `/v2/base/blobs/${base.digest}`) return false;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
      return true;
    };
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(0);
    const scan = await scanImage(client, reg.addr, 'app', [base], { cache });
    expect(scan.fromCache).toBe(0);
    expect(blobGets(base.digest).map((r) => r.path)).toEqual([`/v2/base/blobs/${base.digest}`, `/v2/app/blobs/${base.digest}`]);
  });

  it('a read ahead under way that then fails: the scan that waited for it reads the layer itself', async () => {
    const base = layer('etc/base', 'base\n');
    const cache = new LayerCache(dir);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    reg.fault = async (req, res) => {
      if (req.url !== `/v2/base/blobs/${base.digest}`) return false;
      await held;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
      return true;
    };
    const ahead = readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal);
    while (blobGets(base.digest).length === 0) await new Promise((r) => setTimeout(r, 10));
    const scan = scanImage(client, reg.addr, 'app', [base], { cache });
    release();
    const [n, s] = await Promise.all([ahead, scan]);
    expect(n).toBe(0);
    expect(s.fromCache).toBe(0);
    expect(blobGets(base.digest).map((r) => r.path)).toEqual([`/v2/base/blobs/${base.digest}`, `/v2/app/blobs/${base.digest}`]);
  });

  it('a layer still waiting for its turn to be read ahead is called off: the scan reads it at once', async () => {
    // Two held reads take the read ahead's own slots; the third layer waits behind them.
    const held = [layer('a', 'a\n'), layer('b', 'b\n')];
    const third = layer('c', 'c\n');
    const cache = new LayerCache(dir);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    reg.fault = async (req) => {
      if (held.some((l) => req.url === `/v2/base/blobs/${l.digest}`)) await gate;
      return false;
    };
    const ahead = readAhead(client, reg.addr, 'base', [...held, third], cache, new AbortController().signal);
    while (held.some((l) => blobGets(l.digest).length === 0)) await new Promise((r) => setTimeout(r, 10));
    const scan = await scanImage(client, reg.addr, 'app', [third], { cache });
    expect(scan.fromCache).toBe(0);
    release();
    expect(await ahead).toBe(2);
    expect(blobGets(third.digest).map((r) => r.path)).toEqual([`/v2/app/blobs/${third.digest}`]);
  });
});

describe('scans from the cache', () => {
  const blobHeads = (digest: string) => reg.requests.filter((r) => r.method === 'HEAD' && r.path.endsWith(`/blobs/${digest}`));
  it('platforms that share a cached layer ask the repository for it once; a later scan asks again', async () => {
    const shared = layer('usr/share/data', 'data\n');
    const own = [layer('bin/a', 'a\n'), layer('bin/b', 'b\n'), layer('bin/c', 'c\n')];
    const cache = new LayerCache(dir);
    await Promise.all(own.map((l) => scanImage(client, reg.addr, 'fill', [shared, l], { cache })));
    const at = reg.requests.length;
    const scans = await Promise.all(own.map((l) => scanImage(client, reg.addr, 'app', [shared, l], { cache })));
    expect(scans.map((s) => s.fromCache)).toEqual([2, 2, 2]);
    const asked = reg.requests.slice(at);
    expect(asked.filter((r) => r.method === 'GET')).toEqual([]);
    expect(blobHeads(shared.digest).filter((r) => r.path.startsWith('/v2/app/'))).toHaveLength(1);
    for (const l of own) expect(blobHeads(l.digest).filter((r) => r.path.startsWith('/v2/app/'))).toHaveLength(1);
    // Not remembered after it was answered: the blob may have gone since.
    await scanImage(client, reg.addr, 'app', [shared], { cache });
    expect(blobHeads(shared.digest).filter((r) => r.path.startsWith('/v2/app/'))).toHaveLength(2);
  });

  it('a shared layer the repository no longer serves fails each scan with its own layer named, asked once', async () => {
    const shared = layer('usr/share/data', 'data\n');
    const own = layer('bin/a', 'a\n');
    const cache = new LayerCache(dir);
    await scanImage(client, reg.addr, 'fill', [own, shared], { cache });
    reg.blobs.delete(shared.digest);
    const at = reg.requests.length;
    const [first, second] = await Promise.allSettled([scanImage(client, reg.addr, 'app', [shared], { cache }), scanImage(client, reg.addr, 'app', [own, shared], { cache })]);
    expect(first.status === 'rejected' && String(first.reason.message)).toBe(`layer 0 of 1 of ${reg.addr}/app (${shared.digest}) is not in the repository any more (its facts are known, but a pull would fail)`);
    expect(second.status === 'rejected' && String(second.reason.message)).toBe(`layer 1 of 2 of ${reg.addr}/app (${shared.digest}) is not in the repository any more (its facts are known, but a pull would fail)`);
    expect(reg.requests.slice(at).filter((r) => r.method === 'HEAD' && r.path === `/v2/app/blobs/${shared.digest}`)).toHaveLength(1);
  });
});

describe('readBasesAhead', () => {
  const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
  const INDEX = 'application/vnd.oci.image.index.v1+json';
  /** A plan as run.ts makes it, as far as the read ahead looks: the platform and the build's Dockerfile. */
  const plan = (dockerfile: string, platform: string) => ({ target: { platform: parsePlatform(platform) }, build: { dockerfile, inputs: { buildContexts: [] } } }) as unknown as Pick<PlatformPlan, 'target' | 'build'>;
  const dockerfile = (text: string) => {
    const f = join(dir, `Dockerfile-${Math.random().toString(16).slice(2)}`);
    writeFileSync(f, text);
    return f;
  };

  it("reads the platform's image of a multi-platform base, each base and platform once; not a Docker Hub base; not when off", async () => {
    const images = ['arm64', 'amd64'].map((arch) => {
      const l = layer(`etc/${arch}`, `${arch}\n`);
      const config = JSON.stringify({ os: 'linux', architecture: arch, rootfs: { type: 'layers', diff_ids: [] } });
      const cd = reg.putBlob(config);
      const m = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [l] });
      return { arch, layer: l, digest: reg.putManifest('base', `only-${arch}`, m, MANIFEST), size: Buffer.byteLength(m) };
    });
    reg.putManifest('base', '1', JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: images.map((i) => ({ mediaType: MANIFEST, digest: i.digest, size: i.size, platform: { os: 'linux', architecture: i.arch } })) }), INDEX);
    const cache = new LayerCache(dir);
    const ours = dockerfile(`FROM ${reg.addr}/base:1\n`);
    const plans = [plan(ours, 'linux/arm64'), plan(ours, 'linux/arm64'), plan(dockerfile('FROM alpine:3.20\n'), 'linux/arm64')];
    expect(await readBasesAhead(client, plans, cache, new AbortController().signal, { CROSSBUILD_READ_AHEAD: 'off' })).toBe(0);
    expect(reg.requests).toEqual([]);
    expect(await readBasesAhead(client, plans, cache, new AbortController().signal, {})).toBe(1);
    expect(cache.holds(images[0]!.layer.digest)).toBe(true);
    expect(cache.holds(images[1]!.layer.digest)).toBe(false);
    expect(blobGets(images[0]!.layer.digest)).toHaveLength(1);
    // A Docker Hub base is not read ahead at all; the stub was asked only for the arm64 image.
    expect(planBase(plans[2]!)).toBeUndefined();
    expect(planBase(plans[0]!)).toMatchObject({ registry: reg.addr, repository: 'base', tag: '1' });
    expect(reg.requests.filter((r) => r.path.includes('/manifests/')).map((r) => r.path)).toEqual(['/v2/base/manifests/1', `/v2/base/manifests/${images[0]!.digest}`]);
  });
});
