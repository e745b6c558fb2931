// An OCI image layout as buildx 0.29 writes it (`--output type=oci,tar=false` of a two-platform
// build with its default provenance), pushed by digest to the in-process registry: every blob
// and manifest lands, no tag is written, and bytes that do not match their digest are refused.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parseBuildMetadata } from '../../src/docker/build.js';
import { RegistryClient } from '../../src/registry/client.js';
import { layoutImages, layoutTop, pushLayout } from '../../src/registry/layout.js';
import { startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';
const FIXTURES = join(__dirname, '..', 'fixtures');

const LAYOUT = join(FIXTURES, 'buildx-layout-0.29');
let reg: RegistryStub;
let client: RegistryClient;

beforeAll(async () => {
  reg = await startRegistryStub();
  client = new RegistryClient({ attempts: 1 });
});
afterAll(async () => {
  await client.close();
  await reg.close();
});

describe('an OCI layout pushed by digest', () => {
  it("pushes buildx's whole result — index, images, attestations, blobs — and writes no tag", async () => {
    const meta = parseBuildMetadata(readFileSync(join(FIXTURES, 'docker', 'buildx-metadata-oci-0.29.json'), 'utf8'));
    const top = await layoutTop(LAYOUT);
    // --metadata-file names the same index the layout holds.
    expect(top.digest).toBe(meta?.digest);
    const pushed = await pushLayout(client, { registry: reg.addr, repository: 'app/solve' }, LAYOUT);
    expect(pushed.digest).toBe(top.digest);
    const refs = [...(reg.manifests.get('app/solve')?.keys() ?? [])];
    expect(refs.length).toBeGreaterThan(0);
    expect(refs.every((r) => r.startsWith('sha256:'))).toBe(true);
    const index = await client.manifest(reg.addr, 'app/solve', top.digest);
    expect(index.kind).toBe('index');
    if (index.kind !== 'index') return;
    // Two images and their two attestation manifests, each readable whole.
    expect(index.index.manifests).toHaveLength(4);
    for (const d of index.index.manifests) {
      const m = await client.manifest(reg.addr, 'app/solve', d.digest);
      expect(m.kind).toBe('image');
      if (m.kind === 'image') for (const b of [m.manifest.config, ...m.manifest.layers]) expect(reg.blobs.has(b.digest)).toBe(true);
    }
  });

  it('reads each platform image and its config from disk, attestations left out', async () => {
    const images = await layoutImages(LAYOUT, await layoutTop(LAYOUT));
    expect(images.map((i) => `${i.platform.os}/${i.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(images.map((i) => i.config.architecture)).toEqual(['amd64', 'arm64']);
    expect(images.map((i) => i.onBuild)).toEqual([false, false]);
  });

  it('refuses a manifest whose bytes are not its digest, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-layout-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(LAYOUT, dir, { recursive: true });
    const top = await layoutTop(dir);
    const file = join(dir, 'blobs', 'sha256', top.digest.slice(7));
    writeFileSync(file, readFileSync(file, 'utf8').replace('amd64', 'arm64'));
    await expect(pushLayout(client, { registry: reg.addr, repository: 'app/tampered' }, dir)).rejects.toThrow(`manifest ${top.digest} does not hash to its digest`);
    expect(reg.manifests.get('app/tampered')?.has(top.digest) ?? false).toBe(false);
  });
});
