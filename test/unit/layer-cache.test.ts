// The layer facts cache, against an in-process registry holding layers made by GNU tar from real
// ELF files (Debian's /usr/bin/true for arm64 and amd64, busybox heads): a verify from a filled
// cache gives exactly the verdicts and counts of a cold one and reads no layer; an entry edited,
// moved to another digest or cut short is not trusted; the size cap holds, recent entries kept.
// Manifests read by digest are kept too: a HEAD says the registry still serves them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { parsePlatform } from '../../src/platform/platform.js';
import { LayerCache } from '../../src/verify/layer-cache.js';
import { verifyReference, type VerifyReport } from '../../src/verify/verify.js';
import { startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';

const ELF = join(__dirname, '..', 'fixtures', 'elf');
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const work = mkdtempSync(join(tmpdir(), 'cb-layer-cache-unit-'));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A gzipped layer of a folder tree: files (from fixtures or text) and symlinks. */
function layer(name: string, files: Record<string, string | { elf: string } | { link: string }>): Buffer {
  const root = join(work, name);
  for (const [path, what] of Object.entries(files)) {
    const p = join(root, path);
    mkdirSync(dirname(p), { recursive: true });
    if (typeof what === 'string') writeFileSync(p, what);
    else if ('elf' in what) copyFileSync(join(ELF, what.elf), p);
    else symlinkSync(what.link, p);
  }
  return execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--mtime=@0', '-C', root, '-czf', '-', '.'], { maxBuffer: 64 * 1024 * 1024 });
}

/** Debian's arm64 userland as the loader and libc see it, and many text files. */
const base = () =>
  layer('base', {
    'lib': { link: 'usr/lib' },
    'usr/lib/ld-linux-aarch64.so.1': { link: 'aarch64-linux-gnu/ld-linux-aarch64.so.1' },
    'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1': { elf: 'busybox-arm64.head' },
    'usr/lib/aarch64-linux-gnu/libc.so.6': { elf: 'busybox-arm64.head' },
    ...Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`usr/share/doc/f${i}.txt`, `text ${i}\n`])),
  });

let reg: RegistryStub;
let client: RegistryClient;
let layers: Record<string, Buffer>;

function pushImage(repo: string, tag: string, platform: string, parts: Buffer[]): { digest: string; size: number } {
  const p = parsePlatform(platform);
  const config = Buffer.from(JSON.stringify({ os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}), config: { Cmd: ['/usr/bin/true'] }, rootfs: { type: 'layers', diff_ids: parts.map(() => `sha256:${'0'.repeat(64)}`) } }));
  reg.putBlob(config);
  for (const l of parts) reg.putBlob(l);
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: parts.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(l), size: l.length })) }));
  return { digest: reg.putManifest(repo, tag, m, MANIFEST), size: m.length };
}

beforeAll(async () => {
  reg = await startRegistryStub();
  client = new RegistryClient({ attempts: 1 });
  layers = {
    base: base(),
    // the deep cases: one amd64 file among many arm64 ones; a dynamic binary whose loader is missing
    mixed: layer('mixed', { 'usr/bin/true': { elf: 'true-arm64' }, 'usr/bin/other': { elf: 'true-amd64' }, ...Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`usr/bin/t${i}`, { elf: 'true-arm64' }])) }),
    noLoader: layer('noloader', { 'usr/bin/true': { elf: 'true-arm64' } }),
    common: layer('common', { 'etc/app.conf': 'port=8080\n', 'usr/bin/start': '#!/bin/sh\nexec true\n' }),
    amd64: layer('amd64', { 'usr/bin/true': { elf: 'true-amd64' }, 'lib64/ld-linux-x86-64.so.2': { elf: 'busybox-amd64.head' } }),
  };
  pushImage('app', 'mixed', 'linux/arm64', [layers.base!, layers.mixed!]);
  pushImage('app', 'noloader', 'linux/arm64', [layers.noLoader!]);
  // A list whose platforms share a layer.
  const a = pushImage('app', 'l-arm64', 'linux/arm64', [layers.base!, layers.common!]);
  const b = pushImage('app', 'l-amd64', 'linux/amd64', [layers.amd64!, layers.common!]);
  reg.putManifest('app', 'list', JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: MANIFEST, ...a, platform: { os: 'linux', architecture: 'arm64' } }, { mediaType: MANIFEST, ...b, platform: { os: 'linux', architecture: 'amd64' } }] }), INDEX);
});
afterAll(async () => {
  await client.close();
  await reg.close();
  rmSync(work, { recursive: true, force: true });
});

