import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { NO_INPUTS } from '../../src/config/build-inputs.js';
import { buildArgv, buildxDirect, isWrapper, parseBuildxVersion, parseClientInfo, parseImageInspect, parseImageStore, parsePushOutput, parseVersion, runArgv } from '../../src/docker/docker.js';
import { parsePlatform } from '../../src/platform/platform.js';

// Output captured from the Debian docker.io 20.10 engine and the 28.x / 20.10 CLIs on this machine.
const fx = (f: string) => readFileSync(join(__dirname, '..', 'fixtures', 'docker', f), 'utf8');

describe('docker output parsers', () => {
  it('reads the digest and size from docker push output', () => {
    expect(parsePushOutput(fx('push-20.10.txt'))).toEqual({ digest: 'sha256:53ff1d155778b19ade174c3c75f2070f447cf0d0c10f128e5c0bf2a23c67ebaa', size: 942 });
    expect(parsePushOutput('The push refers to repository [x]\nerror')).toBeUndefined();
  });

  it('reads platform and config from docker image inspect', () => {
    const i = parseImageInspect(fx('inspect-arm32-20.10.json'));
    expect(i.os).toBe('linux');
    expect(i.architecture).toBe('arm');
    expect(i.variant).toBe('v7');
    expect(i.cmd).toEqual(['httpd', '-f', '-v', '-p', '8080', '-h', '/www']);
    expect(i.id).toMatch(/^sha256:/);
  });

  it('reads client and engine versions', () => {
    const v = parseVersion(fx('version-28-cli-20.10-engine.json'), 'docker');
    expect(v.clientVersion).toMatch(/^28\./);
    expect(v.serverVersion).toMatch(/^20\.10/);
    expect(v.apiVersion).toBe('1.41');
    expect(parseVersion(fx('version-20.10.json'), '/usr/bin/docker').clientVersion).toMatch(/^20\.10/);
  });

  it('reads the buildx version', () => {
    expect(parseBuildxVersion('github.com/docker/buildx v0.12.1 542e5d8')).toBe('0.12.1');
    expect(parseBuildxVersion('github.com/docker/buildx 0.10.5+ds1-1 ')).toBe('0.10.5+ds1-1');
    expect(parseBuildxVersion('nothing')).toBeUndefined();
  });
});

describe('docker argv builders', () => {
  const o = { platform: parsePlatform('linux/arm/v7'), tag: 'localhost:5000/app:t-arm32', context: '/ctx', dockerfile: '/ctx/Dockerfile', buildArgs: { A: '1' }, network: 'none' as const, inputs: NO_INPUTS };
  it('classic build', () => {
    expect(buildArgv('classic', o)).toEqual(['build', '--force-rm', '--platform', 'linux/arm/v7', '-t', 'localhost:5000/app:t-arm32', '-f', '/ctx/Dockerfile', '--pull', '--network', 'none', '--build-arg', 'A=1', '/ctx']);
  });
  it('buildx build loads into the engine with plain progress', () => {
    const a = buildArgv('buildx', { ...o, noCache: true, target: 'final' });
    expect(a.slice(0, 3)).toEqual(['buildx', 'build', '--load']);
    expect(a).toContain('--no-cache');
    expect(a).toContain('--progress=plain');
    expect(a.slice(-1)).toEqual(['/ctx']);
    expect(a[a.indexOf('--target') + 1]).toBe('final');
  });
  it("network default passes no --network, so the engine's default applies", () => {
    expect(buildArgv('classic', { ...o, network: 'default' })).not.toContain('--network');
    const host = buildArgv('buildkit', { ...o, network: 'host' });
    expect(host[host.indexOf('--network') + 1]).toBe('host');
  });
  it('verification containers: no network, entrypoint overridden, env for QEMU', () => {
    expect(runArgv({ image: 'i', platform: parsePlatform('linux/arm/v6'), entrypoint: 'uname', args: ['-m'], env: { QEMU_CPU: 'arm1176' }, name: 'n' })).toEqual([
      'run', '--name', 'n', '--network', 'none', '--platform', 'linux/arm/v6', '--pull', 'never', '--entrypoint', 'uname', '-e', 'QEMU_CPU=arm1176', 'i', '-m',
    ]);
  });
});

