// Build nodes: a second engine on this machine (Docker 26.1 from ci/engines.sh, its own socket and
// data root) stands in for a native node, reached by URL and by context name.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, dockerRun, FIXTURES, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { imageEntries, platformOf, type Index } from '../helpers/oci.js';
import { engineEnv } from '../helpers/engine-setup.js';

let dir: string;
// The node is another engine on this machine: Docker 26.1 (ci/engines.sh), reached by URL and by a context.
const sock = engineEnv('docker-26').DOCKER_HOST!;
const context = `cb-node-${process.pid}`;

beforeAll(async () => {
  await requireInfrastructure();
  dir = mkdtempSync('/tmp/cbn-');
  if ((await execa(DOCKER, ['--host', sock, 'info'], { reject: false })).exitCode !== 0) throw new Error(`the node engine docker-26 does not answer on ${sock}: run \`bash ci/provision.sh\``);
  await execa(DOCKER, ['context', 'rm', '-f', context], { reject: false });
  await execa(DOCKER, ['context', 'create', context, '--docker', `host=${sock}`]);
}, 120_000);

afterAll(async () => {
  await execa(DOCKER, ['context', 'rm', '-f', context], { reject: false });
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

const images = async (host: string[], repo: string) => (await execa(DOCKER, [...host, 'image', 'ls', '--format', '{{.Tag}}', repo])).stdout.split('\n').filter(Boolean).sort();

describe('a node per platform', () => {
  it('arm64 on the node by URL, arm/v7 by context name, amd64 locally: each built where it was sent, one valid list', async () => {
    const repo = uniqueRepo('nodes');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--node', `linux/arm64=${sock}`, '--node', `linux/arm/v7=${context}`, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { platforms: { platform: string; node: string | null; ok: boolean }[] };
    expect(report.platforms.map((p) => [p.platform, p.node])).toEqual([
      ['linux/amd64', null],
      ['linux/arm/v7', context],
      ['linux/arm64', sock],
    ]);
    // The node's engine holds the platforms it built; the local one does not.
    expect(await images(['--host', sock], repo)).toEqual(['multiarch-arm32', 'multiarch-arm64']);
    expect(await images([], repo)).toEqual(['multiarch-amd64']);
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toBe('aarch64');
  });

  it('the dry-run plan names each platform’s node and the command that reaches it', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('nodes-plan'), '--node', `linux/arm64=${sock}`, '--dry-run']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`node: ${sock.replace(/[/.]/g, '\\$&')}, network: none`));
    expect(r.stdout).toMatch(/docker --host unix:\/\/\S+ (buildx build --load|build --force-rm|build) --platform linux\/arm64/);
  });

  it('the dry run and the run agree on QEMU handlers: none for a platform built on a node, one for a local emulated one', async () => {
    const args = ['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('nodes-binfmt'), '--platform', 'linux/arm64,linux/arm/v7', '--node', `linux/arm/v7=${context}`];
    const plan = await cli([...args, '--dry-run', '--json']);
    expect(plan.exitCode, plan.stderr).toBe(0);
    const binfmt = (JSON.parse(plan.stdout) as { binfmt: { platform: string; now: string; change: string }[] }).binfmt;
    expect(binfmt.find((b) => b.platform === 'linux/arm/v7')).toMatchObject({ change: 'none', now: `built on node ${context}, whose kernel has its own handlers` });
    expect(binfmt.find((b) => b.platform === 'linux/arm64')!.now).toMatch(/^ok: /);
    const r = await cli([...args, '--no-push']);
    expect(r.exitCode, r.stderr).toBe(0);
    // The run registers (or keeps) handlers for exactly the platforms the plan named.
    const line = /\[binfmt\] done: (.*)/.exec(r.stderr)![1]!;
    expect(line).toMatch(/^linux\/arm64 /);
    expect(line).not.toMatch(/arm\/v7/);
  });

  it('an unreachable node fails only its platforms, naming it and how it was reached; no list', async () => {
    const repo = uniqueRepo('nodes-down');
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--node', 'linux/arm64=unix:///tmp/cb-no-such-node.sock']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL linux\/arm64 +build: node unix:\/\/\/tmp\/cb-no-such-node\.sock \(unix:\/\/\/tmp\/cb-no-such-node\.sock\) is unreachable/);
    expect(r.stderr).toMatch(/ok +linux\/amd64/);
    expect(r.stderr).toMatch(/ok +linux\/arm\/v7/);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
  });
});

describe('doctor, per node', () => {
  it('says whether each node answers and whether its emulated platforms have a handler', async () => {
    const { writeFileSync } = await import('node:fs');
    const f = join(dir, 'p.json');
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/it/doctor-nodes', network: 'none', platforms: [{ platform: 'linux/amd64', suffix: 'amd64', node: sock }, { platform: 'linux/arm64', suffix: 'arm64', node: sock }, { platform: 'linux/s390x', suffix: 's390x', node: 'unix:///tmp/cb-no-such-node.sock' }] }));
    const r = await cli(['doctor', '--config', f, '--json']);
    const checks = (JSON.parse(r.stdout) as { checks: { status: string; check: string; detail: string }[] }).checks;
    const find = (c: string) => checks.find((x) => x.check === c);
    expect(find(`node ${sock}`)).toMatchObject({ status: 'OK' });
    expect(find(`node ${sock} linux/amd64`)).toMatchObject({ status: 'OK', detail: 'native: no QEMU handler needed' });
    expect(find(`node ${sock} linux/arm64`)?.detail).toMatch(/^emulated, handler qemu-aarch64/);
    expect(find('node unix:///tmp/cb-no-such-node.sock')).toMatchObject({ status: 'FAIL' });
    expect(r.exitCode).toBe(1);
  });
});
