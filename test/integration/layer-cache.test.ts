// The layer facts cache as users meet it, with the real registry and the CLI: two verifies at
// once sharing one cache folder (both right, no entry corrupt), the same verdicts on worker
// threads, and a second `run` whose registry proof takes its base layer from the cache.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, REGISTRY, requireInfrastructure, ROOT, uniqueRepo } from '../helpers/env.js';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  platforms: { platform: string; verdict: string; checks: { check: string; verdict: string; evidence: string }[]; files: { filesScanned: number; elfChecked: number; mismatches: number; layers: number; layersFromCache: number } }[];
}
const LIST = `${REGISTRY}/debian:bookworm`;
const verify = async (cache: string, env: Record<string, string> = {}) => {
  const r = await cli(['verify', '--static', LIST, '--json'], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: cache, ...env } });
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Report;
};
/** Verdicts and counts, without where the facts came from. */
const verdicts = (r: Report) => r.platforms.map((p) => ({ platform: p.platform, verdict: p.verdict, checks: p.checks, files: { ...p.files, layersFromCache: undefined } }));

describe('the layer cache, shared', () => {
  it('two verifies at once sharing one folder: both right, every entry sound, the next verify reads no layer', async () => {
    const cache = scratchDir('cb-shared-cache-');
    const uncached = await verify('off');
    const [a, b] = await Promise.all([verify(cache), verify(cache)]);
    expect(verdicts(a)).toEqual(verdicts(uncached));
    expect(verdicts(b)).toEqual(verdicts(uncached));
    // Every entry names the digest it is filed under, and nothing half-written is left.
    const files = readdirSync(cache);
    expect(files.filter((f) => f.startsWith('.tmp-'))).toEqual([]);
    const entries = files.filter((f) => f.startsWith('sha256-') && !f.endsWith('.manifest.json'));
    expect(entries.length).toBe(3);
    for (const f of entries) {
      const head = JSON.parse(readFileSync(join(cache, f), 'utf8').split('\n')[0]!) as { digest: string };
      expect(head.digest.replace(':', '-')).toBe(f.replace(/\.json$/, ''));
    }
    // And each platform's manifest, kept by its digest: its bytes hash to it.
    const manifests = files.filter((f) => f.endsWith('.manifest.json'));
    expect(manifests.length).toBe(a.platforms.length);
    for (const f of manifests) {
      const kept = JSON.parse(readFileSync(join(cache, f), 'utf8')) as { bytes: string };
      expect(`sha256-${createHash('sha256').update(Buffer.from(kept.bytes, 'base64')).digest('hex')}.manifest.json`).toBe(f);
    }
    const warm = await verify(cache);
    expect(verdicts(warm)).toEqual(verdicts(uncached));
    expect(warm.platforms.map((p) => p.files.layersFromCache)).toEqual(warm.platforms.map((p) => p.files.layers));
  });

  it('worker threads (CROSSBUILD_LAYER_WORKERS=2) give the same verdicts and counts', async () => {
    const uncached = await verify('off');
    const workers = await verify('off', { CROSSBUILD_LAYER_WORKERS: '2' });
    expect(verdicts(workers)).toEqual(verdicts(uncached));
    expect(workers.platforms.reduce((n, p) => n + p.files.elfChecked, 0)).toBeGreaterThan(1500);
  });
});

describe('the layer cache in run', () => {
  it("a second run's registry proof takes the base layer from the cache, and the report says so", async () => {
    const cache = scratchDir('cb-run-cache-');
    const repo = uniqueRepo('cached-proof');
    const report = join(cache, 'report.json');
    const run = async () => {
      const r = await cli(['run', '--config', join(ROOT, 'example', 'busybox', 'platforms.json'), '--image', repo, '--report', report, '--quiet'], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: cache } });
      expect(r.exitCode, r.stderr).toBe(0);
      return JSON.parse(readFileSync(report, 'utf8')) as { platforms: { platform: string; proofSeconds: number; files: { layers: number; layersFromCache: number } }[] };
    };
    // The first fills the cache (platforms sharing a layer may already meet it there).
    const first = await run();
    expect(first.platforms.every((p) => p.files.layersFromCache < p.files.layers)).toBe(true);
    const second = await run();
    for (const p of second.platforms) {
      expect(p.files.layersFromCache, p.platform).toBeGreaterThanOrEqual(1);
      expect(p.proofSeconds).toBeGreaterThanOrEqual(0);
    }
  });

  it("a first run reads its base's layers while it builds: with an empty cache its proof takes each base layer from there (CROSSBUILD_READ_AHEAD=off: none), the same verdicts", async () => {
    // The base named through a global ARG and a stage the final one is built on, as users write it.
    // Each RUN writes its own machine, so no layer the build adds is the same on two platforms: two
    // platforms' identical layers (same bytes when both builds finish in the same second) would be
    // met in the cache by the second proof, which is right but not what this counts.
    const ctx = scratchDir('cb-read-ahead-');
    writeFileSync(join(ctx, 'Dockerfile'), `ARG BASE=${REGISTRY}/busybox:latest\nFROM \${BASE} AS base\nRUN uname -m > /base\n\nFROM base\nRUN uname -m > /top\n`);
    const cfg = join(ctx, 'platforms.json');
    writeFileSync(cfg, JSON.stringify({ image: uniqueRepo('read-ahead'), tag: 'v1', context: '.', network: 'none', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64' }] }));
    type Platforms = { platform: string; checks: unknown[]; files: { layers: number; layersFromCache: number } }[];
    const run = async (readAhead: 'on' | 'off') => {
      const report = join(ctx, `report-${readAhead}.json`);
      const r = await cli(['run', '--config', cfg, '--tag', readAhead, '--report', report, '--quiet'], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: scratchDir('cb-empty-cache-'), CROSSBUILD_READ_AHEAD: readAhead } });
      expect(r.exitCode, r.stderr).toBe(0);
      return (JSON.parse(readFileSync(report, 'utf8')) as { platforms: Platforms }).platforms;
    };
    const ahead = await run('on');
    const off = await run('off');
    for (const p of ahead) expect({ platform: p.platform, layers: p.files.layers, fromCache: p.files.layersFromCache }).toEqual({ platform: p.platform, layers: 3, fromCache: 1 });
    for (const p of off) expect(p.files.layersFromCache, p.platform).toBe(0);
    const same = (ps: Platforms) => ps.map((p) => ({ platform: p.platform, files: { ...p.files, layersFromCache: undefined } }));
    expect(same(ahead)).toEqual(same(off));
  });
});
