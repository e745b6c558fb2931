// `crossbuild run` end to end: real dockerd, real QEMU via binfmt_misc, real registry. Every
// assertion is made from outside crossbuild: skopeo reads the registry, docker runs the result.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { validateOci } from '../helpers/oci-schema.js';
import { cli, DOCKER, dockerRun, FIXTURES, HOST_ENGINE, REGISTRY, requireInfrastructure, skopeoRaw, TEST_ENGINE, uniqueRepo } from '../helpers/env.js';
import { attestationEntries, imageEntries, platformOf, sha, type Index } from '../helpers/oci.js';

const entryPlatform = (m: Index['manifests'][number]) => platformOf(m.platform);

beforeAll(requireInfrastructure);

describe('crossbuild run', () => {
  it('builds, verifies and pushes 3 platforms and writes a list devices can pull (an OCI index with the provenance buildx attaches, else a Docker list)', async () => {
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
    const attestations = attestationEntries(list.manifests);
    expect(list.mediaType).toBe(attestations.length > 0 ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json');
    expect(validateOci('image-index-schema.json', list)).toEqual([]);
    const images = imageEntries(list.manifests);
    expect(images.map(entryPlatform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    for (const a of attestations) expect(images.map((m) => m.digest)).toContain(a.annotations!['vnd.docker.reference.digest']);

    // Each entry is the image the suffixed tag serves (itself, or inside its index of image and attestations).
    for (const [suffix, m] of [['amd64', images[0]!], ['arm32', images[1]!], ['arm64', images[2]!]] as const) {
      const child = (await skopeoRaw(`${repo}:multiarch-${suffix}`))!;
      const parsed = JSON.parse(child.toString()) as Partial<Index>;
      if (parsed.manifests) {
        expect(imageEntries(parsed.manifests).map((e) => e.digest)).toEqual([m.digest]);
      } else {
        expect(sha(child)).toBe(m.digest);
        expect(child.length).toBe(m.size);
      }
    }

    // What a laptop, a Raspberry Pi and a Jetson would get from the one tag.
    expect(await dockerRun(`${repo}:multiarch`, 'linux/amd64', [])).toBe('x86_64');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [])).toBe('armv7l');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toBe('aarch64');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', ['cat', '/mark'])).toBe('it');
  });

  it('builds with the classic builder too (20.10), one build at a time so base pulls cannot race', async () => {
    const repo = uniqueRepo('classic');
    const host = { env: { CI: 'true', ...HOST_ENGINE } };
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--builder', 'classic'], host);
    expect(r.stderr).toMatch(/builder classic/);
    expect(r.exitCode).toBe(0);
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map(entryPlatform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [], HOST_ENGINE)).toBe('armv7l');
  });

  it.runIf(TEST_ENGINE === 'docker-28c')('on the containerd store: --provenance false gives no attestations; --type docker drops them with a note; --provenance mode=max keeps a max one', async () => {
    const repo = uniqueRepo('attest');
    const base = ['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--platform', 'linux/arm64,linux/arm/v7'];
    const off = await cli([...base, '--tag', 'off', '--provenance', 'false']);
    expect(off.exitCode, off.stderr).toBe(0);
    const offList = JSON.parse((await skopeoRaw(`${repo}:off`))!.toString()) as Index;
    expect(attestationEntries(offList.manifests)).toEqual([]);
    expect(offList.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');

    const docker = await cli([...base, '--tag', 'docker', '--type', 'docker']);
    expect(docker.exitCode, docker.stderr).toBe(0);
    expect(docker.stderr).toMatch(/--type docker: 2 attestation manifests \(provenance\/SBOM\) left out of \S+:docker: a Docker manifest list cannot carry them/);
    const dockerList = JSON.parse((await skopeoRaw(`${repo}:docker`))!.toString()) as Index;
    expect(dockerList.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(dockerList.manifests.map(entryPlatform)).toEqual(['linux/arm64', 'linux/arm/v7']);

    const max = await cli([...base, '--tag', 'max', '--provenance', 'mode=max', '--json']);
    expect(max.exitCode, max.stderr).toBe(0);
    const report = JSON.parse(max.stdout) as { platforms: { attestations: string[] }[] };
    const maxList = JSON.parse((await skopeoRaw(`${repo}:max`))!.toString()) as Index;
    expect(attestationEntries(maxList.manifests).map((a) => a.digest)).toEqual(report.platforms.flatMap((p) => p.attestations));
    // The attestation's in-toto layer is SLSA provenance in max mode (materials and build config recorded).
    const att = JSON.parse((await skopeoRaw(`${repo}@${report.platforms[0]!.attestations[0]}`))!.toString()) as { layers: { digest: string; annotations: Record<string, string> }[] };
    expect(att.layers[0]!.annotations['in-toto.io/predicate-type']).toMatch(/^https:\/\/slsa\.dev\/provenance\//);
  });

  it('--provenance on a builder without attestations (the classic builder, the engine\'s BuildKit): exit 2 naming it', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('attest-no'), '--builder', 'buildkit', '--provenance', 'mode=max', '--dry-run'], { env: { CI: 'true', ...HOST_ENGINE } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--provenance\/--sbom\/--attest needs docker buildx ≥ 0\.10 \(attestations are a buildx feature\); the builder here is the engine's BuildKit/);
  });

  it('writes an OCI index with --type oci that validates against the image-spec schema', async () => {
    const repo = uniqueRepo('app-oci');
    const dir = scratchDir('cb-meta-');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '-t', 'oci', '-t', 'oci-too', '--type', 'oci', '--platform', 'linux/arm64,linux/amd64', '--metadata-file', join(dir, 'meta.json'), '--iidfile', join(dir, 'iid')]);
    expect(r.exitCode, r.stderr).toBe(0);
    const raw = await skopeoRaw(`${repo}:oci`);
    // Every -t got the list; --iidfile and --metadata-file say what build-push-action's consumers read.
    expect(sha((await skopeoRaw(`${repo}:oci-too`))!)).toBe(sha(raw!));
    expect(readFileSync(join(dir, 'iid'), 'utf8')).toBe(sha(raw!));
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown> & { 'crossbuild.platforms': Record<string, { 'containerimage.digest': string }> };
    expect(meta).toMatchObject({ 'containerimage.digest': sha(raw!), 'image.name': `${repo}:oci,${repo}:oci-too` });
    expect(Object.keys(meta['crossbuild.platforms'])).toEqual(['linux/arm64', 'linux/amd64']);
    const v = await cli(['verify', '--metadata', join(dir, 'meta.json'), '--static', '--platform', 'linux/arm64,linux/amd64']);
    expect(v.exitCode, v.stdout).toBe(0);
    const idx = JSON.parse(raw!.toString()) as Index;
    expect(idx.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    // --platform keeps only what was asked, in the order asked.
    expect(imageEntries(idx.manifests).map(entryPlatform)).toEqual(['linux/arm64', 'linux/amd64']);
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
    const ps = await execa(DOCKER, ['ps', '-a', '--filter', 'name=crossbuild-verify-', '--format', '{{.Names}}']);
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
    expect(imageEntries(list.manifests).map((m) => m.digest)).toEqual(report.platforms.map((p) => p.digest));
    expect(await dockerRun(`${repo}:v1`, 'linux/s390x', [])).toBe('s390x 42');
    expect(await dockerRun(`${repo}:v1`, 'linux/ppc64le', [])).toBe('ppc64le 42');
  });
});

describe('buildx on the containerd store: one solve pushed by digest, or one build per platform', () => {
  const tagsOf = async (repo: string): Promise<string[]> => {
    const [host, ...path] = repo.split('/');
    const r = await fetch(`http://${host}/v2/${path.join('/')}/tags/list`);
    return ((await r.json()) as { tags: string[] }).tags.sort();
  };
  it.runIf(TEST_ENGINE === 'docker-28c')('both paths write the same shape of list; the solve moves no tag but the suffixed ones and the list', async () => {
    const shapes: string[] = [];
    for (const output of ['solve', 'load']) {
      const repo = uniqueRepo(`paths-${output}`);
      const dir = scratchDir('cb-paths-');
      const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--report', join(dir, 'r.json')], { env: output === 'load' ? { CROSSBUILD_BUILDX_OUTPUT: 'load' } : {} });
      expect(r.exitCode, r.stderr).toBe(0);
      if (output === 'solve') expect(r.stderr).toMatch(/linux\/amd64, linux\/arm\/v7, linux\/arm64: one buildx solve, pushed by digest/);
      else expect(r.stderr).not.toMatch(/one buildx solve/);
      // Nothing but what is published is named in the registry (the solve pushed its result by digest).
      expect(await tagsOf(repo)).toEqual(['multiarch', 'multiarch-amd64', 'multiarch-arm32', 'multiarch-arm64']);
      const report = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { platforms: { platform: string; digest: string; pushedDigest: string | null; attestations: string[] }[] };
      const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
      expect(validateOci('image-index-schema.json', list)).toEqual([]);
      for (const p of report.platforms) {
        // The suffixed tag serves an index of the image and its provenance, as `docker push` of a buildx image does.
        const own = JSON.parse((await skopeoRaw(`${repo}@${p.pushedDigest!}`))!.toString()) as Index;
        expect(own.manifests.map((m) => m.digest)).toEqual([p.digest, ...p.attestations]);
        expect(await dockerRun(`${repo}:multiarch`, p.platform, ['uname', '-m'])).toBe({ 'linux/amd64': 'x86_64', 'linux/arm/v7': 'armv7l', 'linux/arm64': 'aarch64' }[p.platform]);
      }
      shapes.push(JSON.stringify([list.mediaType, imageEntries(list.manifests).map(entryPlatform), attestationEntries(list.manifests).length]));
    }
    expect(shapes[0]).toBe(shapes[1]);
  });

  it.runIf(TEST_ENGINE === 'docker-28c')('an image without uname: the probe\'s failed step is asked again by docker run, which skips it as before', async () => {
    const dir = scratchDir('cb-nouname-');
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${REGISTRY}/busybox:latest\nRUN rm /bin/uname\n`);
    writeFileSync(join(dir, 'platforms.json'), JSON.stringify({ network: 'none', image: `${uniqueRepo('nouname')}`, tag: 'v1', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64' }] }));
    const r = await cli(['run', '--config', join(dir, 'platforms.json')], { env: { CI: 'true' } });
    expect(r.exitCode, r.stderr).toBe(0);
    // The first step to fail cancels the other's: that one says CANCELED.
    expect(r.stderr).toMatch(/verifying: uname -m by docker run \(the probe: ERROR: process "uname -m" did not complete successfully: exit code: 1\)/);
    for (const p of ['linux\\/amd64', 'linux\\/arm64']) {
      expect(r.stderr).toMatch(new RegExp(`\\[${p}\\] verifying: uname -m by docker run \\(the probe: (ERROR: process "uname -m" did not complete successfully: exit code: 1|CANCELED)\\)`));
      expect(r.stderr).toMatch(new RegExp(`ok +${p} +sha256:\\S+ +image config says ${p}; skipped: no uname in image;`));
    }
  });

  it.runIf(TEST_ENGINE === 'docker-28c')("the solve's uname -m is one probe of every platform, with no container, buildx run as its plugin binary; an image with ONBUILD triggers and CROSSBUILD_UNAME_PROBE=off ask docker run", async () => {
    // A docker CLI that logs each call's argv before it runs the real one, and the same for its
    // buildx plugin (found through a DOCKER_CONFIG of its own), whose lines say `plugin`. The CLI
    // is a script, so the plugin is run directly only when asked (CROSSBUILD_BUILDX_DIRECT=on):
    // this wrapper only logs.
    const dir = scratchDir('cb-shim-');
    const log = join(dir, 'calls');
    const shim = join(dir, 'docker');
    writeFileSync(shim, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${DOCKER}' "$@"\n`, { mode: 0o755 });
    const plugins = (JSON.parse((await execa(DOCKER, ['info', '--format', '{{json .ClientInfo.Plugins}}'])).stdout) as { Name: string; Path: string }[]) ?? [];
    const realPlugin = plugins.find((p) => p.Name === 'buildx')!.Path;
    mkdirSync(join(dir, 'plugins'));
    writeFileSync(join(dir, 'plugins', 'docker-buildx'), `#!/bin/sh\n[ "$1" = docker-cli-plugin-metadata ] || printf 'plugin %s\\n' "$*" >> '${log}'\nexec '${realPlugin}' "$@"\n`, { mode: 0o755 });
    const config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'config.json'), JSON.stringify({ cliPluginsExtraDirs: [join(dir, 'plugins')] }));
    const machines = { 'linux/amd64': 'x86_64', 'linux/arm/v7': 'armv7l', 'linux/arm64': 'aarch64' };
    // The app with a trigger a build FROM it would run (and fail on); `docker run` never runs it.
    const onbuild = join(dir, 'onbuild');
    cpSync(join(FIXTURES, 'app'), onbuild, { recursive: true });
    writeFileSync(join(onbuild, 'Dockerfile'), `${readFileSync(join(onbuild, 'Dockerfile'), 'utf8')}ONBUILD RUN false\n`);
    for (const probe of ['on', 'off', 'onbuild']) {
      writeFileSync(log, '');
      const repo = uniqueRepo(`uname-${probe}`);
      const r = await cli(['run', '--config', join(probe === 'onbuild' ? onbuild : join(FIXTURES, 'app'), 'platforms.json'), '--image', repo], { env: { CROSSBUILD_DOCKER: shim, CROSSBUILD_BUILDX_DIRECT: 'on', DOCKER_CONFIG: config, ...(probe === 'off' ? { CROSSBUILD_UNAME_PROBE: 'off' } : {}) } });
      expect(r.exitCode, r.stderr).toBe(0);
      for (const [p, m] of Object.entries(machines)) expect(r.stderr).toMatch(new RegExp(`ok +${p.replace(/\//g, '\\/')} +sha256:\\S+ +image config says ${p.replace(/\//g, '\\/')}; uname -m printed ${m};`));
      const calls = readFileSync(log, 'utf8').split('\n');
      const probes = calls.filter((c) => c.startsWith('plugin build') && c.includes('type=cacheonly'));
      const runs = calls.filter((c) => /^run .*--entrypoint uname/.test(c));
      // Every build went to the plugin directly, none through the CLI (`docker buildx …`).
      expect(calls.filter((c) => c.startsWith('plugin build')).length).toBeGreaterThanOrEqual(1);
      expect(calls.filter((c) => c.startsWith('buildx '))).toEqual([]);
      if (probe === 'on') {
        expect(probes).toHaveLength(1);
        expect(probes[0]).toMatch(/--platform linux\/amd64,linux\/arm\/v7,linux\/arm64 .*--label crossbuild\.run=[0-9a-f]{8} -$/);
        expect(runs).toEqual([]);
      } else {
        expect(probes).toEqual([]);
        // One `docker run` per platform; one more when the CLI lost what uname printed.
        for (const p of Object.keys(machines)) expect(runs.filter((c) => c.includes(`--platform ${p} `)).length, p).toBeOneOf([1, 2]);
        expect(runs.every((c) => Object.keys(machines).some((p) => c.includes(`--platform ${p} `)))).toBe(true);
      }
    }
  });
});
