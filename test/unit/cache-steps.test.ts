// Registry build cache per builder, and where a build's time went, read from captured output of
// engine 20.10's BuildKit and classic builder on this machine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Builder } from '../../src/docker/build.js';
import { CacheImportWatcher, cacheExportRefused, cachePlan, suffixCacheSpec, type CacheSettings } from '../../src/docker/cache.js';
import { parseCacheMode } from '../../src/config/build-inputs.js';
import { emulationAdvice, slowest, StepTracker } from '../../src/docker/steps.js';
import { UsageError } from '../../src/errors.js';

const fx = (f: string) => readFileSync(join(__dirname, '..', 'fixtures', 'docker', f), 'utf8');
const classic: Builder = { kind: 'classic', cli: 'docker', env: { DOCKER_BUILDKIT: '0' }, clientVersion: '28.2.2' };
const buildkit: Builder = { kind: 'buildkit', cli: '/usr/bin/docker', env: { DOCKER_BUILDKIT: '1' }, clientVersion: '20.10.24' };
const bxContainer: Builder = { kind: 'buildx', cli: 'docker', env: {}, clientVersion: '27.0.1', buildxVersion: '0.15.1', driver: 'docker-container' };
const bxDocker: Builder = { ...bxContainer, driver: 'docker' };
const target = { suffix: 'arm64', suffixedRef: 'reg.example/app:v1-arm64', cacheRepo: 'reg.example/app' };
const registry: CacheSettings = { mode: 'registry', from: [], to: [] };

describe('registry cache per builder', () => {
  it('buildx with an exporting driver: a separate cache image per platform, mode=max', () => {
    const p = cachePlan(bxContainer, registry, target);
    expect(p.args).toEqual(['--cache-from', 'type=registry,ref=reg.example/app:buildcache-arm64', '--cache-to', 'type=registry,ref=reg.example/app:buildcache-arm64,mode=max']);
    expect(p.mechanism).toBe('registry cache reg.example/app:buildcache-arm64 (mode=max)');
    expect(cachePlan(bxContainer, registry, { ...target, cacheRepo: 'cache.example/c' }).args[1]).toBe('type=registry,ref=cache.example/c:buildcache-arm64');
  });
  it('buildx with the docker driver: inline', () => {
    expect(cachePlan(bxDocker, registry, target).args).toEqual(['--cache-from', 'type=registry,ref=reg.example/app:v1-arm64', '--cache-to', 'type=inline']);
  });
  it("the engine's BuildKit: inline cache in the pushed image, imported from it", () => {
    const p = cachePlan(buildkit, registry, target);
    expect(p.args).toEqual(['--cache-from', 'reg.example/app:v1-arm64']);
    expect(p.buildArgs).toEqual({ BUILDKIT_INLINE_CACHE: '1' });
  });
  it('classic: the previous image, pulled for the platform first', () => {
    const p = cachePlan(classic, registry, target);
    expect(p.pull).toBe('reg.example/app:v1-arm64');
    expect(p.args).toEqual(['--cache-from', 'reg.example/app:v1-arm64']);
  });
  it('each platform gets its own cache: two platforms never share a reference', () => {
    const a = cachePlan(bxContainer, registry, target).args.join(' ');
    const b = cachePlan(bxContainer, registry, { ...target, suffix: 'arm32', suffixedRef: 'reg.example/app:v1-arm32' }).args.join(' ');
    expect(a).not.toContain('arm32');
    expect(b).not.toContain('arm64');
  });
  it('passes buildx syntax through with the platform suffix on scope and ref', () => {
    expect(suffixCacheSpec('type=gha,mode=max', 'arm64')).toBe('type=gha,mode=max,scope=buildkit-arm64');
    expect(suffixCacheSpec('type=gha,scope=main', 'arm64')).toBe('type=gha,scope=main-arm64');
    expect(suffixCacheSpec('type=registry,ref=reg/cache:app', 'arm32')).toBe('type=registry,ref=reg/cache:app-arm32');
    expect(suffixCacheSpec('type=registry,ref=localhost:5000/cache', 'arm32')).toBe('type=registry,ref=localhost:5000/cache:buildcache-arm32');
    expect(suffixCacheSpec('reg/app:v1', 'arm32')).toBe('reg/app:v1-arm32');
    const p = cachePlan(bxContainer, { mode: 'none', from: ['type=gha'], to: ['type=gha,mode=max'] }, target);
    expect(p.args).toEqual(['--cache-from', 'type=gha,scope=buildkit-arm64', '--cache-to', 'type=gha,mode=max,scope=buildkit-arm64']);
  });
  it('refuses what the builder cannot do', () => {
    expect(() => cachePlan(buildkit, { mode: 'none', from: [], to: ['type=gha'] }, target)).toThrow(/--cache-to needs docker buildx/);
    expect(() => cachePlan(classic, { mode: 'none', from: ['type=gha'], to: [] }, target)).toThrow(UsageError);
    expect(cachePlan(buildkit, { mode: 'none', from: ['type=registry,ref=reg/c:x'], to: [] }, target).args).toEqual(['--cache-from', 'reg/c:x-arm64']);
    expect(() => parseCacheMode('gha', '--cache')).toThrow(/expected one of none, registry/);
  });
  it('notices a missing cache source in BuildKit output (captured), and nothing in a normal build', () => {
    const w = new CacheImportWatcher();
    const missing = fx('buildkit-progress-no-cache-source-20.10.txt').split('\n').map((l) => w.feed(l)).filter(Boolean);
    expect(missing).toEqual(['localhost:5000/cachetest:nothere']);
    const w2 = new CacheImportWatcher();
    expect(fx('buildkit-progress-cached-20.10.txt').split('\n').map((l) => w2.feed(l)).filter(Boolean)).toEqual([]);
    expect(cacheExportRefused('#9 exporting cache\n#9 ERROR: error writing layer blob: failed to push: unauthorized: authentication required')).toBe(true);
    expect(cacheExportRefused(fx('buildkit-progress-cold-20.10.txt'))).toBe(false);
  });
});

