import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/oci/digest.js';
import { buildList } from '../../src/oci/list.js';
import { MediaType } from '../../src/oci/types.js';
import { validateOci } from '../helpers/oci-schema.js';

const d = (s: string) => sha256Digest(s);
const entries = [
  { mediaType: MediaType.DockerManifest, digest: d('a'), size: 942, platform: { os: 'linux', architecture: 'amd64' } },
  { mediaType: MediaType.DockerManifest, digest: d('b'), size: 942, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
  { mediaType: MediaType.DockerManifest, digest: d('c'), size: 942, platform: { os: 'linux', architecture: 'arm64' } },
];
const attestation = {
  mediaType: MediaType.OciManifest,
  digest: d('att'),
  size: 566,
  platform: { os: 'unknown', architecture: 'unknown' },
  annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': d('c') },
};

describe('buildList', () => {
  it('writes a Docker manifest list whose digest is the sha256 of its bytes', () => {
    const l = buildList('docker', entries);
    expect(l.mediaType).toBe(MediaType.DockerManifestList);
    expect(l.digest).toBe(sha256Digest(l.bytes));
    expect(l.size).toBe(l.bytes.length);
    const j = JSON.parse(l.bytes.toString()) as { schemaVersion: number; manifests: { digest: string; platform: unknown }[] };
    expect(j.schemaVersion).toBe(2);
    expect(j.manifests.map((m) => m.digest)).toEqual(entries.map((e) => e.digest));
    expect(j.manifests[1]!.platform).toEqual({ architecture: 'arm', os: 'linux', variant: 'v7' });
    // The Docker list has the fields of an OCI index, so the index schema must accept it too.
    expect(validateOci('image-index-schema.json', j)).toEqual([]);
  });

  it('writes an OCI index that validates against the image-spec schema, attestations last', () => {
    const l = buildList('oci', [attestation, ...entries], { annotations: { 'org.opencontainers.image.source': 'https://example.invalid/app' } });
    const j = JSON.parse(l.bytes.toString()) as { mediaType: string; manifests: { digest: string }[]; annotations: Record<string, string> };
    expect(j.mediaType).toBe(MediaType.OciIndex);
    expect(j.manifests.map((m) => m.digest)).toEqual([...entries.map((e) => e.digest), attestation.digest]);
    expect(j.annotations['org.opencontainers.image.source']).toBe('https://example.invalid/app');
    expect(validateOci('image-index-schema.json', j)).toEqual([]);
    expect(l.dropped).toEqual([]);
  });

  it('drops attestations from a Docker list and says which', () => {
    const l = buildList('docker', [...entries, attestation]);
    expect(l.dropped.map((e) => e.digest)).toEqual([attestation.digest]);
    expect((JSON.parse(l.bytes.toString()) as { manifests: unknown[] }).manifests).toHaveLength(3);
  });

  it('refuses duplicate platforms after normalisation', () => {
    const dup = [...entries, { ...entries[1]!, digest: d('z'), platform: { os: 'linux', architecture: 'arm' } }];
    expect(() => buildList('oci', dup)).toThrow(/duplicate platform linux\/arm\/v7/);
  });

  it('refuses annotations on a Docker list', () => {
    expect(() => buildList('docker', entries, { annotations: { a: 'b' } })).toThrow(/--type oci/);
  });

  it('the schema check is real: a broken index fails it', () => {
    expect(validateOci('image-index-schema.json', { schemaVersion: 2, manifests: [{ digest: 'nope', size: -1 }] }).length).toBeGreaterThan(0);
  });
});
