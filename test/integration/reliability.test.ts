// A run owns its images, credentials go where they belong, interruptions leave nothing behind.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, FIXTURES, probeProcesses, REGISTRY, requireInfrastructure, ROOT, skopeoRaw, TEST_ENGINE, uniqueRepo } from '../helpers/env.js';
import { imageEntries, type Entry, type Index } from '../helpers/oci.js';
import { engineEnv, scratchDir } from '../helpers/engine-setup.js';
import { installCa, makePki, startRegistry, startTokenServer, type Pki, type TestRegistry, type TokenServer } from '../helpers/registries.js';

// Faults are injected into layer reads here: no layer may be answered from the layer cache.
process.env.CROSSBUILD_LAYER_CACHE = 'off';

beforeAll(requireInfrastructure);

interface Report {
  ok: boolean;
  interrupted: string | null;
  list: { digest: string } | null;
  platforms: { platform: string; ok: boolean; digest: string | null; error: string | null }[];
}

/** What /mark says in the image a digest names, read back from the registry. */
async function markOf(repo: string, digest: string, platform: string, env: Record<string, string>): Promise<string> {
  const r = await execa(env.CROSSBUILD_DOCKER ?? DOCKER, ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', platform, `${repo}@${digest}`, 'cat', '/mark'], { reject: false, timeout: 120_000, env });
  if (r.exitCode !== 0) throw new Error(`docker run ${repo}@${digest}: ${r.stderr}`);
  return r.stdout.trim();
}

describe.each(['docker-28c', 'docker-28'])('each run owns its images (%s)', (engine) => {
  const env = { CI: 'true', ...engineEnv(engine) };
  it('two concurrent runs of one tag: each report names its own images, the list is wholly one run’s', async () => {
    const repo = uniqueRepo('race');
    const dir = scratchDir('cb-race-');
    const run = (mark: string) => cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--build-arg', `MARK=${mark}`, '--report', join(dir, `${mark}.json`)], { env });
    const [a, b] = await Promise.all([run('run-a'), run('run-b')]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    for (const mark of ['run-a', 'run-b']) {
      const report = JSON.parse(readFileSync(join(dir, `${mark}.json`), 'utf8')) as Report;
      for (const p of report.platforms) expect(await markOf(repo, p.digest!, p.platform, env), `${mark} ${p.platform}`).toBe(mark);
    }
    // The tag holds one run's list, entirely.
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    const marks = new Set<string>();
    for (const m of imageEntries(list.manifests)) marks.add(await markOf(repo, m.digest, `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}`, env));
    expect(marks.size).toBe(1);
    // And no run-unique names are left on the engine.
    const ls = await execa(env.CROSSBUILD_DOCKER!, ['image', 'ls', '--format', '{{.Tag}}', repo.replace(/^[^/]+\//, `${REGISTRY}/`)], { env });
    expect(ls.stdout.split('\n').filter((t) => /-cb-[0-9a-f]{8}$/.test(t))).toEqual([]);
  });

  it('a manifest refused for a blob the run had just pushed (the registry behind its own writes) is sent again, and the run passes', async () => {
    const { startFaultProxy } = await import('../helpers/registries.js');
    // distribution 2.8's own answer when another push of the same blob rewrites its link (captured).
    const body = JSON.parse(readFileSync(join(FIXTURES, 'registry', 'manifest-put-behind-its-writes.json'), 'utf8')) as unknown;
    const proxy = await startFaultProxy(REGISTRY.replace('localhost', '127.0.0.1'), [{ method: 'PUT', path: /\/manifests\//, status: 400, body }]);
    try {
      const repo = `${proxy.addr}/${uniqueRepo('behind').replace(/^[^/]+\//, '')}`;
      const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--build-arg', 'MARK=behind'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      const puts = proxy.log.filter((l) => l.method === 'PUT' && l.path.includes('/manifests/'));
      expect(puts[0]!.status).toBe(400);
      // The same manifest, sent again, accepted.
      expect(puts.find((l, i) => i > 0 && l.path === puts[0]!.path)?.status).toBe(201);
      expect(`${r.stdout}${r.stderr}`).toMatch(/does not see yet what the manifest names \(DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN\)|blob unknown to registry/);
    } finally {
      await proxy.stop();
    }
  });
});

describe('credentials go where they belong', () => {
  let pki: Pki;
  let tlsReg: TestRegistry;
  let removeCa: () => void;
  let tokens: TokenServer;
  let tokenReg: TestRegistry;
  const alicePassword = 'alice-Secret-9f3c';
  const bobPassword = 'bob-Secret-71ad';

  beforeAll(async () => {
    pki = await makePki();
    tlsReg = await startRegistry({ tls: pki, auth: { htpasswd: { user: 'alice', password: alicePassword } } });
    removeCa = installCa(tlsReg.addr, pki.caCert);
    tokens = await startTokenServer({ bob: bobPassword }, pki);
    tokenReg = await startRegistry({ auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certFile } } });
  });
  afterAll(async () => {
    removeCa?.();
    await tlsReg?.stop();
    await tokenReg?.stop();
    await tokens?.stop();
  });

  it('run --username --password-stdin pushes to a TLS + htpasswd registry, without touching ~/.docker', async () => {
    const home = scratchDir('cb-home-');
    const tmp = scratchDir('cb-tmp-');
    const repo = `${tlsReg.addr}/team/app`;
    const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--platform', 'linux/amd64,linux/arm64', '--username', 'alice', '--password-stdin'], {
      input: `${alicePassword}\n`,
      env: { CI: 'true', HOME: home, TMPDIR: tmp },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(alicePassword);
    // The list is there, as a client with the password reads it.
    const inspect = await cli(['manifest', 'inspect', `${repo}:multiarch`, '--username', 'alice', '--password-stdin', '--json'], { input: alicePassword });
    expect(inspect.exitCode, inspect.stderr).toBe(0);
    // Two images (and, where the builder attaches them, an attestation for each).
    expect(imageEntries((JSON.parse(inspect.stdout) as { manifests: Entry[] }).manifests)).toHaveLength(2);
    // Nothing written to the user's Docker config, and the private one is gone.
    expect(existsSync(join(home, '.docker'))).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.startsWith('crossbuild-docker-config-'))).toEqual([]);
  });

  it("--username credentials reach the target's registry only: another registry's token service never sees them", async () => {
    // bob's credentials for the token registry come from a Docker config; alice's are for the target.
    const cfgDir = scratchDir('cb-cfg-');
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [tokenReg.addr]: { auth: Buffer.from(`bob:${bobPassword}`).toString('base64') } } }));
    const src = `${tokenReg.addr}/src/app:v1`;
    const seed = await cli(['manifest', 'push', 'from-args', '--platforms', 'linux/arm64', '--template', `${REGISTRY}/busybox:latest-ARCH`, '--target', src, '--docker-cfg', cfgDir]);
    expect(seed.exitCode, seed.stderr).toBe(0);
    const spec = join(cfgDir, 'spec.yaml');
    writeFileSync(spec, `image: ${tlsReg.addr}/copied/app:v1\nmanifests:\n  - image: ${src}\n`);
    const before = tokens.requests.length;
    const r = await cli(['manifest', 'push', 'from-spec', spec, '--docker-cfg', cfgDir, '--username', 'alice', '--password-stdin'], { input: alicePassword });
    expect(r.exitCode, r.stderr).toBe(0);
    const seen = tokens.requests.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((q) => q.account === 'bob')).toBe(true);
  });
});

