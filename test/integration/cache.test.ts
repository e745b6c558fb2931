// The build cache through the registry: a fresh engine (build cache pruned, this run's images
// removed) reuses what the last run pushed, per platform, and never another platform's cache.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, dockerRun, FIXTURES, requireInfrastructure, uniqueRepo } from '../helpers/env.js';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  notes: string[];
  platforms: { platform: string; tag: string; cache: string; slowestSteps: { name: string; seconds: number; cached: boolean; emulated: boolean }[] }[];
}
const heavy = (r: Report, platform: string) => r.platforms.find((p) => p.platform === platform)!.slowestSteps.find((s) => /RUN echo/.test(s.name));

/** What a fresh CI runner has: no build cache, none of this repository's images. */
async function emptyEngine(repo: string): Promise<void> {
  const ls = await execa('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo]);
  const refs = ls.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
  if (refs.length > 0) await execa('docker', ['rmi', '-f', ...refs]);
  // The engine's BuildKit cache (the 20.10 CLI prunes BuildKit's records; it is the same engine API).
  await execa('/usr/bin/docker', ['builder', 'prune', '-af']);
  await execa('docker', ['image', 'prune', '-f']);
}

async function run(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const out = join(mkdtempSync(join(tmpdir(), 'cb-cache-')), 'report.json');
  const r = await cli(['run', ...args, '--report', out]);
  const { readFileSync } = await import('node:fs');
  return { exitCode: r.exitCode, report: JSON.parse(readFileSync(out, 'utf8')) as Report, stderr: r.stderr };
}

describe('--cache registry', () => {
  for (const builder of ['buildkit', 'classic'] as const) {
    it(`${builder}: a first run notes there is no cache; after the engine is emptied, every platform's heavy step is reused`, async () => {
      const repo = uniqueRepo(`cache-${builder}`);
      const salt = `--build-arg=SALT=${randomBytes(6).toString('hex')}`;
      const args = ['--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', repo, '--builder', builder, salt];
      const cold = await run(args);
      expect(cold.exitCode, cold.stderr).toBe(0);
      expect(cold.report.notes.join('\n')).toMatch(/linux\/arm64: no cache yet/);
      expect(cold.stderr).toMatch(/\[linux\/arm64\] note: linux\/arm64: no cache yet/);
      expect(heavy(cold.report, 'linux/arm64')).toMatchObject({ cached: false, emulated: true });
      expect(cold.report.platforms[0]!.cache).toMatch(builder === 'buildkit' ? /^inline cache in .*:v1-arm64$/ : /^previous image .*:v1-arm64, pulled for the platform$/);
      // One at a time: `docker run --pull always --platform` of one tag moves the local tag.
      const stampsOf = async () => [await dockerRun(`${repo}:v1`, 'linux/arm64', []), await dockerRun(`${repo}:v1`, 'linux/arm/v7', [])];
      const stamps = await stampsOf();
      expect(stamps[0]).toMatch(/^[0-9a-f]{16}$/);
      expect(stamps[0]).not.toBe(stamps[1]);

      await emptyEngine(repo);
      const warm = await run(args);
      expect(warm.exitCode, warm.stderr).toBe(0);
      expect(warm.report.notes).toEqual([]);
      for (const p of ['linux/arm64', 'linux/arm/v7']) expect(heavy(warm.report, p), p).toMatchObject({ cached: true, emulated: false });
      // The image proves it: the timestamp the heavy step wrote is the cold run's.
      expect(await stampsOf()).toEqual(stamps);
      expect(await dockerRun(`${repo}:v1`, 'linux/arm/v7', ['cat', '/machine'])).toBe('armv7l');
    });
  }

  it("never offers one platform's cache to another: an arm/v7 build whose only cache is arm64's runs its steps", async () => {
    const repo = uniqueRepo('cache-cross');
    const salt = `--build-arg=SALT=${randomBytes(6).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'cb-cache-cross-'));
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
    const r = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run', '--builder', 'buildkit']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/network: none, cache: inline cache in .*:v1-arm64\n +\S+ build .*--build-arg BUILDKIT_INLINE_CACHE=1 .*--cache-from \S+:v1-arm64/);
    const none = await cli(['run', '--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', uniqueRepo('cache-plan'), '--dry-run', '--cache', 'none']);
    expect(none.stdout).not.toMatch(/cache-from/);
  });
});
