// Whole-image verification of what any builder left behind: wrong-arch files in a right-arch
// userland, missing and foreign loaders, --allow, buildx metadata files, and the GitHub action /
// GitLab template that run it as one CI step. Images are built here with the engine's BuildKit.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import yaml from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, DOCKER, REGISTRY, requireInfrastructure, ROOT, uniqueRepo } from '../helpers/env.js';

interface Report {
  ok: boolean;
  digest: string;
  platforms: { platform: string; verdict: string; files?: { filesScanned: number; elfChecked: number; mismatches: number; excused: number }; checks: { check: string; verdict: string; evidence: string }[] }[];
}
const binaries = (r: Report) => r.platforms[0]!.checks.find((c) => c.check === 'binaries')!;

/** Build one platform with the engine's BuildKit (FROM --platform stages resolve by digest) and push it; its digest. */
async function buildPush(dockerfile: string, platform: string, ref: string): Promise<string> {
  const ctx = scratchDir('cb-vb-');
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile);
  const b = await execa('/usr/bin/docker', ['build', '--platform', platform, '--network', 'none', '-t', ref, ctx], { reject: false, env: { DOCKER_BUILDKIT: '1' } });
  if (b.exitCode !== 0) throw new Error(`docker build failed: ${b.stderr}`);
  const p = await execa(DOCKER, ['push', ref], { reject: false });
  if (p.exitCode !== 0) throw new Error(`docker push failed: ${p.stderr}`);
  return /digest: (sha256:[a-f0-9]{64})/.exec(p.stdout)![1]!;
}

async function verify(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const r = await cli(['verify', ...args, '--static', '--json']);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}

const DEBIAN = `${REGISTRY}/debian:bookworm`;
const BUSYBOX = `${REGISTRY}/busybox:latest`;
let wrongArch: { ref: string; digest: string };

beforeAll(async () => {
  await requireInfrastructure();
  // An arm64 Debian userland with an amd64 program and an amd64 library slipped in.
  const ref = `${uniqueRepo('wrong-arch')}:v1`;
  const digest = await buildPush(
    `FROM --platform=linux/amd64 ${DEBIAN} AS amd\nFROM ${DEBIAN}\nCOPY --from=amd /usr/bin/true /usr/local/bin/busybox\nCOPY --from=amd /usr/lib/x86_64-linux-gnu/libc.so.6 /usr/lib/libfoo.so\n`,
    'linux/arm64',
    ref,
  );
  wrongArch = { ref, digest };
});

