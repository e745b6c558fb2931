// Real-world Dockerfiles: the build network, secrets and SSH, with the real engine, registry and
// QEMU. This engine runs --bridge=none, so the engine's default network gives RUN steps nothing.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, dockerRun, FIXTURES, HOST_ENGINE, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';
import { imageEntries, platformOf, registryLayers, sha, type Index } from '../helpers/oci.js';

beforeAll(requireInfrastructure);

const tmp = scratchDir('cb-inputs-it-');
const listOf = async (ref: string) => JSON.parse((await skopeoRaw(ref))!.toString()) as Index;

describe('the build network', () => {
  it("default network on an engine without a bridge: refused before any build (exit 2), said once with the fix", async () => {
    const repo = uniqueRepo('net-default');
    const r = await cli(['run', '--config', join(FIXTURES, 'net', 'platforms.json'), '--image', repo]);
    expect(r.exitCode).toBe(2);
    // One diagnosis for the cause, not one per platform; and no build started.
    expect(r.stderr.match(/no bridge network/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/crossbuild: the engine has no bridge network \(dockerd --bridge=none\), so its BuildKit cannot run the RUN steps of linux\/amd64, linux\/arm64 on the default network/);
    expect(r.stderr).toMatch(/hint: use --network host/);
    expect(r.stderr).not.toMatch(/\] building/);
    expect(r.stdout).not.toMatch(/Digest:/);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
    // The dry run says the same.
    const dry = await cli(['run', '--config', join(FIXTURES, 'net', 'platforms.json'), '--image', repo, '--dry-run']);
    expect(dry.exitCode).toBe(2);
    expect(dry.stderr).toMatch(/no bridge network/);
  });

  it("the classic builder on that engine runs RUN steps without a network: a warning, and the fetch fails with the network hint", async () => {
    const repo = uniqueRepo('net-classic');
    const hostDocker = HOST_ENGINE.CROSSBUILD_DOCKER ?? 'docker';
    const containers = async () => (await execa(hostDocker, ['ps', '-aq', '--no-trunc'], { env: HOST_ENGINE })).stdout.split('\n').filter(Boolean);
    const before = new Set(await containers());
    const r = await cli(['run', '--config', join(FIXTURES, 'net', 'platforms.json'), '--image', repo, '--builder', 'classic', '--platform', 'linux/amd64'], { env: { ...HOST_ENGINE, CI: 'true' } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.match(/\[preflight\] warning: the engine has no bridge network/g)).toHaveLength(1);
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
    // The failed RUN step's container is not left behind (docker build keeps it without --force-rm).
    const left = (await containers()).filter((id) => !before.has(id));
    const commands = left.length ? (await execa(hostDocker, ['inspect', '--format', '{{json .Config.Cmd}}', ...left], { env: HOST_ENGINE, reject: false })).stdout : '';
    expect(commands).not.toMatch(/registry-answer/);
  });

  it('--network host builds, verifies and lists 2 platforms whose RUN read the loopback registry', async () => {
    const repo = uniqueRepo('net-host');
    const r = await cli(['run', '--config', join(FIXTURES, 'net', 'platforms.json'), '--image', repo, '--network', 'host']);
    expect(r.stderr).not.toMatch(/warning: the engine has no bridge/);
    expect(r.exitCode).toBe(0);
    const list = await listOf(`${repo}:multiarch`);
    expect(imageEntries(list.manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm64']);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', ['cat', '/registry-answer'])).toBe('{}');
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toBe('aarch64');
  });

  it('"network": "host" in platforms.json does the same, and the dry-run plan shows it per platform', async () => {
    const cfg = JSON.parse(readFileSync(join(FIXTURES, 'net', 'platforms.json'), 'utf8')) as Record<string, unknown>;
    const file = join(tmp, 'net-host.json');
    writeFileSync(file, JSON.stringify({ ...cfg, $schema: undefined, context: join(FIXTURES, 'net'), network: 'host', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm/v7', suffix: 'arm32' }] }));
    const repo = uniqueRepo('net-file');
    const plan = await cli(['run', '--config', file, '--image', repo, '--dry-run']);
    expect(plan.exitCode).toBe(0);
    expect(plan.stdout).toMatch(/linux\/arm\/v7 → .*\n +network: host\n/);
    expect(plan.stdout).toMatch(/build (--load )?--platform (linux\/amd64,)?linux\/arm\/v7 .*--network host/);
    const r = await cli(['run', '--config', file, '--image', repo]);
    expect(r.exitCode).toBe(0);
    expect(imageEntries((await listOf(`${repo}:multiarch`)).manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7']);
    // The flag wins over the file.
    const none = await cli(['run', '--config', file, '--image', repo, '--network', 'none', '--no-push', '--platform', 'linux/amd64']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/looks like a network failure .*had --network none/);
  });
});

describe('build secrets', () => {
  const secret = `cb-secret-${randomBytes(12).toString('hex')}`;
  const secretFile = join(tmp, 'token.txt');
  writeFileSync(secretFile, secret);

  /** Every file under a folder, as text. */
  const allText = (dir: string): string =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => readFileSync(join(d.parentPath, d.name), 'latin1'))
      .join('\n');

  for (const [how, flag, env] of [
    ['a file', `id=token,src=${secretFile}`, {}],
    ['a variable', 'id=token,env=CB_IT_TOKEN', { CB_IT_TOKEN: secret }],
  ] as const) {
    it(`RUN --mount=type=secret sees a secret from ${how}; its bytes are in no layer, report, summary, log or output`, async () => {
      const repo = uniqueRepo('secret');
      const out = mkdtempSync(join(tmp, 'out-'));
      const r = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--image', repo, '--secret', flag, '--no-cache', '--verbose', '--report', join(out, 'report.json'), '--summary', join(out, 'summary.md'), '--log-dir', join(out, 'logs')], { env: { CI: 'true', ...env } });
      expect(r.exitCode, r.stderr).toBe(0);
      // The step saw the secret: its hash is in the image, on an emulated platform too.
      const want = sha(secret).slice('sha256:'.length);
      expect(await dockerRun(`${repo}:multiarch`, 'linux/arm/v7', [])).toBe(want);
      expect(await dockerRun(`${repo}:multiarch`, 'linux/amd64', ['cat', '/token.length'])).toBe(String(secret.length));
      // And nothing kept it.
      const layers = await registryLayers(`${repo}:multiarch`);
      expect(layers.length).toBeGreaterThan(2);
      for (const l of layers) expect(l.includes(Buffer.from(secret))).toBe(false);
      expect(r.stdout + r.stderr).not.toContain(secret);
      const written = allText(out);
      expect(written).toMatch(/"ok": true/);
      expect(written).not.toContain(secret);
    });
  }

  it('the dry-run plan names secrets by id and source, never by value', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--image', uniqueRepo('secret-plan'), '--secret', `id=token,src=${secretFile}`, '--secret', 'id=other,env=CB_IT_TOKEN', '--dry-run'], { env: { CI: 'true', CB_IT_TOKEN: secret } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/secrets: +token \(from file .*token\.txt\), other \(from variable CB_IT_TOKEN\)/);
    expect(r.stdout).toMatch(/--secret id=token,src=\S*token\.txt/);
    expect(r.stdout).not.toContain(secret);
  });

  it('a missing secret file or variable is exit 2 naming it', async () => {
    const f = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--secret', `id=token,src=${join(tmp, 'absent')}`]);
    expect(f.exitCode).toBe(2);
    expect(f.stderr).toContain(`--secret id=token: file ${join(tmp, 'absent')} does not exist`);
    const v = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--secret', 'id=token,env=CB_IT_UNSET']);
    expect(v.exitCode).toBe(2);
    expect(v.stderr).toContain('--secret id=token: environment variable CB_IT_UNSET is not set');
  });

  it('the classic builder with --secret: exit 2 naming the builder and what would work, nothing built', async () => {
    const repo = uniqueRepo('secret-classic');
    const r = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--image', repo, '--builder', 'classic', '--secret', `id=token,src=${secretFile}`]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--secret needs BuildKit: install docker buildx .*the builder here is the classic builder/);
    expect(r.stderr).not.toMatch(/\[linux\/amd64\] building/);
    expect(await skopeoRaw(`${repo}:multiarch-amd64`)).toBeUndefined();
    // The same answer before anything runs, in the plan.
    const plan = await cli(['run', '--config', join(FIXTURES, 'secret', 'platforms.json'), '--image', repo, '--builder', 'classic', '--secret', `id=token,src=${secretFile}`, '--dry-run']);
    expect(plan.exitCode).toBe(2);
    expect(plan.stderr).toMatch(/--secret needs BuildKit/);
  });

  it("the engine's BuildKit refuses --shm-size and --ulimit it would silently ignore", async () => {
    // The engine's BuildKit through a pre-23 CLI: Debian 12's 20.10.
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('shm'), '--builder', 'buildkit', '--shm-size', '256m', '--dry-run'], { env: { CI: 'true', ...HOST_ENGINE } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--shm-size is ignored by the engine's built-in BuildKit: install docker buildx ≥ 0\.9, or use --builder classic/);
  });

  it('the classic builder honours --add-host, --shm-size and --ulimit (on the classic image store of 20.10)', async () => {
    const ctx = mkdtempSync(join(tmp, 'classic-'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM localhost:5000/busybox:latest\nRUN grep -w registry.test /etc/hosts > /hosts && df -k /dev/shm | tail -1 > /shm && ulimit -n > /nofile\n');
    writeFileSync(join(ctx, 'platforms.json'), JSON.stringify({ image: 'localhost:5000/it/classic-inputs', network: 'none', addHosts: ['registry.test:10.1.2.3'], platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] }));
    const repo = uniqueRepo('classic-inputs');
    const r = await cli(['run', '--config', join(ctx, 'platforms.json'), '--image', repo, '--builder', 'classic', '--shm-size', '96m', '--ulimit', 'nofile=1234:1234'], { env: { CI: 'true', ...HOST_ENGINE } });
    expect(r.exitCode, r.stderr).toBe(0);
    const ref = `${repo}:latest`;
    expect(await dockerRun(ref, 'linux/arm64', ['cat', '/hosts'])).toMatch(/^10\.1\.2\.3\s+registry\.test$/);
    expect(await dockerRun(ref, 'linux/arm64', ['cat', '/nofile'])).toBe('1234');
    expect((await dockerRun(ref, 'linux/arm64', ['cat', '/shm'])).split(/\s+/)[1]).toBe(String(96 * 1024));
  });

  it('the classic builder on the containerd image store is refused for a foreign platform: it would build amd64', async () => {
    // Measured on 28.5 with the containerd store: DOCKER_BUILDKIT=0 docker build --platform linux/arm64 gives an amd64 image.
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('classic-ctr'), '--builder', 'classic', '--platform', 'linux/arm64'], { env: { CI: 'true', ...engineEnv('docker-28c') } });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/the classic builder ignores --platform on the containerd image store \(it builds linux\/amd64\): it cannot build linux\/arm64; use docker buildx/);
  });
});

describe('SSH forwarding', () => {
  let agent: { sock: string; pid: string } | undefined;
  beforeAll(async () => {
    const sock = join(scratchDir('cb-ssh-'), 'agent.sock');
    const r = await execa('ssh-agent', ['-a', sock, '-s']);
    agent = { sock, pid: /SSH_AGENT_PID=(\d+)/.exec(r.stdout)![1]! };
  });
  afterAll(async () => {
    if (agent) await execa('kill', [agent.pid], { reject: false });
  });

  it('--ssh default reaches a RUN --mount=type=ssh step under emulation', async () => {
    const repo = uniqueRepo('ssh');
    const r = await cli(['run', '--config', join(FIXTURES, 'ssh', 'platforms.json'), '--image', repo, '--ssh', 'default'], { env: { CI: 'true', SSH_AUTH_SOCK: agent!.sock } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await dockerRun(`${repo}:multiarch`, 'linux/arm64', [])).toMatch(/^agent at \/\S+$/);
  });

  it('--ssh default without an agent is exit 2', async () => {
    const r = await cli(['run', '--config', join(FIXTURES, 'ssh', 'platforms.json'), '--ssh', 'default'], { env: { CI: 'true', SSH_AUTH_SOCK: '' } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--ssh default: SSH_AUTH_SOCK is not set/);
  });
});
