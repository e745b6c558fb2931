// The registry client and `crossbuild manifest` against real distribution registries: plain HTTP,
// TLS + htpasswd Basic auth, token auth with real signed JWTs. Results are read back with skopeo,
// docker manifest inspect and docker pull, and OCI indexes are validated against the image-spec.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { pushLayout } from '../../src/registry/layout.js';
import { scratchDir } from '../helpers/engine-setup.js';
import { validateOci } from '../helpers/oci-schema.js';
import { cli, DOCKER, dockerRun, REGISTRY, requireInfrastructure, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { installCa, makePki, startFaultProxy, startRegistry, startTokenServer, type Pki, type TestRegistry, type TokenServer } from '../helpers/registries.js';
import { sha } from '../helpers/oci.js';

const dir = scratchDir('cb-reg-');
const specFile = (name: string, yaml: string) => {
  const f = join(dir, name);
  writeFileSync(f, yaml);
  return f;
};
/** The seed's spec, as a manifest-tool user writes it, aimed at `target`. */
const seedSpec = (target: string) => `image: ${target}
manifests:
  - image: ${REGISTRY}/busybox:latest-amd64
    platform:
      architecture: amd64
      os: linux
  - image: ${REGISTRY}/busybox:latest-arm32
    platform:
      architecture: arm
      os: linux
      variant: v7
  - image: ${REGISTRY}/busybox:latest-arm64
    platform:
      architecture: arm64
      os: linux
`;
interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; platform?: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }[];
}
const platforms = (i: Index) => i.manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : '-'));

beforeAll(requireInfrastructure);

