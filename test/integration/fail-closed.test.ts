// Each finding of the fail-closed probe, reproduced: signals that stop whatever is pending,
// deadlines that end a trickle, nothing reported before it is true, nothing left behind after
// SIGKILL, output that is text, and a decision to fail that stops the work.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, FIXTURES, probeProcesses, REGISTRY, requireInfrastructure, ROOT, skopeoRaw, TEST_ENGINE, uniqueRepo } from '../helpers/env.js';
import { startFaultProxy } from '../helpers/registries.js';
import { Docker } from '../../src/docker/docker.js';
import { runMarkers } from '../../src/pipeline/sweep.js';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';

// Faults are injected into layer reads here: no layer may be answered from the layer cache.
process.env.CROSSBUILD_LAYER_CACHE = 'off';

beforeAll(requireInfrastructure);

const CB = join(ROOT, 'bin', 'crossbuild.js');
const waitFor = async (cond: () => boolean, ms: number) => {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  return cond();
};

describe('signals always stop', () => {
  it('SIGINT while a manifest GET gets no answer: verify exits 130 within 3 s', async () => {
    const proxy = await startFaultProxy(REGISTRY, [{ method: 'GET', path: /\/manifests\//, neverAnswer: true }]);
    try {
      const sub = execa('node', [CB, 'verify', `${proxy.addr}/busybox:latest-arm64`, '--static'], { reject: false, env: { CI: 'true' } });
      expect(await waitFor(() => proxy.log.some((l) => l.path.includes('/manifests/')), 10_000)).toBe(true);
      const at = Date.now();
      sub.kill('SIGINT');
      const r = await sub;
      expect(Date.now() - at).toBeLessThan(3000);
      expect(r.exitCode).toBe(130);
      expect(r.stderr).toMatch(/interrupted by SIGINT/);
      expect(r.stderr).not.toMatch(/retrying/);
    } finally {
      await proxy.stop();
    }
  });

  it('SIGTERM while a layer trickles: verify exits 143 within 3 s', async () => {
    const m = JSON.parse((await skopeoRaw(`${REGISTRY}/busybox:latest-arm64`))!.toString()) as { layers: { digest: string }[] };
    const proxy = await startFaultProxy(REGISTRY, [{ method: 'GET', path: new RegExp(`/blobs/${m.layers[0]!.digest}$`), trickleMs: 1000 }]);
    try {
      const sub = execa('node', [CB, 'verify', `${proxy.addr}/busybox:latest-arm64`, '--static'], { reject: false, env: { CI: 'true' } });
      expect(await waitFor(() => proxy.log.some((l) => l.path.includes('/blobs/sha256:')), 10_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 500));
      const at = Date.now();
      sub.kill('SIGTERM');
      const r = await sub;
      expect(Date.now() - at).toBeLessThan(3000);
      expect(r.exitCode).toBe(143);
    } finally {
      await proxy.stop();
    }
  });
});

describe('deadlines always end', () => {
  it('a manifest trickling a byte a second is named as too slow, not waited on for minutes', async () => {
    const proxy = await startFaultProxy(REGISTRY, Array.from({ length: 8 }, () => ({ method: 'GET', path: /\/manifests\//, trickleMs: 1000 })));
    try {
      const started = Date.now();
      const r = await cli(['verify', `${proxy.addr}/busybox:latest-arm64`, '--static', '--registry-timeout', '3']);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/GET \S+\/v2\/busybox\/manifests\/latest-arm64 .*too slow: \d+ bytes in \d+ s, below 1024 bytes\/s/);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await proxy.stop();
    }
  });

  it('a persistent 503 on the manifest is named within the 30 s retry budget', async () => {
    const proxy = await startFaultProxy(REGISTRY, Array.from({ length: 200 }, () => ({ method: 'GET', path: /\/manifests\//, status: 503 })));
    try {
      const started = Date.now();
      const r = await cli(['verify', `${proxy.addr}/busybox:latest-arm64`, '--static']);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/GET manifest busybox:latest-arm64 on \S+ failed: HTTP 503/);
      expect(Date.now() - started).toBeLessThan(35_000);
    } finally {
      await proxy.stop();
    }
  });
});

describe('nothing reported before it is true', () => {
  it('a list PUT answered 201 that stored nothing: exit 1, named, and no Digest: line', async () => {
    const target = uniqueRepo('fake201').replace(REGISTRY, '');
    const proxy = await startFaultProxy(REGISTRY, [{ method: 'PUT', path: /\/manifests\/v1$/, fake201: true }]);
    try {
      const spec = join(scratchDir('cb-fake201-'), 'spec.yaml');
      writeFileSync(spec, `image: ${proxy.addr}${target}:v1\nmanifests:\n  - image: ${proxy.addr}/busybox:latest-arm64\n`);
      const r = await cli(['manifest', 'push', 'from-spec', spec]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).not.toMatch(/Digest:/);
      expect(r.stderr).toMatch(/read back: \S+:v1 was accepted \(sha256:[0-9a-f]{64}\) but the registry does not serve it/);
    } finally {
      await proxy.stop();
    }
  });
});

describe('a decision stops the work', () => {
  it('manifest push with a missing child fails at once, with no retries after deciding', async () => {
    const spec = join(scratchDir('cb-missing-'), 'spec.yaml');
    const target = uniqueRepo('missing');
    // Many present children in flight while one is missing.
    const present = ['amd64', 'arm32', 'arm32v6', 'arm64', '386', 'ppc64le', 's390x'].map((s) => `  - image: ${REGISTRY}/busybox:latest-${s}\n`).join('');
    writeFileSync(spec, `image: ${target}:v1\nmanifests:\n${present}  - image: ${REGISTRY}/busybox:no-such-tag\n`);
    const started = Date.now();
    const r = await cli(['manifest', 'push', 'from-spec', spec]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/manifests\[7\]\.image \S+busybox:no-such-tag does not exist/);
    expect(r.stderr).not.toMatch(/retrying|destroyed|closed/);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await skopeoRaw(`${target}:v1`)).toBeUndefined();
  });
});

/** The processes of the hang fixture's uname (`sleep 600`, under QEMU or not) on this host. */
function hangingUnames(): string[] {
  return readdirSync('/proc').filter((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sleep\u0000600');
    } catch {
      return false; // gone meanwhile
    }
  });
}

describe('nothing left behind, even after SIGKILL', () => {
  it("the private Docker config is on a memory-backed folder, and the next run sweeps a killed run's names, containers and config", async () => {
    const repo = uniqueRepo('killed');
    const hangingBefore = hangingUnames();
    // A uname that hangs: the run sits in verification with its run-unique name and its `uname -m`
    // probe (one buildx solve), or a container where `docker run` asks.
    const sub = execa('node', [CB, 'run', '--config', join(FIXTURES, 'hang', 'platforms.json'), '--image', repo, '--timeout', '300', '--username', 'u', '--password-stdin'], { reject: false, env: { CI: 'true' }, input: 'not-a-real-password\n' });
    // Wait for its verification container, then kill the run without a chance to clean up.
    const runTags = async () => (await execa(DOCKER, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo])).stdout.split('\n').filter((l) => /-cb-[0-9a-f]{8}$/.test(l));
    const configs = () => (existsSync('/dev/shm') ? readdirSync('/dev/shm') : []).filter((n) => n.startsWith('crossbuild-docker-config-'));
    const before = configs();
    const onDisk = () => readdirSync(tmpdir()).filter((n) => n.startsWith('crossbuild-docker-config-'));
    const onDiskBefore = onDisk();
    for (let i = 0; i < 240 && (await runTags()).length === 0; i++) await new Promise((r) => setTimeout(r, 500));
    const id = /-cb-([0-9a-f]{8})$/.exec((await runTags())[0] ?? '')?.[1];
    expect(id).toBeDefined();
    const containers = async () => (await execa(DOCKER, ['ps', '-a', '--filter', `label=crossbuild.run=${id}`, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean);
    const waiting = async () => (await containers()).length + probeProcesses(id!).length;
    for (let i = 0; i < 120 && (await waiting()) === 0; i++) await new Promise((r) => setTimeout(r, 500));
    // And until its uname hangs: a probe killed while it still prints its first steps ends by itself
    // (its output pipe is gone), leaving the sweep nothing to stop.
    const unameHangs = () => hangingUnames().some((pid) => !hangingBefore.includes(pid));
    for (let i = 0; i < 240 && !unameHangs(); i++) await new Promise((r) => setTimeout(r, 250));
    expect(unameHangs()).toBe(true);
    // On buildx's docker driver with the containerd store the solve's probe asks; elsewhere a container.
    const probed = TEST_ENGINE === 'docker-28c';
    expect(probeProcesses(id!).length > 0).toBe(probed);
    expect(await containers()).toHaveLength(probed ? 0 : 1);
    const mine = configs().filter((c) => !before.includes(c));
    expect(mine).toHaveLength(1);
    // The password is in no disk-backed temp folder.
    expect(onDisk().filter((n) => !onDiskBefore.includes(n))).toEqual([]);
    sub.kill('SIGKILL');
    await sub;
    expect(await runTags()).not.toEqual([]);
    // The next run (a dry run does not sweep; a quick real one does) removes what the dead one left.
    const next = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', uniqueRepo('sweeper'), '--platform', 'linux/amd64', '--no-push']);
    expect(next.exitCode, next.stderr).toBe(0);
    // The private config may already be gone: a command on any engine sweeps this host's side.
    expect(next.stderr).toMatch(new RegExp(`note: swept what killed run ${id} left: 1 image name, ${probed ? '0 containers' : '1 container'}, [01] private Docker configs?${probed ? ', its uname -m probe \\(stopped\\)' : ''}`));
    expect(await runTags()).toEqual([]);
    expect(await containers()).toEqual([]);
    // The probe, stopped, cancelled its solve and ended.
    for (let i = 0; i < 40 && probeProcesses(id!).length > 0; i++) await new Promise((r) => setTimeout(r, 250));
    expect(probeProcesses(id!)).toEqual([]);
    expect(configs().filter((c) => mine.includes(c))).toEqual([]);
  });
});

describe('nothing left behind by a killed verify', () => {
  it("verify's throwaway containers carry its own id, and the next verify sweeps what a killed one left", async () => {
    const { buildAndPush } = await import('../helpers/env.js');
    const ref = `${uniqueRepo('killed-verify')}:arm64`;
    await buildAndPush(readFileSync(join(FIXTURES, 'hang', 'Dockerfile'), 'utf8'), 'linux/arm64', ref);
    const before = new Set((await execa(DOCKER, ['ps', '-aq'])).stdout.split('\n').filter(Boolean));
    // Its `uname -m` never answers: the verify sits in its container until it is killed.
    const sub = execa('node', [CB, 'verify', ref, '--timeout', '300'], { reject: false, env: { CI: 'true' } });
    const labelled = async () => (await execa(DOCKER, ['ps', '-a', '--filter', 'label=crossbuild.run', '--filter', `ancestor=${ref}`, '--format', '{{.ID}} {{.Label "crossbuild.run"}}'])).stdout.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]).filter(([c]) => !before.has(c));
    for (let i = 0; i < 240 && (await labelled()).length === 0; i++) await new Promise((r) => setTimeout(r, 500));
    const mine = await labelled();
    expect(mine).toHaveLength(1);
    const id = mine[0]![1];
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    sub.kill('SIGKILL');
    await sub;
    // Its marker names the engine it ran on, beside its pid.
    expect(readFileSync(join(runMarkers(), id), 'utf8').split('\n')[1]).toMatch(/^--host unix:\/\/\/run\/crossbuild\/|^current context$/);
    // A verify on another engine leaves it alone: that engine cannot reach it.
    const elsewhere = await cli(['verify', `${REGISTRY}/busybox:latest-arm64`], { env: { CI: 'true', ...engineEnv(process.env.CROSSBUILD_ENGINE === 'docker-28' ? 'docker-28c' : 'docker-28') } });
    expect(elsewhere.exitCode, elsewhere.stderr).toBe(0);
    expect(elsewhere.stderr).not.toContain(`killed run ${id}`);
    expect(readdirSync(runMarkers())).toContain(id);
    // The next verify that runs containers on this engine removes it (a command of a test file
    // beside this one may do it first: every command sweeps what dead ones left on its engine).
    const next = await cli(['verify', `${REGISTRY}/busybox:latest-arm64`]);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(await labelled()).toEqual([]);
    expect(readdirSync(runMarkers())).not.toContain(id);
  });
});

describe("the sweep asks the engine for a dead run's names alone", () => {
  it('by the repository its marker names; through the whole list for a marker from before, or an engine whose filter takes no pattern', async () => {
    // The endpoint as the command under test will see it (the test engine's environment).
    const endpoint = new Docker(undefined, {}, [], '00000000').endpoint();
    const ended = execa('true');
    const gone = ended.pid!; // a process that has ended
    await ended;
    const base = `${REGISTRY}/busybox:latest-arm64`;
    await execa(DOCKER, ['pull', '--quiet', '--platform', 'linux/arm64', base]);
    mkdirSync(runMarkers(), { recursive: true, mode: 0o700 });
    // The docker CLI behind a logging shim; REFUSE=1 answers a reference filter as Docker 23-24's
    // containerd store does (it takes an exact name only).
    const dir = scratchDir('cb-sweep-shim-');
    const log = join(dir, 'calls.log');
    const shim = join(dir, 'docker');
    writeFileSync(shim, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\ncase "$*" in *reference=*) if [ "$REFUSE" = 1 ]; then echo 'Error response from daemon: invalid reference format' >&2; exit 1; fi;; esac\nexec '${DOCKER}' "$@"\n`, { mode: 0o755 });
    for (const [marker, refuse] of [['named', false], ['old', false], ['named', true]] as const) {
      const id = randomBytes(4).toString('hex');
      const repo = uniqueRepo('swept');
      // Its image's name, and its test stage's.
      const names = [`${repo}:v1-arm64-cb-${id}`, `${repo}:v1-arm64-cb-${id}-test`];
      for (const n of names) await execa(DOCKER, ['tag', base, n]);
      writeFileSync(join(runMarkers(), id), `${gone}\n${endpoint}\n${marker === 'named' ? `names in ${repo}\n` : ''}`, { mode: 0o600 });
      writeFileSync(log, '');
      const r = await cli(['verify', base], { env: { CROSSBUILD_DOCKER: shim, REFUSE: refuse ? '1' : '0' } });
      const what = `${marker}${refuse ? ', filter refused' : ''}`;
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr, what).toContain(`note: swept what killed run ${id} left: 2 image names, 0 containers`);
      for (const n of names) expect((await execa(DOCKER, ['image', 'ls', '-q', n])).stdout, n).toBe('');
      expect(readdirSync(runMarkers())).not.toContain(id);
      const lists = readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('image ls'));
      const filtered = `image ls --format {{.Repository}}:{{.Tag}} --filter reference=${repo}:*cb-${id}*`;
      const whole = 'image ls --format {{.Repository}}:{{.Tag}}';
      expect(lists, what).toEqual(marker === 'old' ? [whole] : refuse ? [filtered, whole] : [filtered]);
    }
  });
});

describe('checks before the slow part', () => {
  it('a missing Dockerfile is one exit-2 error naming it, before any build (and in the dry run)', async () => {
    const dir = scratchDir('cb-nodockerfile-');
    const f = join(dir, 'platforms.json');
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/it/nodf', dockerfile: 'Dockerfle', platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }, { platform: 'linux/amd64', suffix: 'amd64' }] }));
    for (const extra of [[], ['--dry-run']]) {
      const r = await cli(['run', '--config', f, ...extra]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain(`${f}: dockerfile: ${join(dir, 'Dockerfle')} does not exist`);
      expect(r.stderr).not.toMatch(/building|buildkit-mount/);
    }
  });
});

describe('output is text', () => {
  it('control characters from platforms.json are escaped in errors and in the plan; a huge value is cut', async () => {
    const dir = scratchDir('cb-ctl-');
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
    const f = join(dir, 'platforms.json');
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/it/ctl', tag: 'v1\u001b[31mred\u0007', platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] }));
    const bad = await cli(['run', '--config', f, '--dry-run']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).not.toMatch(/\u001b|\u0007/);
    expect(bad.stderr).toMatch(/\\u001b\[31mred\\u0007/);
    writeFileSync(f, JSON.stringify({ image: 'localhost:5000/it/ctl', buildArgs: { NOTE: `a\u001b]0;title\u0007b` }, platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] }));
    const plan = await cli(['run', '--config', f, '--dry-run']);
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stdout).not.toMatch(/\u001b|\u0007/);
    expect(plan.stdout).toContain('NOTE=a\\u001b]0;title\\u0007b');
    const huge = await cli(['verify', `localhost:5000/${'a'.repeat(100_000)}:t`, '--static']);
    expect(huge.exitCode).toBe(2);
    expect(huge.stderr.length).toBeLessThan(5000);
    expect(huge.stderr).toMatch(/… \d+ more bytes/);
  });
});