describe('interruption is clean', () => {
  const containers = async () => (await execa(DOCKER, ['ps', '-a', '--filter', 'name=crossbuild-verify-', '--format', '{{.Names}}'])).stdout.trim();

  /** Start a run, wait for a line, send a signal; its exit code, output and report. */
  async function interrupt(args: string[], waitFor: RegExp, signal: 'SIGINT' | 'SIGTERM', beforeKill: (text: () => string) => Promise<void> = async () => undefined): Promise<{ exitCode: number | undefined; stderr: string; report: Report }> {
    const dir = scratchDir('cb-sig-');
    const report = join(dir, 'report.json');
    const sub = execa('node', [join(ROOT, 'bin', 'crossbuild.js'), 'run', ...args, '--report', report], { reject: false, env: { CI: 'true' }, all: true });
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`never saw ${waitFor}: ${text}`)), 180_000);
      sub.all!.on('data', (d: Buffer) => {
        text += d.toString();
        if (waitFor.test(text)) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    // Let the container or build get going.
    await new Promise((r) => setTimeout(r, 1500));
    await beforeKill(() => text);
    sub.kill(signal);
    const r = await sub;
    return { exitCode: r.exitCode, stderr: String(r.all), report: JSON.parse(readFileSync(report, 'utf8')) as Report };
  }

  it('SIGINT during verification: containers removed, report written as interrupted, exit 130, no list', async () => {
    const repo = uniqueRepo('sigint');
    // Where the solve's `uname -m` probe asks (the containerd store), it is what the signal stops.
    let probes: number[] = [];
    let seen = '';
    const r = await interrupt(['--config', join(FIXTURES, 'hang', 'platforms.json'), '--image', repo, '--timeout', '300', '--debug'], /\[linux\/arm64\] verifying/, 'SIGINT', async (text) => {
      const tags = (await execa(DOCKER, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo])).stdout;
      const id = /-cb-([0-9a-f]{8})$/m.exec(tags)?.[1];
      for (let i = 0; i < 40 && id && probeProcesses(id).length === 0; i++) await new Promise((res) => setTimeout(res, 250));
      probes = id ? probeProcesses(id) : [];
      seen = `names: ${tags}\n${text()}`;
    });
    // (A probe whose step failed gives way to `docker run`, and says so: then a container is what the signal stops.)
    const gaveWay = /\] verifying: uname -m by docker run \(the probe: /.test(seen);
    expect(probes.length > 0 || gaveWay, seen).toBe(TEST_ENGINE === 'docker-28c');
    // Stopped with the run: buildx cancels its solve and ends (run as the plugin itself, or behind the CLI, a moment after it).
    const alive = () => probes.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    for (let i = 0; i < 40 && alive().length > 0; i++) await new Promise((res) => setTimeout(res, 250));
    expect(alive()).toEqual([]);
    expect(r.exitCode).toBe(130);
    expect(r.report.interrupted).toBe('SIGINT');
    expect(r.report.ok).toBe(false);
    expect(r.report.platforms[0]!.error).toBe('interrupted by SIGINT');
    expect(r.stderr).not.toMatch(/ELIFECYCLE|at .*\.js:\d+/);
    expect(await containers()).toBe('');
    expect(await skopeoRaw(`${repo}:multiarch`)).toBeUndefined();
  });

  it('SIGTERM during the builds: builds stopped, exit 143, report written, nothing pushed', async () => {
    const repo = uniqueRepo('sigterm');
    const started = Date.now();
    const r = await interrupt(['--config', join(FIXTURES, 'slow', 'platforms.json'), '--image', repo, '--verbose'], /RUN sleep 120/, 'SIGTERM');
    expect(r.exitCode).toBe(143);
    expect(Date.now() - started).toBeLessThan(100_000);
    expect(r.report.interrupted).toBe('SIGTERM');
    expect(r.report.platforms.every((p) => !p.ok)).toBe(true);
    expect(await skopeoRaw(`${repo}:latest-amd64`)).toBeUndefined();
    expect(await skopeoRaw(`${repo}:latest`)).toBeUndefined();
  });
});