describe('docker push failures that may pass', () => {
  it('retries network faults and 5xx/429, never auth or bad manifests', async () => {
    const { transientPushFailure } = await import('../../src/docker/docker.js');
    expect(transientPushFailure('The push refers to repository [127.0.0.1:5000/app]\nGet "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused')).toMatch(/connection refused/);
    expect(transientPushFailure('abc: Pushing\nreceived unexpected HTTP status: 503 Service Unavailable')).toMatch(/503/);
    expect(transientPushFailure('toomanyrequests: You have reached your pull rate limit')).toMatch(/toomanyrequests/);
    expect(transientPushFailure('unauthorized: authentication required')).toBeUndefined();
    expect(transientPushFailure('denied: requested access to the resource is denied')).toBeUndefined();
    expect(transientPushFailure('An image does not exist locally with the tag: x')).toBeUndefined();
  });

  it('retries a manifest the registry refused for a blob the push itself had just sent (the registry is behind its writes)', async () => {
    const { transientPushFailure } = await import('../../src/docker/docker.js');
    // Captured: `docker push` through a proxy answering the manifest PUT as distribution 2.8 does
    // when another push of the same blob rewrites its link at that moment.
    const cli20 = 'The push refers to repository [127.0.0.1:40995/capture/behind]\n158521e619b3: Preparing\n158521e619b3: Pushed\nerrors:\ndigest invalid\nmanifest blob unknown: blob unknown to registry\n';
    const cli28 = 'The push refers to repository [127.0.0.1:40801/capture/behind]\n203187b91e62: Pushed\nerror from registry: provided digest did not match uploaded content\nblob unknown to registry - sha256:9dc866a91d6ea0fe3ad3d9e3d9b987cceb008fc028869d84052ffa266d51cc07';
    expect(transientPushFailure(cli20)).toBe('manifest blob unknown: blob unknown to registry');
    expect(transientPushFailure(cli28)).toBe('blob unknown to registry - sha256:9dc866a91d6ea0fe3ad3d9e3d9b987cceb008fc028869d84052ffa266d51cc07');
    expect(transientPushFailure(`${cli28}\ndenied: requested access to the resource is denied`)).toBeUndefined();
  });
});

describe('which buildx builder is current, without asking the plugin', () => {
  const made: string[] = [];
  afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
  /** A buildx folder as buildx 0.29 leaves it after its own commands (`current` captured). */
  const buildxDir = (instances: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-buildx-'));
    made.push(dir);
    mkdirSync(join(dir, 'buildx', 'instances'), { recursive: true });
    mkdirSync(join(dir, 'buildx', 'defaults'));
    writeFileSync(join(dir, 'buildx', 'current'), '{"Key":"unix:///run/crossbuild/docker-28c.sock","Name":"","Global":false}');
    for (const n of instances) writeFileSync(join(dir, 'buildx', 'instances', n), '{}');
    return dir;
  };

  it("only a context's own builder (driver docker) until one is made with buildx create, or BUILDX_BUILDER names one", async () => {
    const { buildxConfigDir, onlyContextBuilders } = await import('../../src/docker/docker.js');
    const fresh = buildxDir([]);
    expect(onlyContextBuilders({ DOCKER_CONFIG: fresh })).toBe(true);
    // No buildx folder at all: a CLI that never ran buildx.
    expect(onlyContextBuilders({ DOCKER_CONFIG: join(fresh, 'none') })).toBe(true);
    expect(onlyContextBuilders({ DOCKER_CONFIG: fresh, BUILDX_BUILDER: 'cb-dc' })).toBe(false);
    expect(onlyContextBuilders({ DOCKER_CONFIG: buildxDir(['cb-dc']) })).toBe(false);
    // BUILDX_CONFIG wins over DOCKER_CONFIG, as in buildx.
    expect(buildxConfigDir({ BUILDX_CONFIG: '/x/bx', DOCKER_CONFIG: fresh })).toBe('/x/bx');
    expect(onlyContextBuilders({ BUILDX_CONFIG: join(buildxDir(['cb-dc']), 'buildx'), DOCKER_CONFIG: fresh })).toBe(false);
    expect(buildxConfigDir({ HOME: '/h' })).toMatch(/\/\.docker\/buildx$/);
  });
});

describe('build nodes', () => {
  it('an engine URL is reached with --host, anything else is a context', async () => {
    const { nodeArgs, describeNode } = await import('../../src/docker/docker.js');
    expect(nodeArgs('unix:///run/docker-arm.sock')).toEqual(['--host', 'unix:///run/docker-arm.sock']);
    expect(nodeArgs('ssh://ci@arm64.example')).toEqual(['--host', 'ssh://ci@arm64.example']);
    expect(nodeArgs('tcp://10.0.0.5:2376')).toEqual(['--host', 'tcp://10.0.0.5:2376']);
    expect(nodeArgs('arm-builder')).toEqual(['--context', 'arm-builder']);
    expect(describeNode('arm-builder')).toBe('context arm-builder');
    expect(describeNode('ssh://ci@arm64.example')).toBe('ssh://ci@arm64.example');
  });
  it('platforms.json node, and --node over it; a bad one names the field', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { loadConfig } = await import('../../src/config/config.js');
    const d = mkdtempSync(join(tmpdir(), 'cb-node-'));
    onTestFinished(() => rmSync(d, { recursive: true, force: true }));
    const f = join(d, 'p.json');
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/a', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64', node: 'arm-builder' }] }));
    expect(loadConfig(f).platforms.map((t) => t.node)).toEqual([undefined, 'arm-builder']);
    expect(loadConfig(f, { nodes: [{ platform: parsePlatform('linux/arm64'), node: 'ssh://ci@arm' }, { platform: parsePlatform('linux/amd64'), node: 'local' }] }).platforms.map((t) => t.node)).toEqual([undefined, 'ssh://ci@arm']);
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/a', platforms: [{ platform: 'linux/arm64', suffix: 'arm64', node: 'has space' }] }));
    expect(() => loadConfig(f)).toThrow(/platforms\[0\]\.node: "has space" is neither an engine URL/);
  });
});