describe('every ELF file, its loader and libraries', () => {
  it('fails an arm64 userland with an amd64 program and library in it, naming each path', async () => {
    const { exitCode, report } = await verify([wrongArch.ref, '--platforms', 'linux/arm64']);
    expect(exitCode).toBe(1);
    const b = binaries(report);
    expect(b.verdict).toBe('fail');
    expect(b.evidence).toMatch(/2 of \d+ ELF files are not linux\/arm64: /);
    expect(b.evidence).toContain('/usr/local/bin/busybox is ELF64 LSB x86-64');
    expect(b.evidence).toContain('/usr/lib/libfoo.so is ELF64 LSB x86-64');
    expect(report.platforms[0]!.files).toMatchObject({ mismatches: 2, excused: 0 });
    expect(report.platforms[0]!.files!.elfChecked).toBeGreaterThan(50);
    // Text: the counts per platform.
    const text = await cli(['verify', wrongArch.ref, '--static']);
    expect(text.stdout).toMatch(/files +\d+ scanned, \d+ ELF checked, 2 mismatched, 0 excused/);
  });

  it('--allow excuses one path and only that one', async () => {
    const one = await verify([wrongArch.ref, '--allow', '/usr/local/bin/busybox']);
    expect(one.exitCode).toBe(1);
    expect(binaries(one.report).evidence).toContain('/usr/lib/libfoo.so');
    expect(binaries(one.report).evidence).not.toContain('/usr/local/bin/busybox');
    expect(one.report.platforms[0]!.files).toMatchObject({ mismatches: 1, excused: 1 });
    const both = await verify([wrongArch.ref, '--allow', '/usr/local/bin/busybox', '--allow', '/usr/lib/*.so']);
    expect(both.exitCode).toBe(0);
    expect(both.report.platforms[0]!.files).toMatchObject({ mismatches: 0, excused: 2 });
  });

  it('a dynamic ELF whose loader is missing fails naming the loader; a foreign loader too', async () => {
    const missing = `${uniqueRepo('no-loader')}:v1`;
    await buildPush(`FROM ${DEBIAN} AS deb\nFROM ${BUSYBOX}\nCOPY --from=deb /usr/bin/true /usr/bin/true\nCMD ["/usr/bin/true"]\n`, 'linux/arm64', missing);
    const m = await verify([missing]);
    expect(m.exitCode).toBe(1);
    expect(binaries(m.report).evidence).toContain('loader /lib/ld-linux-aarch64.so.1 is not in the image, expected AArch64 for linux/arm64 (needed by /usr/bin/true)');

    const foreign = `${uniqueRepo('foreign-loader')}:v1`;
    await buildPush(
      `FROM --platform=linux/amd64 ${DEBIAN} AS amd\nFROM ${DEBIAN} AS deb\nFROM ${BUSYBOX}\nCOPY --from=deb /usr/bin/true /usr/bin/true\nCOPY --from=amd /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1\nCMD ["/usr/bin/true"]\n`,
      'linux/arm64',
      foreign,
    );
    const f = await verify([foreign]);
    expect(f.exitCode).toBe(1);
    expect(binaries(f.report).evidence).toMatch(/loader \/lib\/ld-linux-aarch64\.so\.1 \(\/lib\/ld-linux-aarch64\.so\.1\) is ELF64 LSB x86-64, expected AArch64 for linux\/arm64 \(needed by \/usr\/bin\/true\)/);
  });

  it("takes buildx's --metadata-file (build-push-action's metadata output): the image by digest", async () => {
    const dir = scratchDir('cb-meta-');
    const file = join(dir, 'metadata.json');
    writeFileSync(file, JSON.stringify({ 'buildx.build.ref': 'builder/builder0/x', 'containerimage.config.digest': 'sha256:' + '0'.repeat(64), 'containerimage.digest': wrongArch.digest, 'image.name': `${wrongArch.ref},${wrongArch.ref.replace(/:v1$/, ':latest')}` }));
    const r = await cli(['verify', '--metadata', file, '--static', '--json']);
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout) as Report & { ref: string };
    expect(report.ref).toBe(`${wrongArch.ref.replace(/:v1$/, '')}@${wrongArch.digest}`);
    expect(report.digest).toBe(wrongArch.digest);
    writeFileSync(file, JSON.stringify({ 'image.name': wrongArch.ref }));
    const bad = await cli(['verify', '--metadata', file]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(`${file}: containerimage.digest: missing or not a sha256 digest`);
  });

  it('a digest reference works as well as a tag', async () => {
    const { exitCode, report } = await verify([`${wrongArch.ref.replace(/:v1$/, '')}@${wrongArch.digest}`, '--allow', '/usr/local/bin/*', '--allow', '/usr/lib/libfoo.so']);
    expect(exitCode).toBe(0);
    expect(report.digest).toBe(wrongArch.digest);
  });

  it('under GITHUB_ACTIONS=true, failures become ::error annotations on stderr', async () => {
    const r = await cli(['verify', wrongArch.ref, '--static', '--json'], { env: { CI: 'true', GITHUB_ACTIONS: 'true' } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^::error title=crossbuild verify linux\/arm64%3A binaries::.*\/usr\/local\/bin\/busybox is ELF64 LSB x86-64/m);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false });
    const plain = await cli(['verify', wrongArch.ref, '--static'], { env: { CI: 'true', GITHUB_ACTIONS: '' } });
    expect(plain.stderr).not.toMatch(/::error/);
  });
});