describe('input it should refuse', () => {
  it('build-arg names ARG cannot have, and values too large to pass, are exit 2 before anything runs', async () => {
    const bad = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--build-arg', '1X=y', '--dry-run']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--build-arg 1X: not a build arg name/);
    // Too large for any argument (it could only come from a file): named, not a failed spawn.
    const dir = scratchDir('cb-bigarg-');
    const cfg = JSON.parse(readFileSync(join(FIXTURES, 'app', 'platforms.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'platforms.json'), JSON.stringify({ ...cfg, $schema: undefined, buildArgs: { BIG: 'x'.repeat(200_000) } }));
    const big = await cli(['run', '--config', join(dir, 'platforms.json'), '--dry-run']);
    expect(big.exitCode).toBe(2);
    expect(big.stderr).toMatch(/platforms\.json: buildArgs: BIG: the value is 200000 bytes; an argument may be at most 131072 bytes/);
    const ctl = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--network', 'ho\u001b[31mst']);
    expect(ctl.exitCode).toBe(2);
    expect(ctl.stderr).not.toContain('\u001b[31m');
  });
});

describe('nothing silent', () => {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  it('the last resort: an end with work unsettled, or a rejection nothing awaits, is said and exits 1', async () => {
    const unsettled = await execa('node', ['--input-type=module', '-e', `const m = await import(${JSON.stringify(main)}); m.installLastResort(() => false); await new Promise(() => {});`], { reject: false });
    expect(unsettled.exitCode).toBe(1);
    expect(unsettled.stderr).toMatch(/^crossbuild: stopped with work unfinished/m);
    const rejected = await execa('node', ['--input-type=module', '-e', `const m = await import(${JSON.stringify(main)}); m.installLastResort(() => false); Promise.reject(new Error('boom')); setTimeout(() => {}, 5000);`], { reject: false });
    expect(rejected.exitCode).toBe(1);
    expect(rejected.stderr).toMatch(/^crossbuild: an operation failed with nothing waiting for it: boom/m);
  });

  it('a connection dropped while a layer streams ends in a named error, not a silent exit', async () => {
    const { startFaultProxy } = await import('../helpers/registries.js');
    // Every blob GET of the seed's arm64 image drops after 1000 bytes, more often than the retries.
    const proxy = await startFaultProxy(REGISTRY.replace('localhost', '127.0.0.1'), Array.from({ length: 40 }, () => ({ method: 'GET', path: /\/busybox\/blobs\/sha256:/, dropAfterBytes: 1000 })));
    try {
      const started = Date.now();
      const r = await cli(['verify', `${proxy.addr}/busybox:latest-arm64`, '--static', '--json']);
      expect(r.exitCode).toBe(1);
      // Named within seconds: the request that failed, and why.
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(r.stdout).toMatch(/GET 127\.0\.0\.1:\d+\/v2\/busybox\/blobs\/sha256:[0-9a-f]{64} \(layer 0 of 1 of [^)]*\) (broke off|failed): /);
      expect(`${r.stdout}${r.stderr}`).toMatch(/layer|blob|terminated|closed|reset|socket/i);
      if (r.stdout.trim().startsWith('{')) {
        const report = JSON.parse(r.stdout) as { platforms: { checks: { check: string; verdict: string; evidence: string }[] }[] };
        expect(report.platforms[0]!.checks.find((c) => c.check === 'binaries')).toMatchObject({ verdict: 'fail' });
      } else {
        expect(r.stderr).toMatch(/^crossbuild: /m);
      }
    } finally {
      await proxy.stop();
    }
  });
});

describe('manifest push under load and faults', () => {
  let other: TestRegistry;
  beforeAll(async () => {
    other = await startRegistry();
  });
  afterAll(async () => {
    await other?.stop();
  });

  it('children sharing a blob on another registry: the blob is copied once and every manifest waits for it', async () => {
    const { pushTestImage, ustarHeader } = await import('../helpers/oci.js');
    // One data layer, the same bytes for both platforms: the common blob.
    const body = Buffer.from('common data layer\n'.repeat(5000));
    const tar = Buffer.concat([ustarHeader('data/common.txt', body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512), Buffer.alloc(1024)]);
    for (const round of [1, 2, 3]) {
      const src = `${other.addr}/src${round}/app`;
      await pushTestImage(`${src}:arm64`, tar, { architecture: 'arm64', os: 'linux', cmd: ['/data/common.txt'] });
      await pushTestImage(`${src}:amd64`, tar, { architecture: 'amd64', os: 'linux', cmd: ['/data/common.txt'] });
      const dir = scratchDir('cb-common-');
      const spec = join(dir, 'spec.yaml');
      const target = `${uniqueRepo('common-blob')}:v1`;
      writeFileSync(spec, `image: ${target}\nmanifests:\n  - image: ${src}:arm64\n  - image: ${src}:amd64\n`);
      const r = await cli(['manifest', 'push', 'from-spec', spec, '--type', 'oci']);
      expect(r.exitCode, `round ${round}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toMatch(/brought 2 manifest\(s\) into .*: 0 blob\(s\) mounted, 3 copied, 0 already there/);
    }
  });

  it('a second tag the registry refuses: the error says which tags moved and which did not', async () => {
    const { startFaultProxy } = await import('../helpers/registries.js');
    const repo = `it-tags-${Date.now()}/app`;
    const proxy = await startFaultProxy(REGISTRY.replace('localhost', '127.0.0.1'), Array.from({ length: 8 }, () => ({ method: 'PUT', path: new RegExp(`/v2/${repo}/manifests/latest$`), status: 500 })));
    try {
      const dir = scratchDir('cb-tags-');
      const spec = join(dir, 'spec.yaml');
      writeFileSync(spec, `image: ${proxy.addr}/${repo}:v1\ntags: [latest]\nmanifests:\n  - image: ${proxy.addr}/busybox:latest-arm64\n`);
      const r = await cli(['manifest', 'push', 'from-spec', spec]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/tags moved to sha256:[0-9a-f]{64}: v1; not moved: latest/);
    } finally {
      await proxy.stop();
    }
  });
});

describe('a transport with deadlines and honest retries', () => {
  const upstream = REGISTRY.replace('localhost', '127.0.0.1');
  const layerPath = /\/v2\/busybox\/blobs\/sha256:/;
  // The arm64 seed's one layer: its GET is the big one.
  let layer: { digest: string; size: number };
  beforeAll(async () => {
    const m = JSON.parse((await skopeoRaw(`${REGISTRY}/busybox:latest-arm64`))!.toString()) as { layers: { digest: string; size: number }[] };
    layer = m.layers[0]!;
  });
  const withProxy = async (faults: import('../helpers/registries.js').Fault[], fn: (addr: string) => Promise<void>) => {
    const { startFaultProxy } = await import('../helpers/registries.js');
    const proxy = await startFaultProxy(upstream, faults);
    try {
      await fn(proxy.addr);
    } finally {
      await proxy.stop();
    }
  };
  const verify = (addr: string, extra: string[] = []) => cli(['verify', `${addr}/busybox:latest-arm64`, '--static', ...extra]);

  it('a 503 on the ping, and a reset after the headers, are retried and shown as progress lines', async () => {
    await withProxy(
      [
        { method: 'GET', path: /^\/v2\/$/, status: 503 },
        { method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), dropAfterBytes: 4096 },
      ],
      async (addr) => {
        const r = await verify(addr);
        expect(r.exitCode, r.stdout + r.stderr).toBe(0);
        expect(r.stderr).toMatch(/crossbuild: retrying GET 127\.0\.0\.1:\d+\/v2\/ \(attempt 2 of 4\) in \d+ ms: HTTP 503/);
        expect(r.stderr).toMatch(/crossbuild: retrying GET 127\.0\.0\.1:\d+\/v2\/busybox\/blobs\/sha256:[0-9a-f]{64} \(attempt 2 of 4\) in \d+ ms: .*(closed|broke off)/);
      },
    );
  });

  it('a body that stalls after the headers is named within the deadline', async () => {
    await withProxy(
      Array.from({ length: 4 }, () => ({ method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), stallAfterHeaders: true })),
      async (addr) => {
        const started = Date.now();
        const r = await verify(addr, ['--registry-timeout', '2']);
        expect(r.exitCode).toBe(1);
        expect(r.stdout).toMatch(/GET 127\.0\.0\.1:\d+\/v2\/busybox\/blobs\/sha256:[0-9a-f]{64} \(layer 0 of 1 of .*\) broke off: the body stalled/);
        expect(Date.now() - started).toBeLessThan(60_000);
      },
    );
  });

  it('an endless body is cut off at the size its descriptor says; a short one is named', async () => {
    await withProxy([{ method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), endless: true }], async (addr) => {
      const r = await verify(addr);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`more than the ${layer.size} bytes its descriptor says`));
    });
    await withProxy(Array.from({ length: 4 }, () => ({ method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), truncateTo: 1000 })), async (addr) => {
      const r = await verify(addr);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`1000 bytes, short of the ${layer.size} its descriptor says`));
    });
  });

  it('close-delimited bodies (no Content-Length, Connection: close) are read, not a crash', async () => {
    await withProxy(
      [
        { method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), closeDelimited: true },
        { method: 'GET', path: /\/manifests\//, closeDelimited: true },
      ],
      async (addr) => {
        const r = await verify(addr);
        expect(r.exitCode, r.stdout + r.stderr).toBe(0);
        expect(r.stderr).not.toMatch(/AssertionError|at .*node_modules/);
      },
    );
  });

  it('a 503 on the blob-mount POST is retried', async () => {
    const target = uniqueRepo('mount-retry');
    const repo = target.replace(`${REGISTRY}/`, '');
    await withProxy([{ method: 'POST', path: new RegExp(`/v2/${repo}/blobs/uploads/\\?mount=`), status: 503 }], async (addr) => {
      const dir = scratchDir('cb-mount-');
      const spec = join(dir, 'spec.yaml');
      writeFileSync(spec, `image: ${addr}/${repo}:v1\nmanifests:\n  - image: ${addr}/busybox:latest-arm64\n`);
      const r = await cli(['manifest', 'push', 'from-spec', spec]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/crossbuild: retrying POST 127\.0\.0\.1:\d+\/v2\/.*\/blobs\/uploads\/ \(attempt 2 of 4\) in \d+ ms: HTTP 503/);
    });
  });
});

describe('a registry that goes away mid-run', () => {
  it('a short outage during docker push is retried; a long one fails the run, and the re-run succeeds', async () => {
    const { freePort } = await import('../helpers/registries.js');
    const port = await freePort();
    const dir = scratchDir('cb-outage-');
    writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
    let reg: ReturnType<typeof execa> | undefined;
    const start = async () => {
      reg = execa('docker-registry', ['serve', join(dir, 'config.yml')], { reject: false, stdio: 'ignore' });
      for (let i = 0; i < 50; i++) {
        if ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('registry did not start');
    };
    const stop = async () => {
      reg?.kill('SIGKILL');
      await reg;
    };
    const repo = `127.0.0.1:${port}/outage/app`;
    const args = ['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--platform', 'linux/amd64'];
    await start();
    try {
      // Stop the registry once the build starts (preflight has reached it), start it again when the
      // push says it will try again: the first attempt meets a closed port, a later one succeeds.
      // Driven by the run's own lines, not a timer, so it holds whether the push runs beside the
      // local proof (a buildx solve) or after it (docker push).
      const sub = execa('node', [join(ROOT, 'bin', 'crossbuild.js'), ...args], { reject: false, env: { CI: 'true' }, all: true });
      let text = '';
      let stopping: Promise<void> | undefined;
      let up = false;
      sub.all!.on('data', (d: Buffer) => {
        text += d.toString();
        if (!stopping && /\[linux\/amd64\] building/.test(text)) stopping = stop();
        if (stopping && !up && /\[linux\/amd64\] pushing: \S+ again \(attempt 2 of 3\)/.test(text)) {
          up = true;
          void stopping.then(start);
        }
      });
      const r = await sub;
      expect(r.exitCode, String(r.all)).toBe(0);
      expect(String(r.all)).toMatch(/\[linux\/amd64\] pushing: \S+ again \(attempt 2 of 3\) in [0-9.]+s: .*connection refused/);

      // Down for good: preflight's push check names it before anything is built; back up, the same run succeeds.
      await stop();
      const down = await cli(args);
      expect(down.exitCode).toBe(1);
      expect(down.stderr).toMatch(new RegExp(`crossbuild: cannot reach registry 127\\.0\\.0\\.1:${port} .*connection refused`));
      expect(down.stderr).toMatch(/hint: nothing listens on 127\.0\.0\.1:\d+/);
      expect(down.stderr).not.toMatch(/\] building/);
      await start();
      const again = await cli(args);
      expect(again.exitCode, again.stderr).toBe(0);
    } finally {
      await stop();
    }
  });
});