/** GETs of layer blobs (config blobs are read every time, as they should be). */
const blobGets = () => {
  const ofLayers = new Set(Object.values(layers).map((l) => sha(l)));
  return reg.requests.filter((r) => r.method === 'GET' && ofLayers.has(r.path.split('/blobs/')[1] ?? '')).length;
};
/** The report without the cache counts (the one thing a warm verify may say differently). */
const verdicts = (r: VerifyReport) => ({ ...r, platforms: r.platforms.map((p) => ({ ...p, files: p.files ? { ...p.files, layersFromCache: undefined } : undefined })) });

async function verify(tag: string, cache: LayerCache | undefined, allow: string[] = []) {
  const before = blobGets();
  const report = await verifyReference(client, { registry: reg.addr, repository: 'app', tag }, { staticOnly: true, timeoutMs: 10_000, allow, ...(cache ? { layerCache: cache } : {}) });
  return { report, layerReads: blobGets() - before };
}

describe('a verify from the layer cache', () => {
  const cases: [string, string, string[]][] = [
    ['a wrong-arch file among many', 'mixed', []],
    ['the same, excused by --allow', 'mixed', ['/usr/bin/other']],
    ['a missing loader', 'noloader', []],
    ['a list whose platforms share a layer', 'list', []],
  ];
  for (const [name, tag, allow] of cases) {
    it(`${name}: exactly the cold verdicts and counts, and no layer read`, async () => {
      const cache = new LayerCache(mkdtempSync(join(work, 'c-')));
      const uncached = await verify(tag, undefined, allow);
      const cold = await verify(tag, cache, allow);
      const warm = await verify(tag, cache, allow);
      expect(verdicts(cold.report)).toEqual(verdicts(uncached.report));
      expect(verdicts(warm.report)).toEqual(verdicts(cold.report));
      expect(cold.layerReads).toBeGreaterThan(0);
      expect(warm.layerReads).toBe(0);
      for (const p of warm.report.platforms) expect([p.files?.layersFromCache, p.files?.layers]).toEqual([p.files?.layers, p.files?.layers]);
      for (const p of cold.report.platforms) expect(p.files?.layersFromCache).toBe(0);
    });
  }

  it('the deep cases give the verdicts they should (so the comparison above compares something)', async () => {
    const mixed = (await verify('mixed', undefined)).report.platforms[0]!;
    expect([mixed.verdict, mixed.files?.mismatches, mixed.files?.elfChecked]).toEqual(['fail', 1, 54]);
    const allowed = (await verify('mixed', undefined, ['/usr/bin/other'])).report.platforms[0]!;
    expect([allowed.verdict, allowed.files?.excused]).toEqual(['pass', 1]);
    const noLoader = (await verify('noloader', undefined)).report.platforms[0]!;
    expect(noLoader.verdict).toBe('fail');
    expect(noLoader.checks.find((c) => c.check === 'binaries')!.evidence).toMatch(/ld-linux-aarch64\.so\.1/);
  });
});

