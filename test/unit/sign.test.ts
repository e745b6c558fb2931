// cosign argv (offline key signing, plain-HTTP loopback registries), the parser of its
// verify-attestation output (captured from cosign 3.1.1), and the proof predicate against its schema.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { attestArgv, parseAttestations, signArgv, verifyArgv } from '../../src/sign/cosign.js';
import { configPlatformOf, platformPredicate, unameOf } from '../../src/sign/proof.js';

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
