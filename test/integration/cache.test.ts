// The build cache through the registry: a fresh engine (build cache pruned, this run's images
// removed) reuses what the last run pushed, per platform, and never another platform's cache.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, dockerRun, FIXTURES, HOST_ENGINE, requireInfrastructure, uniqueRepo } from '../helpers/env.js';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  notes: string[];
  platforms: { platform: string; tag: string; cache: string; slowestSteps: { name: string; seconds: number; cached: boolean; emulated: boolean }[] }[];
}
const heavy = (r: Report, platform: string) => r.platforms.find((p) => p.platform === platform)!.slowestSteps.find((s) => /RUN echo/.test(s.name));

/** What a fresh CI runner has: no build cache, none of this repository's images. */
async function emptyEngine(repo: string): Promise<void> {
  const ls = await execa(DOCKER, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo]);
  const refs = ls.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
  if (refs.length > 0) await execa(DOCKER, ['rmi', '-f', ...refs]);
  await execa(DOCKER, ['builder', 'prune', '-af']);
  await execa(DOCKER, ['image', 'prune', '-f']);
}

async function run(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const out = join(scratchDir('cb-cache-'), 'report.json');
  const r = await cli(['run', ...args, '--report', out]);
  const { readFileSync } = await import('node:fs');
  return { exitCode: r.exitCode, report: JSON.parse(readFileSync(out, 'utf8')) as Report, stderr: r.stderr };
}

describe('--cache registry', () => {
  // Cold run, emptied engine, warm run: on every engine and builder in engines.test.ts.

  it("never offers one platform's cache to another: an arm/v7 build whose only cache is arm64's runs its steps", async () => {
    const repo = uniqueRepo('cache-cross');
    const salt = `--build-arg=SALT=${randomBytes(6).toString('hex')}`;
    const dir = scratchDir('cb-cache-cross-');
    // The same suffix for both: the arm/v7 run's cache source is the tag the arm64 run pushed.
    const cfg = (platform: string) => {
      const f = join(dir, `${platform.replace(/\//g, '-')}.json`);
      writeFileSync(f, JSON.stringify({ image: 'localhost:5000/it/x', context: join(FIXTURES, 'cache'), tag: 'v1', network: 'none', cache: 'registry', platforms: [{ platform, suffix: 'same' }] }));
      return f;
    };
    const arm64 = await run(['--config', cfg('linux/arm64'), '--image', repo, salt]);
    expect(arm64.exitCode, arm64.stderr).toBe(0);
    const arm64Stamp = await dockerRun(`${repo}:v1-same`, 'linux/arm64', []);
    await emptyEngine(repo);
    const armv7 = await run(['--config', cfg('linux/arm/v7'), '--image', repo, salt]);
    expect(armv7.exitCode, armv7.stderr).toBe(0);
    expect(heavy(armv7.report, 'linux/arm/v7')).toMatchObject({ cached: false, emulated: true });
    expect(await dockerRun(`${repo}:v1-same`, 'linux/arm/v7', ['cat', '/machine'])).toBe('armv7l');
    expect(await dockerRun(`${repo}:v1-same`, 'linux/arm/v7', [])).not.toBe(arm64Stamp);
  });

  it('the plan says which mechanism each platform uses', async () => {
    // The engine's BuildKit (20.10): inline cache in the pushed image.
    const r = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run', '--builder', 'buildkit'], { env: { CI: 'true', ...HOST_ENGINE } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/network: none, cache: inline cache in .*:v1-arm64\n +\S+ build .*--build-arg BUILDKIT_INLINE_CACHE=1 .*--cache-from \S+:v1-arm64/);
    // buildx's docker driver on the containerd store (28.5): both platforms in one solve, one registry cache of its own, mode=max.
    const c = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run'], { env: { CI: 'true', ...engineEnv('docker-28c') } });
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/cache: registry cache \S+:buildcache \(mode=max\)\n +\S+ buildx build --platform linux\/arm64,linux\/arm\/v7 .*--cache-from type=registry,ref=\S+:buildcache --cache-to type=registry,ref=\S+:buildcache,mode=max/);
    // One build per platform as before with CROSSBUILD_BUILDX_OUTPUT=load: a cache per platform.
    const l = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run'], { env: { CI: 'true', ...engineEnv('docker-28c'), CROSSBUILD_BUILDX_OUTPUT: 'load' } });
    expect(l.stdout).toMatch(/cache: registry cache \S+:buildcache-arm64 \(mode=max\)\n +\S+ buildx build --load .*--cache-from type=registry,ref=\S+:buildcache-arm64 --cache-to type=registry,ref=\S+:buildcache-arm64,mode=max/);
    const none = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run', '--cache', 'none']);
    expect(none.stdout).not.toMatch(/cache-from/);
  });
});
