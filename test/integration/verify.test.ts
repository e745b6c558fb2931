// `crossbuild verify` on the failures people actually ship, each made here with the real tools
// (docker build/import/push, crossbuild manifest push) and pushed to the real registry.
import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { buildAndPush, cli, DOCKER, HOST_ENGINE, REGISTRY, requireInfrastructure, ROOT, uniqueRepo } from '../helpers/env.js';
import { pushTestImage, ustarHeader } from '../helpers/oci.js';

interface Report {
  ok: boolean;
  missing: string[];
  extra: string[];
  coverage: { verdict: string; evidence: string }[];
  platforms: { platform: string; verdict: string; checks: { check: string; verdict: string; evidence: string }[] }[];
}
const check = (r: Report, platform: string, name: string) => r.platforms.find((p) => p.platform === platform)?.checks.find((c) => c.check === name);

const dockerBuildPush = (dockerfile: string, platform: string, ref: string) => buildAndPush(dockerfile, platform, ref);

async function verify(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const r = await cli(['verify', ...args, '--json']);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}

beforeAll(requireInfrastructure);

describe('crossbuild verify', () => {
  it('passes a good 3-platform list on every check, in text and JSON', async () => {
    const target = `${uniqueRepo('good')}:multiarch`;
    // The template reaches -amd64 and -arm64; arm/v7's seed tag is -arm32, so --ignore-missing
    // leaves it out with a warning, and verify then reports it missing.
    const mk = await cli(['manifest', 'push', 'from-args', '--platforms', 'linux/amd64,linux/arm/v7,linux/arm64', '--template', `${REGISTRY}/busybox:latest-ARCH`, '--target', target, '--ignore-missing']);
    expect(mk.exitCode).toBe(0);
    expect(mk.stderr).toMatch(/warning: .*busybox:latest-arm\b/);
    const partial = await verify([target, '--platforms', 'linux/amd64,linux/arm/v7,linux/arm64', '--static']);
    expect(partial.exitCode).toBe(1);
    expect(partial.report.missing).toEqual(['linux/arm/v7']);
    // Given by spec instead, arm/v7 is there.
    const spec = join(scratchDir('cb-vspec-'), 's.yaml');
    writeFileSync(spec, `image: ${target}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-amd64\n  - image: ${REGISTRY}/busybox:latest-arm32\n  - image: ${REGISTRY}/busybox:latest-arm64\n`);
    expect((await cli(['manifest', 'push', 'from-spec', spec])).exitCode).toBe(0);

    const { exitCode, report } = await verify([target, '--platforms', 'linux/amd64,linux/arm/v7,linux/arm64']);
    expect(exitCode).toBe(0);
    expect(report.ok).toBe(true);
    for (const p of ['linux/amd64', 'linux/arm/v7', 'linux/arm64']) {
      for (const c of ['metadata', 'binaries', 'runtime']) expect(check(report, p, c)?.verdict, `${p} ${c}`).toBe('pass');
    }
    expect(check(report, 'linux/arm/v7', 'binaries')?.evidence).toMatch(/\/bin\/busybox is ELF32 LSB ARM \(EABI5, hard-float, Tag_CPU_arch v7\)/);
    expect(check(report, 'linux/arm64', 'runtime')?.evidence).toBe('uname -m printed aarch64');
    const text = await cli(['verify', target]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/^linux\/arm64 +PASS/m);
    expect(text.stdout).toMatch(/binaries +PASS +sh → \/bin\/sh → \/bin\/busybox is ELF64 LSB AArch64/);
  });

  it('reports the platforms an overwritten tag lost', async () => {
    // The last device to push app:fixedarch was a Jetson: only arm64 is left.
    const ref = `${uniqueRepo('app')}:fixedarch`;
    await execa(DOCKER, ['pull', '--platform', 'linux/arm64', `${REGISTRY}/busybox:latest-arm64`]);
    await execa(DOCKER, ['tag', `${REGISTRY}/busybox:latest-arm64`, ref]);
    await execa(DOCKER, ['push', ref]);
    const { exitCode, report } = await verify([ref, '--platforms', 'linux/amd64,linux/arm/v7,linux/arm64', '--static']);
    expect(exitCode).toBe(1);
    expect(report.missing).toEqual(['linux/amd64', 'linux/arm/v7']);
    expect(report.coverage[0]).toMatchObject({ verdict: 'fail', evidence: 'missing: linux/amd64, linux/arm/v7' });
    expect(check(report, 'linux/arm64', 'binaries')?.verdict).toBe('pass');
  });

  it('a single arm64 image asked to be linux/amd64: coverage says what it is, and the runtime failure keeps Docker\'s own message', async () => {
    const ref = `${uniqueRepo('single')}:arm64`;
    await buildAndPush(`FROM ${REGISTRY}/busybox:latest\nCMD ["true"]\n`, 'linux/arm64', ref);
    const r = await cli(['verify', ref, '--platform', 'linux/amd64']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/coverage  FAIL  a single image whose config says linux\/arm64, not a list: it cannot be linux\/amd64/);
    expect(r.stdout).not.toMatch(/coverage  PASS  present: linux\/amd64/);
    // Docker's message (the image does not provide the platform), not "Run 'docker run --help'".
    expect(r.stdout).toMatch(/runtime +FAIL +uname -m exited 125: docker: .*(platform|manifest)/i);
    expect(r.stdout).not.toMatch(/Run 'docker run --help'/);
    // Without platforms, coverage says it was not checked.
    const all = await cli(['verify', ref, '--static']);
    expect(all.exitCode, all.stdout).toBe(0);
    expect(all.stdout).toMatch(/coverage  SKIP  not checked: no --platform or --config named the platforms it must have/);
  });

  it('catches a config that says amd64 over aarch64 binaries (docker import --platform on engine 20.10)', async () => {
    const ref = `${uniqueRepo('imported')}:x`;
    // The bug is 20.10's (28.5 records arm64): this test drives the host's engine.
    const host = { env: HOST_ENGINE };
    const tar = execa('tar', ['-C', join(ROOT, '.cache', 'seed', 'rootfs-arm64'), '-c', '.']);
    const imp = execa(HOST_ENGINE.CROSSBUILD_DOCKER!, ['import', '--platform', 'linux/arm64', '--change', 'CMD ["sh"]', '-', ref], host);
    tar.stdout?.pipe(imp.stdin!);
    await Promise.all([tar, imp]);
    const inspect = await execa(HOST_ENGINE.CROSSBUILD_DOCKER!, ['image', 'inspect', '--format', '{{.Architecture}}', ref], host);
    expect(inspect.stdout.trim()).toBe('amd64'); // the engine bug this test is about
    await execa(HOST_ENGINE.CROSSBUILD_DOCKER!, ['push', ref], host);
    const { exitCode, report } = await verify([ref, '--platforms', 'linux/amd64', '--static']);
    expect(exitCode).toBe(1);
    expect(check(report, 'linux/amd64', 'metadata')?.verdict).toBe('pass');
    const bin = check(report, 'linux/amd64', 'binaries')!;
    expect(bin.verdict).toBe('fail');
    expect(bin.evidence).toMatch(/\/bin\/busybox is ELF64 LSB AArch64, expected x86-64 for linux\/amd64/);
  });

  it('fails metadata for a list entry labelled arm64 that points at an amd64 image', async () => {
    const target = `${uniqueRepo('liar')}:t`;
    const spec = join(scratchDir('cb-vspec-'), 'liar.yaml');
    writeFileSync(spec, `image: ${target}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-amd64\n    platform: {os: linux, architecture: arm64}\n`);
    expect((await cli(['manifest', 'push', 'from-spec', spec])).exitCode).toBe(0);
    const { exitCode, report } = await verify([target, '--static']);
    expect(exitCode).toBe(1);
    expect(check(report, 'linux/arm64', 'metadata')).toMatchObject({ verdict: 'fail', evidence: 'config says linux/amd64, expected linux/arm64' });
    expect(check(report, 'linux/arm64', 'binaries')?.evidence).toMatch(/ELF64 LSB x86-64, expected AArch64/);
  });

  it('follows whiteouts and symlinks in the layers', async () => {
    const deleted = `${uniqueRepo('whiteout')}:t`;
    await dockerBuildPush(`FROM ${REGISTRY}/busybox:latest\nRUN rm /bin/busybox\nCMD ["sh"]\n`, 'linux/arm64', deleted);
    const d = await verify([deleted, '--static']);
    expect(d.exitCode).toBe(1);
    expect(check(d.report, 'linux/arm64', 'binaries')?.evidence).toMatch(/entrypoint sh → \/bin\/sh → \/bin\/busybox was deleted by a whiteout in layer 1/);

    const linked = `${uniqueRepo('symlink')}:t`;
    await dockerBuildPush(`FROM ${REGISTRY}/busybox:latest\nRUN mkdir -p /usr/local/bin /opt && ln -s ../../../opt/tool /usr/local/bin/app && ln -s /bin/busybox /opt/tool\nENTRYPOINT ["/usr/local/bin/app"]\nCMD ["true"]\n`, 'linux/arm/v7', linked);
    const l = await verify([linked, '--static']);
    expect(l.exitCode).toBe(0);
    expect(check(l.report, 'linux/arm/v7', 'binaries')?.evidence).toMatch(/^\/usr\/local\/bin\/app → \/opt\/tool → \/bin\/busybox is ELF32 LSB ARM/);
  });

  it('warns, not crashes, on an image of shell scripts only', async () => {
    const root = scratchDir('cb-scripts-');
    mkdirSync(join(root, 'app'));
    writeFileSync(join(root, 'app', 'hello.sh'), '#!/bin/sh\necho hello\n');
    chmodSync(join(root, 'app', 'hello.sh'), 0o755);
    const ref = `${uniqueRepo('scripts')}:t`;
    const seed = await cli(['seed', '--image', ref, '--rootfs', `linux/arm64=${root}`, '--cmd', '/app/hello.sh']);
    expect(seed.exitCode).toBe(0);
    const { exitCode, report } = await verify([ref, '--static']);
    expect(exitCode).toBe(0);
    const bin = check(report, 'linux/arm64', 'binaries')!;
    expect(bin.verdict).toBe('warn');
    expect(bin.evidence).toMatch(/entrypoint \/app\/hello.sh is a script for \/bin\/sh, which is not an ELF file in the image/);
  });

  it('reports a hanging uname as a timeout and leaves no container behind', async () => {
    const ref = `${uniqueRepo('hang')}:t`;
    await dockerBuildPush(`FROM ${REGISTRY}/busybox:latest\nRUN rm /bin/uname && printf '#!/bin/sh\\nsleep 600\\n' > /bin/uname && chmod 0755 /bin/uname\n`, 'linux/arm64', ref);
    const { exitCode, report } = await verify([ref, '--timeout', '5']);
    expect(exitCode).toBe(1);
    expect(check(report, 'linux/arm64', 'runtime')?.evidence).toMatch(/uname -m did not finish within 5s/);
    const ps = await execa(DOCKER, ['ps', '-a', '--filter', 'name=crossbuild-verify-', '--format', '{{.Names}}']);
    expect(ps.stdout.trim()).toBe('');
  });

  it('handles hostile tar entries: paths out of the root and an oversized header', async () => {
    const repo = uniqueRepo('hostile');
    const { pack } = await import('tar-stream');
    const { readFileSync } = await import('node:fs');
    const busybox = readFileSync(join(ROOT, '.cache', 'seed', 'rootfs-arm64', 'bin', 'busybox'));
    const tarOf = async (entries: [Record<string, unknown>, Buffer?][]) => {
      const p = pack();
      const chunks: Buffer[] = [];
      p.on('data', (c: Buffer) => chunks.push(c));
      const end = new Promise((r) => p.on('end', r));
      for (const [h, body] of entries) p.entry(h as never, body);
      p.finalize();
      await end;
      return Buffer.concat(chunks);
    };
    const push = (tag: string, tar: Buffer) => pushTestImage(`${repo}:${tag}`, tar, { architecture: 'arm64', os: 'linux' });
    // "../../bin/busybox" lands at /bin/busybox inside the root; the symlink out of the tree is clamped.
    await push('escape', await tarOf([
      [{ name: '../../bin/busybox', size: busybox.length, mode: 0o755 }, busybox],
      [{ name: '/bin/sh', type: 'symlink', linkname: '../../../../../../bin/busybox' }],
    ]));
    const esc = await verify([`${repo}:escape`, '--static']);
    expect(esc.exitCode).toBe(0);
    const b = check(esc.report, 'linux/arm64', 'binaries')!;
    expect(b.evidence).toMatch(/\/bin\/sh → \/bin\/busybox is ELF64 LSB AArch64/);
    expect(b.evidence).toMatch(/points outside the root/);

    // A pax header claiming 8 MiB: refused with a clear failure, memory stays bounded.
    const huge = ustarHeader('PaxHeaders/x', 8 * 1024 * 1024, { typeflag: 'x' });
    await push('hugeheader', Buffer.concat([huge, Buffer.alloc(8 * 1024 * 1024), Buffer.alloc(1024)]));
    const hh = await verify([`${repo}:hugeheader`, '--static']);
    expect(hh.exitCode).toBe(1);
    expect(check(hh.report, 'linux/arm64', 'binaries')?.evidence).toMatch(/layers could not be read: .*Header exceeds max size/);
  });

  it('runs --static with no Docker engine at all', async () => {
    const r = await cli(['verify', `${REGISTRY}/busybox:latest`, '--static', '--platforms', 'linux/s390x,linux/ppc64le'], { env: { CROSSBUILD_DOCKER: '/nonexistent/docker', PATH: '/usr/bin:/bin' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/linux\/s390x +PASS/);
    expect(r.stdout).not.toMatch(/runtime/);
  });
});
