// cosign argv (offline key signing, plain-HTTP loopback registries), the parser of its
// verify-attestation output (captured from cosign 3.1.1), the proof predicate against its schema,
// and the in-process signer against what cosign 3.1.1 wrote (captured manifests and bundle).
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { attestArgv, parseAttestations, signArgv, verifyArgv } from '../../src/sign/cosign.js';
import { configPlatformOf, platformPredicate, unameOf } from '../../src/sign/proof.js';
import { loadKey, LocalSigner } from '../../src/sign/local.js';
import { RegistryClient } from '../../src/registry/client.js';
import { startRegistryStub } from '../helpers/registry-stub.js';

const root = join(__dirname, '..', '..');

describe('cosign argv', () => {
  it('a key signs offline; no key is the keyless flow; loopback registries are plain HTTP', () => {
    expect(signArgv('localhost:5000/a@sha256:1', { ref: 'k.key' }, { registry: 'localhost:5000' })).toEqual(['sign', '--key', 'k.key', '--tlog-upload=false', '--use-signing-config=false', '--allow-http-registry', '-y', 'localhost:5000/a@sha256:1']);
    expect(signArgv('ghcr.io/a@sha256:1', {}, { registry: 'ghcr.io' })).toEqual(['sign', '-y', 'ghcr.io/a@sha256:1']);
    expect(attestArgv('r/a@sha256:1', { ref: 'env://KEY' }, 'https://t', '/p.json', { registry: 'r', insecure: true })).toEqual(['attest', '--key', 'env://KEY', '--tlog-upload=false', '--use-signing-config=false', '--type', 'https://t', '--predicate', '/p.json', '--allow-insecure-registry', '-y', 'r/a@sha256:1']);
    expect(verifyArgv('r/a@sha256:1', 'k.pub', { registry: 'r' })).toEqual(['verify', '--key', 'k.pub', '--insecure-ignore-tlog=true', '--output', 'json', 'r/a@sha256:1']);
  });
});

describe("cosign verify-attestation's output", () => {
  it('gives the in-toto statements it accepted', () => {
    const [s] = parseAttestations(readFileSync(join(root, 'test', 'fixtures', 'cosign', 'verify-attestation-3.1.1.txt'), 'utf8'));
    expect(s!.predicateType).toBe('https://crossbuild.dev/proof/v1');
    expect(s!.subject[0]!.digest.sha256).toBe('bb802a715668db89d73c77758943380e46d565162cc04d03d1e1888cfe971781');
    expect(s!.predicate).toMatchObject({ platform: 'linux/arm64' });
    expect(parseAttestations('Verification for x --\nnot json\n')).toEqual([]);
  });
});