describe('an entry that is not what was written', () => {
  const tampered: [string, (dir: string, file: string, other: string) => void][] = [
    ['edited facts (an amd64 file made arm64, seal unchanged)', (_d, f) => writeFileSync(f, readFileSync(f, 'utf8').replace(/"machine":62/g, '"machine":183'))],
    ['another layer\'s entry under this digest', (_d, f, other) => copyFileSync(other, f)],
    ['truncated', (_d, f) => writeFileSync(f, readFileSync(f).subarray(0, 200))],
    ['not JSON at all', (_d, f) => writeFileSync(f, 'garbage')],
  ];
  for (const [name, tamper] of tampered) {
    it(`${name}: not trusted, the layer read again, the cold verdict, the entry rewritten`, async () => {
      const dir = mkdtempSync(join(work, 't-'));
      const cache = new LayerCache(dir);
      const cold = await verify('mixed', cache);
      const file = join(dir, `${sha(layers.mixed!).replace(':', '-')}.json`);
      const other = join(dir, `${sha(layers.base!).replace(':', '-')}.json`);
      tamper(dir, file, other);
      const again = await verify('mixed', cache);
      expect(again.layerReads).toBe(1);
      expect(again.report.platforms[0]!.files?.layersFromCache).toBe(1);
      expect(verdicts(again.report)).toEqual(verdicts(cold.report));
      expect(again.report.platforms[0]!.files?.mismatches).toBe(1);
      expect((await verify('mixed', cache)).layerReads).toBe(0);
    });
  }
});

describe('manifests kept by digest', () => {
  const listed = () => JSON.parse(reg.manifests.get('app')!.get('list')!.bytes.toString()) as { manifests: { digest: string }[] };
  const asked = (method: string, digest: string, from: number) => reg.requests.slice(from).filter((r) => r.method === method && r.path === `/v2/app/manifests/${digest}`).length;

  it("a list verified again reads its platforms' manifests from the cache: a HEAD each instead of a GET, the same report", async () => {
    const cache = new LayerCache(mkdtempSync(join(work, 'm-')));
    const children = listed().manifests.map((m) => m.digest);
    const cold = await verify('list', cache);
    const at = reg.requests.length;
    const warm = await verify('list', cache);
    expect(verdicts(warm.report)).toEqual(verdicts(cold.report));
    for (const d of children) expect([asked('GET', d, at), asked('HEAD', d, at)]).toEqual([0, 1]);
    // Without a cache every read is a GET, as before.
    const from = reg.requests.length;
    await verify('list', undefined);
    for (const d of children) expect([asked('GET', d, from), asked('HEAD', d, from)]).toEqual([1, 0]);
  });

  it('a kept manifest the registry no longer serves fails the verify, naming it', async () => {
    const cache = new LayerCache(mkdtempSync(join(work, 'm-')));
    await verify('list', cache);
    const gone = listed().manifests[1]!.digest;
    const kept = reg.manifests.get('app')!.get(gone)!;
    reg.manifests.get('app')!.delete(gone);
    try {
      await expect(verify('list', cache)).rejects.toThrow(`manifest ${reg.addr}/app@${gone} is not in the repository any more`);
    } finally {
      reg.manifests.get('app')!.set(gone, kept);
    }
  });

  it('a kept manifest whose bytes were changed is not trusted: it is read again, with the cold report', async () => {
    const dir = mkdtempSync(join(work, 'm-'));
    const cache = new LayerCache(dir);
    const cold = await verify('list', cache);
    const child = listed().manifests[0]!.digest;
    const file = join(dir, `${child.replace(':', '-')}.manifest.json`);
    const entry = JSON.parse(readFileSync(file, 'utf8')) as { mediaType: string; bytes: string };
    // The amd64 image's manifest put where the arm64 one's belongs: valid, but not these bytes.
    const other = listed().manifests[1]!.digest;
    writeFileSync(file, JSON.stringify({ ...entry, bytes: reg.manifests.get('app')!.get(other)!.bytes.toString('base64') }));
    const at = reg.requests.length;
    const again = await verify('list', cache);
    expect(verdicts(again.report)).toEqual(verdicts(cold.report));
    expect(asked('GET', child, at)).toBe(1);
    expect(cache.manifest(child)?.bytes.equals(reg.manifests.get('app')!.get(child)!.bytes)).toBe(true);
  });

  it("a kept entry's media type edited does not change what the bytes are; a link or a FIFO in its place is not followed", async () => {
    const dir = mkdtempSync(join(work, 'm-'));
    const cache = new LayerCache(dir);
    const cold = await verify('list', cache);
    const [first, second] = listed().manifests.map((m) => m.digest) as [string, string];
    const file = (d: string) => join(dir, `${d.replace(':', '-')}.manifest.json`);
    const entry = JSON.parse(readFileSync(file(first), 'utf8')) as { mediaType: string; bytes: string };
    writeFileSync(file(first), JSON.stringify({ ...entry, mediaType: INDEX }));
    // The second platform's entry: a link to a copy of itself, then a FIFO.
    const copy = join(work, `link-target-${Date.now()}`);
    copyFileSync(file(second), copy);
    rmSync(file(second));
    symlinkSync(copy, file(second));
    let at = reg.requests.length;
    const again = await verify('list', cache);
    expect(verdicts(again.report)).toEqual(verdicts(cold.report));
    expect([asked('GET', first, at), asked('HEAD', first, at)]).toEqual([0, 1]);
    expect([asked('GET', second, at), asked('HEAD', second, at)]).toEqual([1, 0]);
    rmSync(file(second));
    execFileSync('mkfifo', [file(second)]);
    at = reg.requests.length;
    expect(verdicts((await verify('list', cache)).report)).toEqual(verdicts(cold.report));
    expect(asked('GET', second, at)).toBe(1);
  });
});

