// The test gate: every platform's tests run in its built image (under QEMU where emulated) before
// anything of it is pushed; the list only when every platform passed. And `verify --test` runs
// the same tests on a published list, by digest.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, DOCKER, FIXTURES, requireInfrastructure, ROOT, skopeoRaw, uniqueRepo } from '../helpers/env.js';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  tests: string | null;
  platforms: { platform: string; ok: boolean; failedAt: string | null; error: string | null; tests: { name: string; verdict: string; seconds: number; reason?: string; output?: string }[] }[];
}
const app = join(FIXTURES, 'app', 'platforms.json');
const testContainers = async () => (await execa(DOCKER, ['ps', '-a', '--filter', 'name=crossbuild-test-', '--format', '{{.Names}}'])).stdout.trim();

describe('the test gate in run', () => {
  it('a command test that fails only under arm/v7: exit 1 naming it, arm/v7 not pushed, no list, the others passed; JUnit says the same', async () => {
    const repo = uniqueRepo('gate-cmd');
    const dir = scratchDir('cb-gate-');
    const r = await cli(['run', '--config', app, '--image', repo, '--test', 'test "$(uname -m)" != armv7l && echo "fine on $(uname -m)"', '--report', join(dir, 'r.json'), '--junit', join(dir, 'junit.xml')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL linux\/arm\/v7 +test: linux\/arm\/v7: test "run sh -c test .*…" failed: exited 1/);
    expect(r.stderr).toMatch(/\[linux\/arm64\] tested: .*: passed/);
    expect(r.stderr).toMatch(/ok +linux\/amd64/);
    const report = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as Report;
    const by = (p: string) => report.platforms.find((x) => x.platform === p)!;
    expect(by('linux/arm/v7')).toMatchObject({ ok: false, failedAt: 'test' });
    expect(by('linux/arm64').tests[0]).toMatchObject({ verdict: 'pass', output: 'fine on aarch64' });
    expect(by('linux/amd64').tests[0]).toMatchObject({ verdict: 'pass', output: 'fine on x86_64' });
    expect(await skopeoRaw(`${repo}:multiarch-arm32`)).toBeUndefined();
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
    // JUnit: well-formed, one testcase per test and platform, the failure with its output.
    const lint = await execa('xmllint', ['--noout', join(dir, 'junit.xml')], { reject: false });
    expect(lint.exitCode, lint.stderr).toBe(0);
    const xml = readFileSync(join(dir, 'junit.xml'), 'utf8');
    expect(xml.match(/<testcase /g)).toHaveLength(3);
    expect(xml).toMatch(/<testsuite name="linux\/arm\/v7" tests="1" failures="1"[^>]*>\s*<testcase classname="linux\/arm\/v7"[^>]*>\s*<failure message="exited 1" type="run">/);
    expect(await testContainers()).toBe('');
  });

  it('a target test: the stage builds for each platform, fails on arm64 alone; nothing of arm64 is pushed', async () => {
    const repo = uniqueRepo('gate-target');
    const r = await cli(['run', '--config', join(FIXTURES, 'gate', 'platforms.json'), '--image', repo, '--json']);
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout) as Report;
    const arm64 = report.platforms.find((p) => p.platform === 'linux/arm64')!;
    expect(arm64).toMatchObject({ ok: false, failedAt: 'test' });
    expect(arm64.tests[0]).toMatchObject({ name: 'the test stage builds', verdict: 'fail', reason: 'stage test failed to build for linux/arm64' });
    expect(arm64.tests[0]!.output).toMatch(/testing on aarch64/);
    expect(report.platforms.find((p) => p.platform === 'linux/amd64')!.tests[0]).toMatchObject({ verdict: 'pass' });
    expect(await skopeoRaw(`${repo}:v1-arm64`)).toBeUndefined();
    // The amd64 image pushed is the app stage, not the test stage.
    expect(await skopeoRaw(`${repo}:v1-amd64`)).toBeDefined();
  });

  it('a test that hangs ends at its timeout, named, its container removed', async () => {
    const r = await cli(['run', '--config', app, '--image', uniqueRepo('gate-hang'), '--platform', 'linux/arm64', '--no-push', '--test', '{"name": "sleeps", "run": ["sleep", "600"], "timeout": "3s"}']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/test "sleeps" failed: did not finish within 3s; container removed/);
    expect(await testContainers()).toBe('');
  });

  it('SIGINT during a test: no test container left, exit 130', async () => {
    const sub = execa('node', [join(ROOT, 'bin', 'crossbuild.js'), 'run', '--config', app, '--image', uniqueRepo('gate-int'), '--platform', 'linux/arm64', '--no-push', '--test', '{"run": ["sleep", "600"], "timeout": "300s"}'], { reject: false, env: { CI: 'true' } });
    for (let i = 0; i < 240 && (await testContainers()) === ''; i++) await new Promise((r) => setTimeout(r, 500));
    expect(await testContainers()).not.toBe('');
    sub.kill('SIGINT');
    const r = await sub;
    expect(r.exitCode).toBe(130);
    expect(await testContainers()).toBe('');
  });

  it('--no-test skips them and the report says so; --dry-run lists them per platform', async () => {
    const plan = await cli(['run', '--config', join(FIXTURES, 'gate', 'platforms.json'), '--image', uniqueRepo('gate-plan'), '--dry-run']);
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stdout.match(/ +test: the test stage builds/g)).toHaveLength(2);
    const r = await cli(['run', '--config', join(FIXTURES, 'gate', 'platforms.json'), '--image', uniqueRepo('gate-skip'), '--no-push', '--no-test', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.tests).toBe('skipped (--no-test)');
    expect(report.platforms.every((p) => p.tests.length === 0)).toBe(true);
  });

  it('a bad test is exit 2 naming the field', async () => {
    const r = await cli(['run', '--config', app, '--image', uniqueRepo('gate-bad'), '--dry-run', '--test', '{"http": {"port": 99999}}']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--test\.http\.port 99999: expected a port from 1 to 65535/);
  });
});

describe('verify --test', () => {
  it('runs the tests on a published list, each platform pulled by digest', async () => {
    const repo = uniqueRepo('gate-verify');
    const pushed = await cli(['run', '--config', app, '--image', repo, '--platform', 'linux/arm64,linux/arm/v7', '--no-test']);
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    const r = await cli(['verify', `${repo}:multiarch`, '--platform', 'linux/arm64,linux/arm/v7', '--test', 'uname -m', '--json']);
    expect(r.exitCode, r.stdout).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; platforms: { platform: string; digest: string; tests: { verdict: string; output: string }[]; checks: { check: string; verdict: string; evidence: string }[] }[] };
    expect(report.platforms.map((p) => [p.platform, p.tests[0]!.output])).toEqual([
      ['linux/arm64', 'aarch64'],
      ['linux/arm/v7', 'armv7l'],
    ]);
    expect(report.platforms[0]!.checks.find((c) => c.check === 'tests')).toMatchObject({ verdict: 'pass', evidence: '1 of 1 tests passed' });
    const failing = await cli(['verify', `${repo}:multiarch`, '--platform', 'linux/arm64,linux/arm/v7', '--test', 'test "$(uname -m)" = aarch64']);
    expect(failing.exitCode).toBe(1);
    expect(failing.stdout).toMatch(/linux\/arm\/v7  FAIL[\s\S]*tests +FAIL +0 of 1 tests passed: run sh -c test .* \(exited 1\)/);
  });
});