describe('manifest push from-spec on a plain-HTTP registry', () => {
  it('round-trips the seed spec: skopeo, docker manifest inspect and docker pull consume it', async () => {
    const target = `${uniqueRepo('spec')}:multiarch`;
    // Same registry, other repository: the children are mounted into the target repository.
    const r = await cli(['manifest', 'push', 'from-spec', specFile('seed.yaml', seedSpec(target))]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.exitCode).toBe(0);
    const printed = /^Digest: (sha256:[a-f0-9]{64}) (\d+)$/m.exec(r.stdout)!;
    expect(r.stderr).toMatch(/blob\(s\) mounted/);
    const raw = (await skopeoRaw(target))!;
    expect(sha(raw)).toBe(printed[1]);
    const list = JSON.parse(raw.toString()) as Index;
    expect(list.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(platforms(list)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    for (const [suffix, m] of [['amd64', list.manifests[0]!], ['arm32', list.manifests[1]!], ['arm64', list.manifests[2]!]] as const) {
      expect(sha((await skopeoRaw(`${REGISTRY}/busybox:latest-${suffix}`))!)).toBe(m.digest);
    }
    const dm = await execa(DOCKER, ['manifest', 'inspect', '--insecure', target], { reject: false });
    expect(dm.exitCode).toBe(0);
    expect((JSON.parse(dm.stdout) as Index).manifests.map((m) => m.digest)).toEqual(list.manifests.map((m) => m.digest));
    expect(await dockerRun(target, 'linux/arm/v7', ['uname', '-m'])).toBe('armv7l');
    expect(await dockerRun(target, 'linux/arm64', ['uname', '-m'])).toBe('aarch64');
  });

  it('writes an OCI index with annotations and extra tags, valid against the image-spec schema', async () => {
    const repo = uniqueRepo('spec-oci');
    const yaml = `${seedSpec(`${repo}:v1`)}tags: [v1.0, latest]\nannotations:\n  org.opencontainers.image.description: seeded busybox\n`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('oci.yaml', yaml), '--type', 'oci']);
    expect(r.exitCode).toBe(0);
    const raw = (await skopeoRaw(`${repo}:v1`))!;
    const idx = JSON.parse(raw.toString()) as Index & { annotations: Record<string, string> };
    expect(idx.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    expect(idx.annotations['org.opencontainers.image.description']).toBe('seeded busybox');
    for (const t of ['v1.0', 'latest']) expect(sha((await skopeoRaw(`${repo}:${t}`))!)).toBe(sha(raw));
  });

  it('takes left-out platform fields from the image config, and from-args expands its template', async () => {
    const target = `${uniqueRepo('noplat')}:t`;
    const yaml = `image: ${target}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-s390x\n  - image: ${REGISTRY}/busybox:latest-arm32\n`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('noplat.yaml', yaml), '--json']);
    expect(r.exitCode).toBe(0);
    expect(platforms(JSON.parse((await skopeoRaw(target))!.toString()) as Index)).toEqual(['linux/s390x', 'linux/arm/v7']);

    const t2 = `${uniqueRepo('args')}:t`;
    const a = await cli(['manifest', 'push', 'from-args', '--platforms', 'linux/ppc64le,linux/arm64', '--template', `${REGISTRY}/busybox:latest-ARCHVARIANT`, '--target', t2]);
    expect(a.exitCode).toBe(0);
    expect(platforms(JSON.parse((await skopeoRaw(t2))!.toString()) as Index)).toEqual(['linux/ppc64le', 'linux/arm64']);
  });

  it('flattens a child list, keeping its attestation with --type oci and dropping it (with a warning) for docker', async () => {
    // A buildx-style child: an OCI index of two images plus an attestation manifest.
    const client = new RegistryClient();
    const repo = 'busybox';
    const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', predicateType: 'https://slsa.dev/provenance/v0.2', subject: [] }));
    const cfg = Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [sha(statement)] } }));
    await client.pushBlob('localhost:5000', repo, sha(statement), statement.length, statement);
    await client.pushBlob('localhost:5000', repo, sha(cfg), cfg.length, cfg);
    const s390x = await client.getManifest('localhost:5000', repo, 'latest-s390x');
    const ppc = await client.getManifest('localhost:5000', repo, 'latest-ppc64le');
    const att = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.in-toto+json', digest: sha(statement), size: statement.length, annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } }] }));
    await client.putManifest('localhost:5000', repo, sha(att), att, 'application/vnd.oci.image.manifest.v1+json');
    const child = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [
      { mediaType: s390x.mediaType, digest: s390x.digest, size: s390x.size, platform: { architecture: 's390x', os: 'linux' } },
      { mediaType: ppc.mediaType, digest: ppc.digest, size: ppc.size, platform: { architecture: 'ppc64le', os: 'linux' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(att), size: att.length, platform: { architecture: 'unknown', os: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': s390x.digest } },
    ] }));
    const childTag = `withatt-${randomBytes(3).toString('hex')}`;
    await client.putManifest('localhost:5000', repo, childTag, child, 'application/vnd.oci.image.index.v1+json');
    await client.close();

    const repoT = uniqueRepo('flat');
    const yaml = (t: string) => `image: ${repoT}:${t}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-amd64\n  - image: ${REGISTRY}/busybox:${childTag}\n`;
    const oci = await cli(['manifest', 'push', 'from-spec', specFile('flat-oci.yaml', yaml('oci')), '--type', 'oci']);
    expect(oci.exitCode).toBe(0);
    const idx = JSON.parse((await skopeoRaw(`${repoT}:oci`))!.toString()) as Index;
    expect(platforms(idx)).toEqual(['linux/amd64', 'linux/s390x', 'linux/ppc64le', 'unknown/unknown']);
    expect(idx.manifests[3]!.annotations?.['vnd.docker.reference.type']).toBe('attestation-manifest');
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    // The attestation manifest came along into the target repository.
    expect(sha((await skopeoRaw(`${repoT}@${sha(att)}`))!)).toBe(sha(att));

    const dock = await cli(['manifest', 'push', 'from-spec', specFile('flat-docker.yaml', yaml('docker'))]);
    expect(dock.exitCode).toBe(0);
    expect(dock.stderr).toMatch(/warning: .*dropped 1 attestation manifest .*use --type oci/);
    expect(platforms(JSON.parse((await skopeoRaw(`${repoT}:docker`))!.toString()) as Index)).toEqual(['linux/amd64', 'linux/s390x', 'linux/ppc64le']);
  });

  it('--plain-http talks HTTP directly; inspect prints the exact bytes with --raw', async () => {
    const r = await cli(['manifest', 'inspect', `${REGISTRY}/busybox:latest-arm64`, '--plain-http', '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ platform: 'linux/arm64', mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    const raw = await cli(['manifest', 'inspect', `${REGISTRY}/busybox:latest`, '--raw']);
    expect(sha(raw.stdout)).toBe(sha((await skopeoRaw(`${REGISTRY}/busybox:latest`))!));
  });

  it('retries 429 (honouring Retry-After) and 500, then succeeds', async () => {
    const repo = uniqueRepo('faults').replace(`${REGISTRY}/`, '');
    const proxy = await startFaultProxy('127.0.0.1:5000', [
      { method: 'GET', path: /\/manifests\/latest-arm64$/, status: 429, headers: { 'retry-after': '1' } },
      { method: 'PUT', path: new RegExp(`/v2/${repo}/manifests/t$`), status: 500 },
    ]);
    try {
      const yaml = `image: ${proxy.addr}/${repo}:t\nmanifests:\n  - image: ${proxy.addr}/busybox:latest-arm64\n`;
      const r = await cli(['manifest', 'push', 'from-spec', specFile('faults.yaml', yaml)]);
      expect(r.exitCode).toBe(0);
      const gets = proxy.log.filter((l) => l.method === 'GET' && /manifests\/latest-arm64$/.test(l.path));
      expect(gets.map((g) => g.status)).toEqual([429, 200]);
      expect(gets[1]!.at - gets[0]!.at).toBeGreaterThanOrEqual(950);
      const puts = proxy.log.filter((l) => l.method === 'PUT' && l.path.endsWith('/manifests/t'));
      expect(puts.map((p) => p.status)).toEqual([500, 201]);
      expect(await skopeoRaw(`${REGISTRY}/${repo}:t`)).toBeDefined();
    } finally {
      await proxy.stop();
    }
  });
});

