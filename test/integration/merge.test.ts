// Legs built separately (`run --no-list`: a CI matrix leg, a device) merged into one verified list.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, DOCKER, dockerRun, FIXTURES, REGISTRY, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { imageEntries, platformOf, sha, type Index } from '../helpers/oci.js';

beforeAll(requireInfrastructure);

const config = join(FIXTURES, 'app', 'platforms.json');
const leg = (repo: string, platforms: string, report: string) => cli(['run', '--config', config, '--image', repo, '--platform', platforms, '--no-list', '--report', report]);

describe('legs and merge', () => {
  let repo: string;
  let dir: string;
  beforeAll(async () => {
    repo = uniqueRepo('legs');
    dir = scratchDir('cb-legs-');
    // Two legs, as two matrix jobs would run them: each pushes its platforms and writes no list.
    const [a, b] = await Promise.all([leg(repo, 'linux/amd64', join(dir, 'a.json')), leg(repo, 'linux/arm/v7,linux/arm64', join(dir, 'b.json'))]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(a.stdout).not.toMatch(/Digest:/);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
  });

  it('merge finds the suffixed tags, proves each leg, and writes the list', async () => {
    const r = await cli(['merge', '--config', config, '--image', repo]);
    expect(r.exitCode, r.stderr).toBe(0);
    const printed = /^Digest: (sha256:[a-f0-9]{64}) (\d+)$/m.exec(r.stdout)!;
    const raw = (await skopeoRaw(`${repo}:multiarch`))!;
    expect(sha(raw)).toBe(printed[1]);
    const list = JSON.parse(raw.toString()) as Index;
    expect(imageEntries(list.manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [])).toBe('armv7l');
  });

  it("--from-report takes the legs' digests", async () => {
    const r = await cli(['merge', '--config', config, '--image', repo, '--tag', 'from-report', '--from-report', join(dir, 'a.json'), join(dir, 'b.json'), '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; legs: { platform: string; digest: string }[] };
    const legs = [...(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')) as { platforms: { platform: string; digest: string }[] }).platforms, ...(JSON.parse(readFileSync(join(dir, 'b.json'), 'utf8')) as { platforms: { platform: string; digest: string }[] }).platforms];
    for (const l of report.legs) expect(l.digest).toBe(legs.find((x) => x.platform === l.platform)!.digest);
    const list = JSON.parse((await skopeoRaw(`${repo}:from-report`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map((m) => m.digest)).toEqual(report.legs.map((l) => l.digest));
  });

  it("--from-digests takes a folder of digest files (Docker's multi-runner recipe)", async () => {
    const digests = join(dir, 'digests');
    mkdirSync(digests);
    for (const f of ['a.json', 'b.json']) for (const p of (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { platforms: { digest: string }[] }).platforms) writeFileSync(join(digests, p.digest.replace('sha256:', '')), '');
    const r = await cli(['merge', '--config', config, '--image', repo, '--tag', 'from-digests', '--from-digests', digests]);
    expect(r.exitCode, r.stderr).toBe(0);
    const list = JSON.parse((await skopeoRaw(`${repo}:from-digests`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
  });

  it("a leg's tag overwritten by an amd64 image: exit 1 naming that leg, no list", async () => {
    const bad = uniqueRepo('legs-bad');
    const a = await leg(bad, 'linux/amd64,linux/arm/v7', join(dir, 'bad.json'));
    expect(a.exitCode, a.stderr).toBe(0);
    // The arm64 "device" pushed the wrong thing: an amd64 image under the arm64 tag.
    await execa(DOCKER, ['pull', '--platform', 'linux/amd64', `${REGISTRY}/busybox:latest-amd64`]);
    await execa(DOCKER, ['tag', `${REGISTRY}/busybox:latest-amd64`, `${bad}:multiarch-arm64`]);
    await execa(DOCKER, ['push', `${bad}:multiarch-arm64`]);
    const r = await cli(['merge', '--config', config, '--image', bad]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL linux\/arm64 +\S+:multiarch-arm64 \(sha256:[0-9a-f]{64}\) is not a proven linux\/arm64: metadata: config says linux\/amd64, expected linux\/arm64/);
    expect(r.stderr).toMatch(/ok +linux\/amd64/);
    expect(r.stderr).toMatch(/no manifest list was written/);
    expect(await skopeoRaw(`${bad}:multiarch`)).toBeUndefined();
  });

  it('missing legs: exit 1 naming the missing tags', async () => {
    const none = uniqueRepo('legs-none');
    const r = await cli(['merge', '--config', config, '--image', none, '--platform', 'linux/arm64,linux/arm/v7']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL linux\/arm64 +missing: \S+:multiarch-arm64 does not exist/);
    expect(r.stderr).toMatch(/FAIL linux\/arm\/v7 +missing: \S+:multiarch-arm32 does not exist/);
    expect(await skopeoRaw(`${none}:multiarch`)).toBeUndefined();
  });
});

describe('CI that fans out', () => {
  it('GitHub: a leg per platform group (native arm64 runner included), then one merge of their reports', async () => {
    const yaml = (await import('js-yaml')).default;
    const { ROOT } = await import('../helpers/env.js');
    const wf = yaml.load(readFileSync(join(ROOT, '.github', 'workflows', 'crossbuild-matrix.yml'), 'utf8')) as {
      jobs: { leg: { 'runs-on': string; strategy: { matrix: { include: { runner: string; platforms: string }[] } }; steps: { run?: string }[] }; merge: { needs: string; steps: { run?: string }[] } };
    };
    const runners = wf.jobs.leg.strategy.matrix.include.map((m) => m.runner);
    expect(runners).toEqual(['ubuntu-24.04', 'ubuntu-24.04-arm']);
    expect(wf.jobs.leg.strategy.matrix.include.flatMap((m) => m.platforms.split(',')).sort()).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    const legRun = wf.jobs.leg.steps.map((s) => s.run ?? '').join('\n');
    expect(legRun).toMatch(/crossbuild\.js run --no-list --platform "\$\{\{ matrix\.platforms \}\}"[\s\S]*--report "leg-/);
    expect(wf.jobs.merge.needs).toBe('leg');
    expect(wf.jobs.merge.steps.map((s) => s.run ?? '').join('\n')).toMatch(/crossbuild\.js merge --from-report leg-\*\.json/);
    // Every script the workflow names exists.
    for (const m of legRun.matchAll(/bash (ci\/[\w./-]+)/g)) expect(readFileSync(join(ROOT, m[1]!), 'utf8').length).toBeGreaterThan(0);
  });

  it('GitLab: the same legs with parallel:matrix, and a merge job that needs them', async () => {
    const yaml = (await import('js-yaml')).default;
    const { ROOT } = await import('../helpers/env.js');
    const t = yaml.load(readFileSync(join(ROOT, 'ci', 'gitlab', 'crossbuild-matrix.yml'), 'utf8')) as Record<string, { parallel?: { matrix: { PLATFORMS: string }[] }; script: string[]; needs?: string[] }>;
    expect(t['crossbuild-leg']!.parallel!.matrix.flatMap((m) => m.PLATFORMS.split(',')).sort()).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(t['crossbuild-leg']!.script.join('\n')).toMatch(/run --no-list --platform "\$PLATFORMS"/);
    expect(t['crossbuild-merge']!.needs).toEqual(['crossbuild-leg']);
    expect(t['crossbuild-merge']!.script.join('\n')).toMatch(/merge --from-report leg-\*\.json/);
  });
});
