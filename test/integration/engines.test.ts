// The engines users run, each with the builders it has: Debian 12's 20.10 (its BuildKit through
// the pre-23 CLI, and the classic builder), Docker 26.1 + buildx 0.13, and Docker 28.5 + buildx
// 0.29 on the overlay2 and on the containerd image store (ci/engines.sh brings them up). On each:
// the 3-platform pipeline, cache reuse on an emptied engine, two legs and merge, a secret, verify.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';
import { cli, dockerRun, FIXTURES, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { attestationEntries, imageEntries, platformOf, type Index } from '../helpers/oci.js';
import { validateOci } from '../helpers/oci-schema.js';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  notes: string[];
  engine: { version: string; imageStore: string | null };
  builder: { kind: string; version: string; driver: string | null };
  list: { digest: string; mediaType: string } | null;
  platforms: { platform: string; digest: string; pushedDigest: string | null; attestations: string[]; cache: string; slowestSteps: { name: string; cached: boolean; emulated: boolean }[] }[];
}

/** Each engine × store × builder, and the cache mechanism it should pick. */
const MATRIX = [
  { engine: 'host', builder: 'buildkit', version: /^20\.10/, store: 'overlay2', cache: /^inline cache in .*:v1-arm64$/, attests: false },
  { engine: 'host', builder: 'classic', version: /^20\.10/, store: 'overlay2', cache: /^previous image .*:v1-arm64, pulled for the platform$/, attests: false },
  { engine: 'docker-26', builder: 'buildx', version: /^26\.1/, store: 'overlay2', cache: /^inline cache in .*:v1-arm64 \(the docker driver/, attests: false },
  { engine: 'docker-28', builder: 'buildx', version: /^28\.5/, store: 'overlay2', cache: /^inline cache in .*:v1-arm64 \(the docker driver/, attests: false },
  // Every platform in one buildx solve, so one multi-platform cache ref.
  { engine: 'docker-28c', builder: 'buildx', version: /^28\.5/, store: 'containerd', cache: /^registry cache .*:buildcache \(mode=max\)$/, attests: true },
] as const;

describe.each(MATRIX)('$engine ($store store), builder $builder', (m) => {
  const env = { CI: 'true', ...engineEnv(m.engine), CROSSBUILD_BUILDER: m.builder };
  const docker = env.CROSSBUILD_DOCKER!;
  const dir = scratchDir(`cb-matrix-${m.engine}-${m.builder}-`);
  const run = async (args: string[], name: string): Promise<{ exitCode: number; stderr: string; report: Report }> => {
    const file = join(dir, `${name}.json`);
    const r = await cli(['run', ...args, '--report', file], { env });
    return { exitCode: r.exitCode, stderr: r.stderr, report: JSON.parse(readFileSync(file, 'utf8')) as Report };
  };

  it('the 3-platform pipeline: a valid list, every platform exact, attestations beside their images, each runs as its machine', async () => {
    const repo = uniqueRepo(`m-${m.engine}-${m.builder}`);
    const r = await run(['--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo], 'pipeline');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.report.engine).toMatchObject({ imageStore: m.store === 'overlay2' ? expect.stringMatching(/^overlay2?$/) : 'containerd' });
    expect(r.report.engine.version).toMatch(m.version);
    expect(r.report.builder.kind).toBe(m.builder);
    const raw = (await skopeoRaw(`${repo}:multiarch`))!;
    const list = JSON.parse(raw.toString()) as Index;
    expect(validateOci('image-index-schema.json', list)).toEqual([]);
    const images = imageEntries(list.manifests);
    expect(images.map((e) => platformOf(e.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(images.map((e) => e.digest)).toEqual(r.report.platforms.map((p) => p.digest));
    const attestations = attestationEntries(list.manifests);
    // buildx attaches provenance where the image store can keep it; each names an image of the list.
    expect(attestations.length).toBe(m.attests ? 3 : 0);
    expect(list.mediaType).toBe(m.attests ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json');
    for (const a of attestations) expect(images.map((e) => e.digest)).toContain(a.annotations!['vnd.docker.reference.digest']);
    for (const p of r.report.platforms) expect(p.attestations).toHaveLength(m.attests ? 1 : 0);
    // One platform at a time: on 20.10 `docker run --pull always --platform` of one tag moves the local tag.
    for (const [platform, machine] of [['linux/amd64', 'x86_64'], ['linux/arm/v7', 'armv7l'], ['linux/arm64', 'aarch64']] as const) {
      expect(await dockerRun(`${repo}:multiarch`, platform, ['cat', '/built-on'], env), platform).toBe(machine);
    }
    // And crossbuild verify, with uname -m under QEMU on this engine, agrees.
    const v = await cli(['verify', `${repo}:multiarch`, '--platforms', 'linux/amd64,linux/arm/v7,linux/arm64'], { env });
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/linux\/arm\/v7  PASS[\s\S]*runtime +PASS +uname -m printed armv7l/);
  });

  it('cache reuse on an emptied engine: every platform\'s heavy step comes from the registry', async () => {
    const repo = uniqueRepo(`mc-${m.engine}-${m.builder}`);
    const args = ['--config', join(FIXTURES, 'cache', 'platforms.json'), '--image', repo, `--build-arg=SALT=${randomBytes(6).toString('hex')}`];
    const heavy = (r: Report, p: string) => r.platforms.find((x) => x.platform === p)!.slowestSteps.find((s) => /RUN echo/.test(s.name));
    const cold = await run(args, 'cold');
    expect(cold.exitCode, cold.stderr).toBe(0);
    expect(cold.report.platforms[0]!.cache).toMatch(m.cache);
    expect(cold.report.notes.join('\n')).toMatch(/linux\/arm64[^\n]*: no cache yet/);
    expect(heavy(cold.report, 'linux/arm64')).toMatchObject({ cached: false, emulated: true });
    const stamp = await dockerRun(`${repo}:v1`, 'linux/arm64', [], env);
    // What a fresh CI runner has: none of this repository's images, no build cache.
    const ls = await execa(docker, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo], { env });
    const refs = ls.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
    if (refs.length > 0) await execa(docker, ['rmi', '-f', ...refs], { env });
    await execa(docker, ['builder', 'prune', '-af'], { env });
    await execa(docker, ['image', 'prune', '-f'], { env });
    const warm = await run(args, 'warm');
    expect(warm.exitCode, warm.stderr).toBe(0);
    for (const p of ['linux/arm64', 'linux/arm/v7']) expect(heavy(warm.report, p), p).toMatchObject({ cached: true, emulated: false });
    expect(await dockerRun(`${repo}:v1`, 'linux/arm64', [], env)).toBe(stamp);
  });

  it('two legs (run --no-list) and merge: one list of both legs; a leg overwritten by an amd64 image fails, naming it', async () => {
    const repo = uniqueRepo(`ml-${m.engine}-${m.builder}`);
    const config = join(FIXTURES, 'app', 'platforms.json');
    const a = await run(['--config', config, '--image', repo, '--platform', 'linux/amd64', '--no-list'], 'leg-a');
    const b = await run(['--config', config, '--image', repo, '--platform', 'linux/arm64,linux/arm/v7', '--no-list'], 'leg-b');
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    const merged = await cli(['merge', '--config', config, '--image', repo, '--from-report', join(dir, 'leg-a.json'), join(dir, 'leg-b.json')], { env });
    expect(merged.exitCode, merged.stderr).toBe(0);
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map((e) => platformOf(e.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(attestationEntries(list.manifests)).toHaveLength(m.attests ? 3 : 0);
    // The arm64 "device" pushes an amd64 image under its tag: merge of the tags refuses it.
    const amd64 = a.report.platforms[0]!;
    const copy = await execa('skopeo', ['copy', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${repo}@${amd64.digest}`, `docker://${repo}:multiarch-arm64`], { reject: false });
    expect(copy.exitCode, copy.stderr).toBe(0);
    const bad = await cli(['merge', '--config', config, '--image', repo, '--tag', 'multiarch', '--json'], { env });
    expect(bad.exitCode).toBe(1);
    const legs = (JSON.parse(bad.stdout) as { legs: { platform: string; ok: boolean; error?: string }[] }).legs;
    expect(legs.find((l) => l.platform === 'linux/arm64')).toMatchObject({ ok: false, error: expect.stringMatching(/is not a proven linux\/arm64: metadata: .*says linux\/amd64/) });
  });

  it(m.builder === 'classic' ? 'a secret: refused by the classic builder, exit 2' : 'a secret reaches RUN --mount=type=secret, and no layer', async () => {
    const secret = `cb-matrix-${randomBytes(8).toString('hex')}`;
    const file = join(dir, 'token');
    writeFileSync(file, secret);
    const repo = uniqueRepo(`ms-${m.engine}-${m.builder}`);
    const args = ['--config', join(FIXTURES, 'secret', 'platforms.json'), '--image', repo, '--secret', `id=token,src=${file}`];
    if (m.builder === 'classic') {
      const refused = await cli(['run', ...args], { env });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/--secret needs BuildKit/);
      return;
    }
    const r = await run(args, 'secret');
    expect(r.exitCode, r.stderr).toBe(0);
    const { createHash } = await import('node:crypto');
    const platform = r.report.platforms[0]!.platform;
    expect(await dockerRun(`${repo}@${r.report.platforms[0]!.digest}`, platform, [], env)).toBe(createHash('sha256').update(secret).digest('hex'));
    expect(r.stderr).not.toContain(secret);
  });
});

describe.each(['docker-28c', 'docker-26'])('the current buildx builder (%s)', (engine) => {
  it("is the context's own (driver docker) until one is made with buildx create --use, and then that one", async () => {
    const base = engineEnv(engine);
    // A DOCKER_CONFIG of this test's own, with the engine's CLI plugins: buildx keeps its builders there.
    const config = scratchDir(`cb-bx-${engine}-`);
    writeFileSync(join(config, 'config.json'), readFileSync(join(base.DOCKER_CONFIG!, 'config.json')));
    const env = { ...base, CI: 'true', DOCKER_CONFIG: config };
    const builder = async () => {
      const r = await cli(['doctor', '--json'], { env });
      return (JSON.parse(r.stdout) as { checks: { check: string; detail: string }[] }).checks.find((c) => c.check === 'builder')?.detail;
    };
    expect(await builder()).toMatch(/^buildx \S+ \(driver docker\) via /);
    // Made and chosen, never started (its image is not reachable here): inspect still names its driver.
    const made = await execa(base.CROSSBUILD_DOCKER!, ['buildx', 'create', '--name', 'cb-dc', '--driver', 'docker-container', '--use'], { env, reject: false });
    expect(made.exitCode, made.stderr).toBe(0);
    expect(await builder()).toMatch(/^buildx \S+ \(driver docker-container\) via /);
    // Chosen by BUILDX_BUILDER instead, with `current` back on the context's own.
    await execa(base.CROSSBUILD_DOCKER!, ['buildx', 'use', 'default'], { env });
    expect(await builder()).toMatch(/\(driver docker\)/);
    const r = await cli(['doctor', '--json'], { env: { ...env, BUILDX_BUILDER: 'cb-dc' } });
    expect((JSON.parse(r.stdout) as { checks: { check: string; detail: string }[] }).checks.find((c) => c.check === 'builder')?.detail).toMatch(/\(driver docker-container\)/);
    rmSync(config, { recursive: true, force: true });
  });
});