describe('pushes of one repository at once (two runs of one tag)', () => {
  /** An OCI layout of one small image, new content each call (a config and one layer). */
  const layout = (n: number): string => {
    const d = mkdtempSync(join(dir, 'layout-'));
    mkdirSync(join(d, 'blobs', 'sha256'), { recursive: true });
    const blob = (b: Buffer | string) => {
      const digest = sha(b);
      writeFileSync(join(d, 'blobs', 'sha256', digest.slice(7)), b);
      return { digest, size: Buffer.byteLength(b) };
    };
    const layer = blob(randomBytes(2048));
    const config = blob(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, n }));
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] });
    const m = blob(manifest);
    writeFileSync(join(d, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }] }));
    writeFileSync(join(d, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    return d;
  };

  it('every push lands though three clients push the same blobs at the same moment (the registry is briefly behind its own writes)', async () => {
    const repo = uniqueRepo('same-blobs').replace(`${REGISTRY}/`, '');
    const clients = [0, 1, 2].map(() => new RegistryClient({ backoffMs: 50 }));
    try {
      // distribution's filesystem store rewrites a blob's link in place while another push of that
      // blob commits: a manifest PUT in that moment is refused with MANIFEST_BLOB_UNKNOWN (about 2 %
      // of such PUTs here), and each is accepted when sent again.
      for (let round = 0; round < 60; round++) {
        const d = layout(round);
        const pushed = await Promise.all(clients.map((c) => pushLayout(c, { registry: REGISTRY, repository: repo }, d)));
        expect(new Set(pushed.map((p) => p.digest)).size).toBe(1);
        const served = await clients[0]!.manifest(REGISTRY, repo, pushed[0]!.digest);
        expect(served.kind === 'image' && served.manifest.config.digest).toBe(JSON.parse(readFileSync(join(d, 'blobs', 'sha256', pushed[0]!.digest.slice(7)), 'utf8')).config.digest);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});

describe('bad input gets one clear error and leaves the registry unchanged', () => {
  const cases: [string, string, RegExp, number][] = [
    ['malformed YAML', 'image: x\nmanifests:\n  - image: [unclosed\n', /not valid YAML: .* at line \d+, column \d+/, 2],
    ['missing image', `manifests:\n  - image: ${REGISTRY}/busybox:latest-amd64\n`, /: image: required/, 2],
    ['unknown arch', `image: ${REGISTRY}/x:t\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-amd64\n    platform: {architecture: sparc9, os: linux}\n`, /manifests\[0\]\.platform\.architecture: unknown architecture "sparc9"/, 2],
    ['variant on an arch without variants', `image: ${REGISTRY}/x:t\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-s390x\n    platform: {architecture: s390x, os: linux, variant: v2}\n`, /manifests\[0\]\.platform\.variant: variant "v2" is not valid for architecture s390x \(it has no variants\)/, 2],
    ['unknown field', `image: ${REGISTRY}/x:t\nmanifest:\n  - image: a\n`, /unknown field "manifest" \(did you mean "manifests"\?\) \(allowed: image, tags, annotations, manifests\)/, 2],
  ];
  for (const [name, yaml, msg, code] of cases) {
    it(name, async () => {
      const f = specFile(`${name.replace(/\W+/g, '-')}.yaml`, yaml);
      const r = await cli(['manifest', 'push', 'from-spec', f]);
      expect(r.exitCode).toBe(code);
      expect(r.stderr).toContain(f);
      expect(r.stderr).toMatch(msg);
    });
  }

  it('duplicate platforms', async () => {
    const target = `${uniqueRepo('dup')}:t`;
    const yaml = `image: ${target}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-arm64\n  - image: ${REGISTRY}/busybox:latest-arm64\n    platform: {architecture: aarch64, os: linux}\n`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('dup.yaml', yaml)]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/duplicate platform linux\/arm64/);
    expect(await skopeoRaw(target)).toBeUndefined();
  });

  it('a child that does not exist: named, nothing pushed; --ignore-missing pushes the rest', async () => {
    const target = `${uniqueRepo('missing')}:t`;
    const yaml = `image: ${target}\nmanifests:\n  - image: ${REGISTRY}/busybox:latest-arm64\n  - image: ${REGISTRY}/busybox:latest-mips99\n`;
    const f = specFile('missing.yaml', yaml);
    const r = await cli(['manifest', 'push', 'from-spec', f]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/manifests\[1\]\.image localhost:5000\/busybox:latest-mips99 does not exist/);
    expect(await skopeoRaw(target)).toBeUndefined();
    // Not even the existing child was brought into the target repository.
    expect(await skopeoRaw(`${target.replace(/:t$/, '')}:latest-arm64`)).toBeUndefined();
    const ok = await cli(['manifest', 'push', 'from-spec', f, '--ignore-missing']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stderr).toMatch(/warning: manifests\[1\]\.image .*latest-mips99 does not exist: skipped/);
    expect(platforms(JSON.parse((await skopeoRaw(target))!.toString()) as Index)).toEqual(['linux/arm64']);
  });
});

describe('TLS registry with Basic auth (htpasswd), children copied from another registry', () => {
  let pki: Pki;
  let reg: TestRegistry;
  let removeCa: () => void;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  beforeAll(async () => {
    pki = await makePki();
    reg = await startRegistry({ tls: pki, auth: { htpasswd: { user: 'alice', password } } });
    removeCa = installCa(reg.addr, pki.caCert);
  });
  afterAll(async () => {
    removeCa?.();
    await reg?.stop();
  });

  it('pushes with --username/--password-stdin, verifying TLS with the certs.d CA', async () => {
    const target = `${reg.addr}/app:v1`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('tls.yaml', seedSpec(target)), '--type', 'oci', '--username', 'alice', '--password-stdin', '--debug'], { input: `${password}\n` });
    expect(r.stderr).not.toContain(password);
    expect(r.stderr).not.toContain(Buffer.from(`alice:${password}`).toString('base64'));
    expect(r.exitCode).toBe(0);
    // --debug's request log: every request with its answer, never a header. The list is written
    // and read back (the read on the PUT's connection, behind it).
    expect(r.stderr).toMatch(new RegExp(`debug: \\+\\d+ms PUT ${reg.addr.replace(/\./g, '\\.')}/v2/app/manifests/v1 → 201 \\(\\d+ ms\\)`));
    expect(r.stderr).toMatch(new RegExp(`debug: \\+\\d+ms GET ${reg.addr.replace(/\./g, '\\.')}/v2/app/manifests/v1 → 200`));
    expect(r.stderr).not.toMatch(/authorization|Basic /i);
    expect(r.stderr).toMatch(/0 blob\(s\) mounted, [1-9]\d* copied/);
    const sk = await execa('skopeo', ['inspect', '--raw', '--creds', `alice:${password}`, '--cert-dir', `/etc/docker/certs.d/${reg.addr}`, `docker://${target}`]);
    const idx = JSON.parse(sk.stdout) as Index;
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    expect(platforms(idx)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    // The copied child is whole: skopeo can read its config through the target registry.
    const cfg = await execa('skopeo', ['inspect', '--config', '--creds', `alice:${password}`, '--cert-dir', `/etc/docker/certs.d/${reg.addr}`, `docker://${reg.addr}/app@${idx.manifests[1]!.digest}`]);
    expect(JSON.parse(cfg.stdout)).toMatchObject({ architecture: 'arm', variant: 'v7' });
  });

  it('reads credentials from a Docker config.json (--docker-cfg)', async () => {
    const cfgDir = scratchDir('cb-dockercfg-');
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [reg.addr]: { auth: Buffer.from(`alice:${password}`).toString('base64') } } }));
    const r = await cli(['manifest', 'inspect', `${reg.addr}/app:v1`, '--docker-cfg', cfgDir, '--json']);
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as { manifests: unknown[] }).manifests).toHaveLength(3);
  });

  it('asks a credential helper named in credHelpers (docker-credential-<name> get)', async () => {
    const cfgDir = scratchDir('cb-credhelper-');
    const bin = join(cfgDir, 'bin');
    const { mkdirSync, chmodSync } = await import('node:fs');
    mkdirSync(bin);
    // The helper protocol: server URL on stdin, {"Username","Secret"} on stdout.
    writeFileSync(join(bin, 'docker-credential-cbtest'), `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${reg.addr}" ] || exit 1\nprintf '{"ServerURL":"%s","Username":"alice","Secret":"${password}"}' "$server"\n`);
    chmodSync(join(bin, 'docker-credential-cbtest'), 0o755);
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ credHelpers: { [reg.addr]: 'cbtest' } }));
    const r = await cli(['manifest', 'inspect', `${reg.addr}/app:v1`, '--docker-cfg', join(cfgDir, 'config.json')], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/linux\/arm\/v7/);
    expect(r.stdout).not.toContain(password);
  });

  it('a wrong password names the registry and how to log in, and never shows the password', async () => {
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('tls-wrong.yaml', seedSpec(`${reg.addr}/app:bad`)), '--username', 'alice', '--password-stdin'], { input: wrong });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`registry ${reg.addr.replace(/\./g, '\\.')} denied`));
    expect(r.stderr).toMatch(/docker login/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(wrong);
    expect(`${r.stdout}${r.stderr}`).not.toContain(Buffer.from(`alice:${wrong}`).toString('base64'));
  });

  it('refuses a certificate it cannot verify unless --insecure', async () => {
    removeCa();
    try {
      const r = await cli(['manifest', 'inspect', `${reg.addr}/app:v1`, '--username', 'alice', '--password-stdin'], { input: password });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/cannot reach registry .*certificate/i);
      const k = await cli(['manifest', 'inspect', `${reg.addr}/app:v1`, '--insecure', '--username', 'alice', '--password-stdin'], { input: password });
      expect(k.exitCode).toBe(0);
    } finally {
      removeCa = installCa(reg.addr, pki.caCert);
    }
  });
});

