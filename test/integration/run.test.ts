// `crossbuild run` end to end: real dockerd, real QEMU via binfmt_misc, real registry. Every
// assertion is made from outside crossbuild: skopeo reads the registry, docker runs the result.
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateOci } from '../helpers/oci-schema.js';
import { cli, dockerRun, FIXTURES, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { platformOf, sha, type Index } from '../helpers/oci.js';

const entryPlatform = (m: Index['manifests'][number]) => platformOf(m.platform);

beforeAll(requireInfrastructure);

describe('crossbuild run', () => {
  it('builds, verifies and pushes 3 platforms and writes a Docker manifest list that devices can pull', async () => {
    const repo = uniqueRepo('app');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--build-arg', 'MARK=it']);
    expect(r.stderr).not.toMatch(/FAIL/);
    expect(r.exitCode).toBe(0);
    const printed = /^Digest: (sha256:[a-f0-9]{64}) (\d+)$/m.exec(r.stdout);
    expect(printed).not.toBeNull();

    const raw = await skopeoRaw(`${repo}:multiarch`);
    expect(raw).toBeDefined();
    expect(sha(raw!)).toBe(printed![1]);
    expect(raw!.length).toBe(Number(printed![2]));
    const list = JSON.parse(raw!.toString()) as Index;
    expect(list.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(list.manifests.map(entryPlatform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);

    // Each entry is the digest the suffixed tag serves.
    for (const [suffix, m] of [['amd64', list.manifests[0]!], ['arm32', list.manifests[1]!], ['arm64', list.manifests[2]!]] as const) {
      const child = await skopeoRaw(`${repo}:multiarch-${suffix}`);
      expect(sha(child!)).toBe(m.digest);
      expect(child!.length).toBe(m.size);
    }

    // What a laptop, a Raspberry Pi and a Jetson would get from the one tag.
    expect(await dockerRun(`${repo}:multiarch`, 'linux/amd64', [])).toBe('x86_64');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [])).toBe('armv7l');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toBe('aarch64');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', ['cat', '/mark'])).toBe('it');
  });

  it('builds with the classic builder too, one build at a time so base pulls cannot race', async () => {
    const repo = uniqueRepo('classic');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--builder', 'classic']);
    expect(r.stderr).toMatch(/builder classic/);
    expect(r.exitCode).toBe(0);
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(list.manifests.map(entryPlatform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [])).toBe('armv7l');
  });

  it('writes an OCI index with --type oci that validates against the image-spec schema', async () => {
    const repo = uniqueRepo('app-oci');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--tag', 'oci', '--type', 'oci', '--platform', 'linux/arm64,linux/amd64']);
    expect(r.exitCode).toBe(0);
    const raw = await skopeoRaw(`${repo}:oci`);
    const idx = JSON.parse(raw!.toString()) as Index;
    expect(idx.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    // --platform keeps only what was asked, in the order asked.
    expect(idx.manifests.map(entryPlatform)).toEqual(['linux/arm64', 'linux/amd64']);
    expect(await dockerRun(`${repo}:oci`, 'linux/arm64', [])).toBe('aarch64');
  });

  it('writes no list when one platform fails to build, reports the others, exits 1', async () => {
    const repo = uniqueRepo('fails');
    const r = await cli(['run', '--config', join(FIXTURES, 'fail-arm64', 'platforms.json'), '--image', repo]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL linux\/arm64 +build: build of linux\/arm64 failed/);
    expect(r.stderr).toMatch(/refusing to build on aarch64/);
    expect(r.stderr).toMatch(/ok +linux\/amd64 +sha256:/);
    expect(r.stderr).toMatch(/ok +linux\/arm\/v7 +sha256:/);
    expect(r.stderr).toMatch(/no manifest list was written/);
    expect(r.stdout).not.toMatch(/Digest:/);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
  });

  it('refuses to publish an image labelled for another platform than asked', async () => {
    const repo = uniqueRepo('mislabel');
    const r = await cli(['run', '--config', join(FIXTURES, 'mislabel', 'platforms.json'), '--image', repo]);
    expect(r.exitCode).toBe(1);
    // BuildKit labels the result arm64 although its binaries are amd64; the classic builder labels
    // it amd64. Either way the binaries run natively, and uname proves what they are.
    expect(r.stderr).toMatch(/FAIL linux\/arm64 +verify: .*uname -m printed x86_64, expected aarch64/);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
    // Nothing of the failed platform was pushed either.
    expect(await skopeoRaw(`${repo}:multiarch-arm64`)).toBeUndefined();
  });

  it('times out a hanging uname, removes the container, and writes no list', async () => {
    const repo = uniqueRepo('hang');
    const started = Date.now();
    const r = await cli(['run', '--config', join(FIXTURES, 'hang', 'platforms.json'), '--image', repo, '--timeout', '5']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/uname -m did not finish within 5s/);
    expect(Date.now() - started).toBeLessThan(120_000);
    const ps = await execa('docker', ['ps', '-a', '--filter', 'name=crossbuild-verify-', '--format', '{{.Names}}']);
    expect(ps.stdout.trim()).toBe('');
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
  });

  it("builds a user's 5-platform file with another Dockerfile, ppc64le and s390x included", async () => {
    const repo = uniqueRepo('five');
    const r = await cli(['run', '--config', join(FIXTURES, 'five', 'platforms.json'), '--image', repo, '--json']);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; platforms: { platform: string; ok: boolean; digest: string }[]; list: { digest: string } };
    expect(report.ok).toBe(true);
    expect(report.platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
    const raw = await skopeoRaw(`${repo}:v1`);
    expect(sha(raw!)).toBe(report.list.digest);
    const list = JSON.parse(raw!.toString()) as Index;
    expect(list.manifests.map((m) => m.digest)).toEqual(report.platforms.map((p) => p.digest));
    expect(await dockerRun(`${repo}:v1`, 'linux/s390x', [])).toBe('s390x 42');
    expect(await dockerRun(`${repo}:v1`, 'linux/ppc64le', [])).toBe('ppc64le 42');
  });
});
