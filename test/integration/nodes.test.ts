// Build nodes: a second dockerd on this machine stands in for a native node (its own socket,
// data-root, exec-root and pidfile; no bridge, no iptables), reached by URL and by context name.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, dockerRun, FIXTURES, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { platformOf, type Index } from '../helpers/oci.js';

let dir: string;
let sock: string;
let dockerd: ResultPromise | undefined;
const context = `cb-node-${process.pid}`;

beforeAll(async () => {
  await requireInfrastructure();
  // Short paths: a unix socket path must stay under 108 bytes.
  dir = mkdtempSync('/tmp/cbn-');
  sock = `unix://${dir}/d.sock`;
  dockerd = execa('dockerd', ['--host', sock, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'x'), '--pidfile', join(dir, 'd.pid'), '--bridge=none', '--iptables=false'], { reject: false, stdio: 'ignore' });
  for (let i = 0; i < 120; i++) {
    if ((await execa('docker', ['--host', sock, 'info'], { reject: false })).exitCode === 0) break;
    if (i === 119) throw new Error('the second dockerd did not start');
    await new Promise((r) => setTimeout(r, 500));
  }
  await execa('docker', ['context', 'rm', '-f', context], { reject: false });
  await execa('docker', ['context', 'create', context, '--docker', `host=${sock}`]);
  // The 20.10 CLI (the engine's BuildKit) reads the same contexts.
}, 120_000);

afterAll(async () => {
  await execa('docker', ['context', 'rm', '-f', context], { reject: false });
  dockerd?.kill('SIGTERM');
  await dockerd;
  await execa('umount', ['-R', join(dir, 'data')], { reject: false });
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

const images = async (host: string[], repo: string) => (await execa('docker', [...host, 'image', 'ls', '--format', '{{.Tag}}', repo])).stdout.split('\n').filter(Boolean).sort();

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
    expect(list.manifests.map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toBe('aarch64');
  });

  it('the dry-run plan names each platform’s node and the command that reaches it', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('nodes-plan'), '--node', `linux/arm64=${sock}`, '--dry-run']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`node: ${sock.replace(/[/.]/g, '\\$&')}, network: none`));
    expect(r.stdout).toMatch(/docker --host unix:\/\/\S+ build --platform linux\/arm64/);
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