describe('token-auth registry (distribution validating real signed JWTs)', () => {
  let pki: Pki;
  let tokens: TokenServer;
  let reg: TestRegistry;
  const password = `tok-${randomBytes(8).toString('hex')}`;
  beforeAll(async () => {
    pki = await makePki();
    tokens = await startTokenServer({ bob: password }, pki);
    reg = await startRegistry({ auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certFile } } });
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
  });

  it('pushes a list with one token request per scope; skopeo reads it back', async () => {
    const target = `${reg.addr}/team/app:v1`;
    const r = await cli(['manifest', 'push', 'from-spec', specFile('token.yaml', seedSpec(target)), '--type', 'oci', '--username', 'bob', '--password-stdin'], { input: password });
    expect(r.stderr).not.toContain(password);
    expect(r.exitCode).toBe(0);
    const scopes = tokens.requests.map((q) => q.scopes.join(' '));
    expect(scopes).toContain('repository:team/app:pull,push');
    expect(new Set(scopes).size).toBe(scopes.length);
    expect(tokens.requests.every((q) => q.account === 'bob' && q.authorized)).toBe(true);
    const sk = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', `bob:${password}`, `docker://${target}`]);
    const idx = JSON.parse(sk.stdout) as Index;
    expect(validateOci('image-index-schema.json', idx)).toEqual([]);
    expect(platforms(idx)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
  });

  it('without credentials, says which registry refused and how to log in', async () => {
    const r = await cli(['manifest', 'inspect', `${reg.addr}/team/app:v1`, '--docker-cfg', scratchDir('cb-empty-')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${reg.addr.replace(/\./g, '\\.')}`));
    expect(r.stderr).toMatch(/docker login/);
  });
});