describe('the proof predicate', () => {
  it('records what was proven, and validates against schema/proof-predicate.schema.json', () => {
    const checks = [
      { check: 'metadata' as const, verdict: 'pass' as const, evidence: 'image config says linux/arm64' },
      { check: 'runtime' as const, verdict: 'pass' as const, evidence: 'uname -m printed aarch64' },
    ];
    const p = platformPredicate({ platform: 'linux/arm64', configPlatform: configPlatformOf(checks, '?'), unameSeen: unameOf(checks), files: { filesScanned: 5, elfChecked: 1, mismatches: 0, excused: 0 }, checks, tests: [{ name: 't', verdict: 'pass' }] }, { crossbuild: '0.2.0', builder: { kind: 'buildx', version: '0.29.1' }, engine: { version: '28.5.2', imageStore: 'containerd' } }, new Date('2026-12-01T00:00:00Z'));
    expect(p).toMatchObject({ platform: 'linux/arm64', configPlatform: 'linux/arm64', uname: 'aarch64', files: { scanned: 5, elfChecked: 1, mismatched: 0, excused: 0 }, provenAt: '2026-12-01T00:00:00.000Z' });
    const schema = JSON.parse(readFileSync(join(root, 'schema', 'proof-predicate.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ strict: false }).compile(schema);
    expect(validate(p), JSON.stringify(validate.errors)).toBe(true);
  });
});

describe('signing in this process (a key file)', () => {
  const fx = (f: string) => join(root, 'test', 'fixtures', 'cosign', f);
  const json = (f: string) => JSON.parse(readFileSync(fx(f), 'utf8')) as Record<string, any>;

  it("opens cosign 3.1.1's encrypted key with its password, and only with it", async () => {
    const key = await loadKey(fx('test-3.1.1.key'), 'crossbuild-test');
    expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve]).toEqual(['ec', 'prime256v1']);
    // The public half is the one cosign wrote beside it.
    expect(createPublicKey(key).export({ format: 'pem', type: 'spki' })).toBe(readFileSync(fx('test-3.1.1.pub'), 'utf8'));
    await expect(loadKey(fx('test-3.1.1.key'), 'wrong')).rejects.toThrow(/COSIGN_PASSWORD does not open this key/);
    await expect(loadKey(fx('test-3.1.1.pub'), '')).rejects.toThrow(/not a private key crossbuild can read/);
  });

  it("writes what cosign 3.1.1 writes: a DSSE envelope in a sigstore bundle, signed over DSSE's encoding", async () => {
    const key = await loadKey(fx('test-3.1.1.key'), 'crossbuild-test');
    const statement = { _type: 'https://in-toto.io/Statement/v0.1', subject: [{ name: 'r/a', digest: { sha256: 'ab' } }], predicateType: 'https://t', predicate: { a: 1 } };
    const ours = JSON.parse(new LocalSigner(key).bundle(statement).toString()) as Record<string, any>;
    const theirs = json('attest-bundle-3.1.1.json');
    // The same shape, field for field (the captured bundle of `cosign attest`).
    const shape = (b: Record<string, any>) => ({ keys: Object.keys(b), vm: Object.keys(b.verificationMaterial.publicKey), env: Object.keys(b.dsseEnvelope), sig: Object.keys(b.dsseEnvelope.signatures[0]), mediaType: b.mediaType, payloadType: b.dsseEnvelope.payloadType });
    expect(shape(ours)).toEqual(shape(theirs));
    // The hint is the key's: SHA-256 of its public key (what cosign put there for its key).
    expect(theirs.verificationMaterial.publicKey.hint).toBe(createHash('sha256').update(createPublicKey(readFileSync(fx('captured.pub'), 'utf8')).export({ format: 'der', type: 'spki' })).digest('base64'));
    // The signature verifies over PAE(payloadType, payload), as DSSE says; and cosign's own does too.
    const check = (b: Record<string, any>, pub: string) => {
      const payload = Buffer.from(b.dsseEnvelope.payload, 'base64');
      const pae = Buffer.concat([Buffer.from(`DSSEv1 ${b.dsseEnvelope.payloadType.length} ${b.dsseEnvelope.payloadType} ${payload.length} `), payload]);
      return verify('sha256', pae, createPublicKey(pub), Buffer.from(b.dsseEnvelope.signatures[0].sig, 'base64'));
    };
    expect(check(ours, readFileSync(fx('test-3.1.1.pub'), 'utf8'))).toBe(true);
    expect(check(theirs, readFileSync(fx('captured.pub'), 'utf8'))).toBe(true);
    expect(JSON.parse(Buffer.from(ours.dsseEnvelope.payload, 'base64').toString())).toEqual(statement);
  });

  it('pushes the signature and the attestation as artifacts of the image, listed under its referrers tag, keeping what was there', async () => {
    const reg = await startRegistryStub();
    const client = new RegistryClient({ attempts: 1 });
    try {
      const config = reg.putBlob('{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 78 }, layers: [] });
      const digest = reg.putManifest('app', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
      const tag = `sha256-${digest.slice(7)}`;
      const earlier = { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, digest: `sha256:${'e'.repeat(64)}`, artifactType: 'x' };
      reg.putManifest('app', tag, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [earlier] }), 'application/vnd.oci.image.index.v1+json');
      const signer = new LocalSigner(await loadKey(fx('test-3.1.1.key'), 'crossbuild-test'));
      await signer.signAll(client, { registry: reg.addr, repository: 'app' }, [{ digest, type: 'https://crossbuild.dev/attestations/platform-proof/v1', predicate: { platform: 'linux/arm64' } }]);
      const index = JSON.parse(reg.manifests.get('app')!.get(tag)!.bytes.toString()) as { manifests: { digest: string; artifactType: string }[] };
      expect(index.manifests).toHaveLength(3);
      expect(index.manifests[2]).toEqual(earlier);
      const artifacts = index.manifests.slice(0, 2).map((d) => JSON.parse(reg.manifests.get('app')!.get(d.digest)!.bytes.toString()) as Record<string, any>);
      // As cosign 3.1.1 writes them (the captured manifests): config, layer type, annotations, subject.
      const captured = json('sign-manifest-3.1.1.json');
      for (const a of artifacts) {
        expect(Object.keys(a)).toEqual(Object.keys(captured));
        expect([a.config, a.artifactType, a.layers[0].mediaType]).toEqual([captured.config, captured.artifactType, captured.layers[0].mediaType]);
        expect(Object.keys(a.annotations)).toEqual(Object.keys(captured.annotations));
        expect(a.subject).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length, digest });
      }
      expect(artifacts.map((a) => a.annotations['dev.sigstore.bundle.predicateType'])).toEqual(['https://sigstore.dev/cosign/sign/v1', 'https://crossbuild.dev/attestations/platform-proof/v1']);
      expect(index.manifests[0]!.artifactType).toBe(json('referrers-tag-3.1.1.json').manifests[0].artifactType);
    } finally {
      await client.close();
      await reg.close();
    }
  });
});
