// The CI job script and the operator's experience: reports that match the registry, CI files that
// point at real scripts, a dry run that changes nothing, plain progress lines, and doctor.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import yaml from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, FIXTURES, requireInfrastructure, ROOT, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { sha } from '../helpers/oci.js';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';
import { installCa, makePki, startRegistry } from '../helpers/registries.js';


beforeAll(requireInfrastructure);

describe('ci/job.sh', () => {
  it('runs end to end against the local registry and writes reports whose digests the registry serves', async () => {
    const artifacts = scratchDir('cb-artifacts-');
    const repo = uniqueRepo('job');
    const stepSummary = join(artifacts, 'step-summary.md');
    const r = await execa('bash', [join(ROOT, 'ci', 'job.sh'), 'run'], {
      reject: false,
      env: { CI: 'true', CROSSBUILD_SKIP_PROVISION: '1', CROSSBUILD_CONFIG: join(FIXTURES, 'app', 'platforms.json'), CROSSBUILD_IMAGE: repo, CROSSBUILD_TAG: 'ci', CROSSBUILD_ARTIFACTS: artifacts, GITHUB_STEP_SUMMARY: stepSummary, GITHUB_OUTPUT: join(artifacts, 'gh-output') },
    });
    expect(r.stderr).not.toMatch(/FAIL/);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(readFileSync(join(artifacts, 'report.json'), 'utf8')) as {
      ok: boolean;
      crossbuild: string;
      engine: { version: string };
      list: { ref: string; digest: string; size: number; mediaType: string };
      platforms: { platform: string; tag: string; digest: string; pushedDigest: string | null; buildSeconds: number; checks: { verdict: string }[] }[];
    };
    expect(report.ok).toBe(true);
    expect(report.crossbuild).toMatch(/^\d+\.\d+\.\d+$/);
    expect(report.engine.version).toMatch(/^\d+\.\d+/);
    const list = (await skopeoRaw(`${repo}:ci`))!;
    expect(sha(list)).toBe(report.list.digest);
    expect(list.length).toBe(report.list.size);
    for (const p of report.platforms) {
      // The suffixed tag serves what was pushed: the image, or its index with attestations.
      expect(sha((await skopeoRaw(p.tag))!)).toBe(p.pushedDigest ?? p.digest);
      expect(p.buildSeconds).toBeGreaterThan(0);
      expect(p.checks.every((c) => c.verdict === 'pass')).toBe(true);
    }
    const md = readFileSync(join(artifacts, 'summary.md'), 'utf8');
    expect(md).toContain(report.list.digest);
    expect(md).toMatch(/\| linux\/arm\/v7 \|/);
    expect(readFileSync(stepSummary, 'utf8')).toBe(md);
    expect(readFileSync(join(artifacts, 'gh-output'), 'utf8')).toBe(`ok=true\ndigest=${report.list.digest}\n`);
    expect(readdirSync(join(artifacts, 'logs')).sort()).toEqual(['amd64.log', 'arm32.log', 'arm64.log']);

    // The scheduled variant verifies what was published.
    const v = await execa('bash', [join(ROOT, 'ci', 'job.sh'), 'verify'], {
      reject: false,
      env: { CI: 'true', CROSSBUILD_SKIP_PROVISION: '1', CROSSBUILD_CONFIG: join(FIXTURES, 'app', 'platforms.json'), CROSSBUILD_IMAGE: repo, CROSSBUILD_TAG: 'ci', CROSSBUILD_ARTIFACTS: join(artifacts, 'verify') },
    });
    expect(v.exitCode).toBe(0);
    const vr = JSON.parse(readFileSync(join(artifacts, 'verify', 'report.json'), 'utf8')) as { ok: boolean; digest: string };
    expect(vr).toMatchObject({ ok: true, digest: report.list.digest });
  });

  it('on the Docker 28 engine, publishes to a TLS + htpasswd registry with REGISTRY_USERNAME/REGISTRY_PASSWORD', async () => {
    const pki = await makePki();
    const password = 'job-Secret-5e1b';
    const reg = await startRegistry({ tls: pki, auth: { htpasswd: { user: 'ci', password } } });
    const removeCa = installCa(reg.addr, pki.caCert);
    try {
      const artifacts = scratchDir('cb-artifacts-tls-');
      // The base image comes from the loopback registry; the result goes to the TLS one.
      const r = await execa('bash', [join(ROOT, 'ci', 'job.sh'), 'run'], {
        reject: false,
        env: { CI: 'true', ...engineEnv('docker-28c'), CROSSBUILD_SKIP_PROVISION: '1', CROSSBUILD_CONFIG: join(FIXTURES, 'app', 'platforms.json'), CROSSBUILD_IMAGE: `${reg.addr}/team/app`, CROSSBUILD_TAG: 'ci', CROSSBUILD_ARTIFACTS: artifacts, REGISTRY_USERNAME: 'ci', REGISTRY_PASSWORD: password },
      });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(password);
      const report = JSON.parse(readFileSync(join(artifacts, 'report.json'), 'utf8')) as { engine: { version: string; imageStore: string }; list: { digest: string }; platforms: { attestations: string[] }[] };
      expect(report.engine).toMatchObject({ version: expect.stringMatching(/^28\.5/), imageStore: 'containerd' });
      expect(readFileSync(join(artifacts, 'report.json'), 'utf8')).not.toContain(password);
      const inspect = await cli(['manifest', 'inspect', `${reg.addr}/team/app:ci`, '--username', 'ci', '--password-stdin', '--json'], { input: password });
      expect(inspect.exitCode, inspect.stderr).toBe(0);
      const list = JSON.parse(inspect.stdout) as { digest: string; manifests: { platform: string; digest: string; attestation: boolean }[] };
      expect(list.digest).toBe(report.list.digest);
      expect(list.manifests.filter((m) => !m.attestation).map((m) => m.platform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
      expect(list.manifests.filter((m) => m.attestation).map((m) => m.digest).sort()).toEqual(report.platforms.flatMap((p) => p.attestations).sort());
    } finally {
      removeCa();
      await reg.stop();
    }
  });

  it('passes shellcheck', async () => {
    const r = await execa('shellcheck', [join(ROOT, 'ci', 'job.sh'), join(ROOT, 'ci', 'provision.sh'), join(ROOT, 'ci', 'engines.sh'), join(ROOT, 'ci', 'seed-base.sh'), join(ROOT, '.ci', 'run')], { reject: false });
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('GitHub and GitLab files parse and call only scripts that exist', () => {
    const files = ['.github/workflows/crossbuild.yml', '.github/workflows/crossbuild-verify.yml', '.gitlab-ci.yml'];
    const scripts = new Set<string>();
    const walk = (n: unknown): void => {
      if (typeof n === 'string') for (const m of n.matchAll(/\b((?:ci|\.ci)\/[\w./-]+)/g)) scripts.add(m[1]!);
      else if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === 'object') Object.values(n).forEach(walk);
    };
    for (const f of files) {
      const doc = yaml.load(readFileSync(join(ROOT, f), 'utf8'));
      expect(doc, f).toBeTypeOf('object');
      walk(doc);
    }
    const gh = yaml.load(readFileSync(join(ROOT, files[0]!), 'utf8')) as { jobs: Record<string, { 'runs-on': string; steps: { env?: Record<string, string> }[] }> };
    expect(Object.values(gh.jobs)).toHaveLength(1);
    expect(Object.values(gh.jobs)[0]!['runs-on']).toBe('ubuntu-latest');
    expect(JSON.stringify(gh)).toMatch(/secrets\.REGISTRY_PASSWORD/);
    expect([...scripts].sort()).toEqual(['ci/job.sh']);
    for (const s of scripts) expect(existsSync(join(ROOT, s)), s).toBe(true);
  });
});

describe('operator experience', () => {
  it('--dry-run builds, pushes and registers nothing', async () => {
    const repo = uniqueRepo('dry');
    // This repository's images only: other test files build on the same engine at the same time.
    const images = async () => (await execa(DOCKER, ['image', 'ls', '-a', '--format', '{{.Repository}}:{{.Tag}}', repo])).stdout.split('\n').filter(Boolean).sort().join(',');
    const before = await images();
    expect(before).toBe('');
    const handlersBefore = readdirSync('/proc/sys/fs/binfmt_misc').sort();
    const r = await cli(['run', '--config', join(FIXTURES, 'five', 'platforms.json'), '--image', repo, '--dry-run', '--platform', 'linux/s390x', '--platform', 'linux/arm64']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Plan \(dry run/);
    expect(r.stdout).toMatch(new RegExp(`linux/s390x → ${repo.replace(/[.]/g, '\\.')}:v1-s390x \\(uname -m: s390x\\)`));
    expect(r.stdout).toMatch(/--platform linux\/s390x/);
    // An OCI index where buildx will attach provenance (it can carry attestations), else a Docker list.
    expect(r.stdout).toMatch(/manifest list: .*:v1 \(application\/(vnd\.docker\.distribution\.manifest\.list\.v2|vnd\.oci\.image\.index\.v1)\+json\) of linux\/s390x, linux\/arm64/);
    expect(await images()).toBe(before);
    expect(readdirSync('/proc/sys/fs/binfmt_misc').sort()).toEqual(handlersBefore);
    expect(await skopeoRaw(`${repo}:v1`)).toBeUndefined();
    expect(await skopeoRaw(`${repo}:v1-s390x`)).toBeUndefined();
  });

  it('prints one plain timestamped line per state change in CI, with no ANSI codes', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('plain'), '--no-push', '--platform', 'linux/arm64']);
    expect(r.exitCode).toBe(0);
    // eslint-disable-next-line no-control-regex
    expect(r.stderr).not.toMatch(/\u001b\[/);
    // A slow build may add a heartbeat (`still building (30s)`) or the emulation advice (a warning):
    // progress, not a state change.
    const lines = r.stderr.split('\n').filter((l) => /^\d{4}-\d\d-\d\dT/.test(l) && !/^\S+ \[[^\]]+\] (still \S+ \(\d+s\)$|warning)/.test(l));
    expect(lines.map((l) => /^\S+ \[([^\]]+)\] (\S+?)(:|$)/.exec(l)?.slice(1, 3).join(' '))).toEqual([
      'preflight started',
      'preflight done',
      'binfmt done',
      'linux/arm64 building',
      'linux/arm64 verifying',
      'linux/arm64 done',
    ]);
    expect(r.stdout).toBe('');
  });

  it('--json prints the report on stdout and nothing else', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('json'), '--no-push', '--platform', 'linux/amd64', '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, platforms: [{ platform: 'linux/amd64', ok: true }] });
  });

  it('takes CROSSBUILD_* variables, with flags winning', async () => {
    const env = { CROSSBUILD_CONFIG: join(FIXTURES, 'five', 'platforms.json'), CROSSBUILD_IMAGE: 'localhost:5000/from-env', CROSSBUILD_TAG: 'envtag', CROSSBUILD_PLATFORMS: 'linux/ppc64le,linux/s390x' };
    const r = await cli(['run', '--dry-run', '--json'], { env });
    const plan = JSON.parse(r.stdout) as { list: { ref: string; platforms: string[] } };
    expect(plan.list).toMatchObject({ ref: 'localhost:5000/from-env:envtag', platforms: ['linux/ppc64le', 'linux/s390x'] });
    const f = await cli(['run', '--dry-run', '--json', '--tag', 'flagtag', '--platform', 'linux/arm64'], { env });
    expect((JSON.parse(f.stdout) as { list: { ref: string; platforms: string[] } }).list).toMatchObject({ ref: 'localhost:5000/from-env:flagtag', platforms: ['linux/arm64'] });
  });

  it('doctor names a missing handler and a stopped engine, each with its fix', async () => {
    // loong64 is used by no other test: take its handler away for the length of this one.
    await cli(['binfmt', 'uninstall', '--platform', 'linux/loong64']);
    try {
      const r = await cli(['doctor', '--config', join(tmpdir(), 'none.json'), '--platform', 'linux/loong64,linux/arm64'], { env: { DOCKER_HOST: 'unix:///run/crossbuild-no-such-docker.sock' } });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(/^FAIL +handler linux\/loong64 +no handler registered\n +fix: crossbuild binfmt install --platform linux\/loong64$/m);
      expect(r.stdout).toMatch(/^OK +handler linux\/arm64 /m);
      expect(r.stdout).toMatch(/^FAIL +docker engine +the Docker engine is not reachable.*\n +fix: start it: dockerd --bridge=none --iptables=false/m);
      expect(r.stdout).toMatch(/^OK +disk /m);
    } finally {
      await cli(['binfmt', 'install', '--platform', 'linux/loong64']);
    }
  });
});