describe('where the build time went', () => {
  const feed = (text: string, emulated: boolean, gapMs = 0) => {
    const t = new StepTracker(emulated);
    let now = 0;
    for (const l of text.split('\n')) {
      now += gapMs;
      t.feed(l, now);
    }
    return t.steps(now);
  };
  it('BuildKit: step times and cache hits from its plain progress', () => {
    const cold = feed(fx('buildkit-progress-cold-20.10.txt'), true);
    const run = cold.find((s) => /RUN i=0/.test(s.name))!;
    expect(run).toMatchObject({ seconds: 5.8, cached: false, emulated: true });
    expect(cold.find((s) => /FROM/.test(s.name))).toMatchObject({ cached: true, emulated: false });
    expect(cold.some((s) => s.name.startsWith('[internal]'))).toBe(false);
    const warm = feed(fx('buildkit-progress-cached-20.10.txt'), true);
    expect(warm.find((s) => /RUN i=0/.test(s.name))).toMatchObject({ seconds: 0, cached: true, emulated: false });
    expect(slowest(cold, 1)[0]!.name).toMatch(/^\[2\/2\] RUN/);
  });
  it('buildx 0.29 solve (captured): a step taken from the registry cache without a CACHED line is a hit; one that ran is not', () => {
    const run = (steps: ReturnType<typeof feed>, p: string) => steps.find((s) => s.name.startsWith(`[${p} 2/2] RUN`))!;
    const warm = feed(fx('buildx-progress-remote-cache-28.5.txt'), true);
    // linux/arm64 printed CACHED; linux/arm/v7 only downloaded its layer.
    expect(run(warm, 'linux/arm64')).toMatchObject({ cached: true, emulated: false });
    expect(run(warm, 'linux/arm/v7')).toMatchObject({ cached: true, emulated: false, seconds: 0 });
    const cold = feed(fx('buildx-progress-solve-cold-28.5.txt'), true);
    for (const p of ['linux/arm64', 'linux/arm/v7']) expect(run(cold, p)).toMatchObject({ cached: false, emulated: true });
    expect(run(cold, 'linux/arm/v7').seconds).toBeGreaterThan(1);
  });
  it('classic: steps from "Step N/M", cache hits from "Using cache", times from arrival', () => {
    const cold = feed(fx('classic-build-20.10.txt'), true, 100);
    expect(cold.map((s) => s.name.slice(0, 12))).toEqual(['[1/3] FROM l', '[2/3] RUN i=', '[3/3] CMD ["']);
    expect(cold[1]).toMatchObject({ cached: false, emulated: true });
    expect(cold[1]!.seconds).toBeGreaterThan(0);
    const warm = feed(fx('classic-build-cached-20.10.txt'), true, 100);
    expect(warm[1]).toMatchObject({ cached: true, seconds: 0, emulated: false });
  });
  it('advises cross-compilation once an emulated step is most of the build', () => {
    const steps = feed(fx('buildkit-progress-cold-20.10.txt'), true);
    expect(emulationAdvice('linux/arm64', 7, steps)).toMatch(/linux\/arm64: \[2\/2\] RUN i=0.* took 5\.8s of 7s under QEMU emulation; cross-compile instead \(FROM --platform=\$BUILDPLATFORM/);
    expect(emulationAdvice('linux/arm64', 30, steps)).toBeUndefined();
    expect(emulationAdvice('linux/amd64', 7, feed(fx('buildkit-progress-cold-20.10.txt'), false))).toBeUndefined();
  });
});