describe('names beyond ASCII', () => {
  it('are kept exactly, and one of their characters changed is caught', () => {
    const facts = { entries: ['usr/share/doc/café.txt', 'usr/share/日本語/x', 'opt/🚀/run', 'a/\u00a0b'].map((name, i) => ({ name, type: 'file' as const, size: i, mode: 0o644 })) };
    const digest = `sha256:${'e'.repeat(64)}`;
    const cache = new LayerCache(mkdtempSync(join(work, 'utf-')));
    cache.put(digest, facts);
    expect(cache.get(digest)).toEqual(facts);
    const file = join(cache.dir, `${digest.replace(':', '-')}.json`);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('café');
    // The same length in UTF-8 (two bytes each): only the seal over the bytes can tell.
    writeFileSync(file, text.replace('café', 'cafè'));
    expect(cache.get(digest)).toBeUndefined();
  });
});

describe('the size cap', () => {
  it('holds after every write; the least recently used entries go first', () => {
    const dir = mkdtempSync(join(work, 'cap-'));
    const one = { entries: Array.from({ length: 40 }, (_, i) => ({ name: `usr/share/doc/file-${i}.txt`, type: 'file' as const, size: i, mode: 0o644 })) };
    const probe = new LayerCache(mkdtempSync(join(work, 'probe-')));
    probe.put(`sha256:${'f'.repeat(64)}`, one);
    const entrySize = statSync(join(probe.dir, `sha256-${'f'.repeat(64)}.json`)).size;
    const cache = new LayerCache(dir, entrySize * 3 + 10);
    const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
    const total = () => readdirSync(dir).filter((n) => n.startsWith('sha256-')).reduce((t, n) => t + statSync(join(dir, n)).size, 0);
    for (let n = 1; n <= 3; n++) cache.put(d(n), one);
    // Touch the first: it is now the most recently used.
    const past = Date.now() - 60_000;
    for (let n = 1; n <= 3; n++) execFileSync('touch', ['-d', `@${Math.floor(past / 1000) + n}`, join(dir, `${d(n).replace(':', '-')}.json`)]);
    expect(cache.get(d(1))).toBeDefined();
    cache.put(d(4), one);
    expect(total()).toBeLessThanOrEqual(entrySize * 3 + 10);
    expect([1, 2, 3, 4].map((n) => cache.get(d(n)) !== undefined)).toEqual([true, false, true, true]);
    for (let n = 5; n <= 12; n++) {
      cache.put(d(n), one);
      expect(total()).toBeLessThanOrEqual(entrySize * 3 + 10);
    }
  });
});