describe('a step any CI can drop in', () => {
  const action = yaml.load(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
    outputs: Record<string, { value: string }>;
    runs: { using: string; steps: { id?: string; run: string; shell: string; env: Record<string, string> }[] };
  };

  it('action.yml: a composite action whose inputs all reach its script', () => {
    expect(action.runs.using).toBe('composite');
    expect(Object.keys(action.inputs).sort()).toEqual(['allow', 'key', 'metadata', 'platforms', 'ref', 'registry-password', 'registry-username', 'require-attestation', 'static']);
    const step = action.runs.steps[0]!;
    expect(step.run).toBe('bash "$GITHUB_ACTION_PATH/ci/action-verify.sh"');
    for (const name of Object.keys(action.inputs)) expect(step.env[`INPUT_${name.toUpperCase().replace(/-/g, '_')}`]).toBe(`\${{ inputs.${name} }}`);
    expect(action.outputs.digest!.value).toBe('${{ steps.verify.outputs.digest }}');
    expect(action.outputs.result!.value).toBe('${{ steps.verify.outputs.result }}');
    // Nothing is pulled from Docker Hub: no docker:// step, no container action.
    expect(JSON.stringify(action)).not.toMatch(/docker:\/\/|using: docker/);
  });

  const runAction = async (env: Record<string, string>) => {
    const dir = scratchDir('cb-action-');
    const out = join(dir, 'output');
    const summary = join(dir, 'summary');
    writeFileSync(out, '');
    writeFileSync(summary, '');
    const r = await execa('bash', [join(ROOT, 'ci', 'action-verify.sh')], { reject: false, env: { GITHUB_ACTIONS: 'true', GITHUB_OUTPUT: out, GITHUB_STEP_SUMMARY: summary, RUNNER_TEMP: dir, INPUT_STATIC: 'true', ...env } });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, output: readFileSync(out, 'utf8'), summary: readFileSync(summary, 'utf8') };
  };

  it("the action's script with build-push-action's metadata JSON: failed, annotated, summarised", async () => {
    const meta = JSON.stringify({ 'containerimage.digest': wrongArch.digest, 'image.name': wrongArch.ref });
    const r = await runAction({ INPUT_METADATA: meta, INPUT_PLATFORMS: 'linux/arm64' });
    expect(r.exitCode).toBe(1);
    expect(r.output).toBe(`digest=${wrongArch.digest}\nresult=failed\n`);
    expect(r.summary).toMatch(/## crossbuild verify ❌/);
    expect(r.summary).toMatch(/\| linux\/arm64 \|.*\| \d+ \/ \d+ \/ 2 \/ 0 \|/);
    expect(r.stderr).toMatch(/::error title=crossbuild verify linux\/arm64%3A binaries::/);
  });

  it("the action's script with a ref, allow lines and static input: passed", async () => {
    const r = await runAction({ INPUT_REF: wrongArch.ref, INPUT_ALLOW: '/usr/local/bin/busybox\n/usr/lib/libfoo.so\n' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.output).toBe(`digest=${wrongArch.digest}\nresult=passed\n`);
    expect(r.stdout).toMatch(/crossbuild verify: passed/);
    const bad = await runAction({ INPUT_REF: wrongArch.ref, INPUT_STATIC: 'yes' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/::error title=crossbuild::input static must be 'true' or 'false'/);
  });

  it('the GitLab template runs the same script and publishes the JSON report', () => {
    const t = yaml.load(readFileSync(join(ROOT, 'ci', 'gitlab', 'crossbuild-verify.yml'), 'utf8')) as Record<string, { script: string[]; artifacts: { paths: string[]; reports: { dotenv: string } } }>;
    const job = t['.crossbuild-verify']!;
    expect(job.script.at(-1)).toBe('bash .crossbuild/ci/action-verify.sh');
    expect(job.script.join('\n')).toMatch(/CROSSBUILD_KEEP_REPORT="\$CI_PROJECT_DIR\/crossbuild-verify\.json"/);
    expect(job.artifacts.paths).toContain('crossbuild-verify.json');
    expect(job.artifacts.reports.dotenv).toBe('crossbuild-verify.env');
  });
});