describe('docker info answers for the CLI and buildx', () => {
  it("reads a current CLI's version and its buildx plugin's from ClientInfo (captured from Docker 28.5)", () => {
    expect(parseClientInfo(fx('info-containerd-28.5.json'))).toEqual({ clientVersion: '28.5.2+dfsg4', buildxVersion: '0.29.1+ds1', buildxPath: '/var/cache/crossbuild/engines/forky/root/usr/libexec/docker/cli-plugins/docker-buildx' });
    expect(parseImageStore(fx('info-containerd-28.5.json'))).toBe('containerd');
  });
  it('says nothing for a 20.10 CLI, which has no version there (asked the old way)', () => {
    expect(parseClientInfo(fx('info-20.10.json'))).toEqual({});
    expect(parseClientInfo('not json')).toEqual({});
  });
});

describe('buildx run as its plugin binary', () => {
  const bx = { kind: 'buildx', cli: '/usr/bin/docker', env: {}, clientVersion: '28.5.2', buildxVersion: '0.29.1+ds1', plugin: '/usr/libexec/docker/cli-plugins/docker-buildx' } as const;
  const standalone = { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: '' };
  it('where docker info named the plugin: the same argv without `buildx`, an engine by --host as DOCKER_HOST', () => {
    expect(buildxDirect(bx, [], ['buildx', 'build', '--platform', 'linux/arm64', '.'], {})).toEqual({ file: bx.plugin, args: ['build', '--platform', 'linux/arm64', '.'], env: standalone });
    expect(buildxDirect(bx, ['--host', 'unix:///run/other.sock'], ['buildx', 'build', '.'], {})).toEqual({ file: bx.plugin, args: ['build', '.'], env: { ...standalone, DOCKER_HOST: 'unix:///run/other.sock' } });
    expect(buildxDirect({ ...bx, buildxVersion: 'v0.23.0' }, [], ['buildx', 'build', '.'], {})).toBeDefined();
  });
  it('buildx before 0.23 (its standalone mode ignored DOCKER_TLS_VERIFY / DOCKER_CERT_PATH) or of no known version: the CLI', () => {
    expect(buildxDirect({ ...bx, buildxVersion: '0.13.1+ds1' }, [], ['buildx', 'build', '.'], {})).toBeUndefined();
    expect(buildxDirect({ ...bx, buildxVersion: 'v0.22.9' }, [], ['buildx', 'build', '.'], {})).toBeUndefined();
    expect(buildxDirect({ ...bx, buildxVersion: 'unknown' }, [], ['buildx', 'build', '.'], {})).toBeUndefined();
  });
  it('a docker CLI that is a script (a wrapper) keeps every command; a binary, found on PATH or by path, does not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-wrapper-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'docker'), '#!/bin/sh\nexec /usr/bin/docker "$@"\n', { mode: 0o755 });
    expect(isWrapper(join(dir, 'docker'))).toBe(true);
    expect(isWrapper('docker', { PATH: dir })).toBe(true);
    expect(isWrapper(process.execPath)).toBe(false);
    expect(isWrapper('node', { PATH: dirname(process.execPath) })).toBe(false);
    expect(isWrapper(join(dir, 'missing'))).toBe(true);
  });
  it('the CLI otherwise: a --context node, no plugin path, another command, another builder, CROSSBUILD_BUILDX_DIRECT=off', () => {
    expect(buildxDirect(bx, ['--context', 'arm-box'], ['buildx', 'build', '.'], {})).toBeUndefined();
    expect(buildxDirect({ ...bx, plugin: undefined }, [], ['buildx', 'build', '.'], {})).toBeUndefined();
    expect(buildxDirect(bx, [], ['tag', 'a', 'b'], {})).toBeUndefined();
    expect(buildxDirect({ ...bx, kind: 'buildkit' }, [], ['buildx', 'build', '.'], {})).toBeUndefined();
    expect(buildxDirect(bx, [], ['buildx', 'build', '.'], { CROSSBUILD_BUILDX_DIRECT: 'off' })).toBeUndefined();
  });
});
