// The layer scan starts beside the config's read (one round trip fewer per platform). When the
// config cannot be read there is no verdict to give: the layers only that image wanted stop being
// read; a layer another image still waits for goes on. Against the in-process registry stub.
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/oci/reference.js';
import { verifyReference } from '../../src/verify/verify.js';
import { digestOf, startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let reg: RegistryStub;
beforeEach(async () => {
  reg = await startRegistryStub();
});
afterEach(async () => {
  await reg.close();
});

/** An image of one layer whose config is stored (or not); its manifest digest. */
function image(layer: string, layerSize: number, arch: string, stored: boolean): string {
  const config = JSON.stringify({ os: 'linux', architecture: arch, rootfs: { type: 'layers', diff_ids: [] }, config: { Entrypoint: ['/app'] } });
  const cd = stored ? reg.putBlob(config) : digestOf(config);
  return reg.putManifest('app', `v-${arch}`, JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [{ mediaType: LAYER, digest: layer, size: layerSize }] }), MANIFEST);
}

const waitFor = async (cond: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
};

/**
 * A layer whose GET sends its gzip header and then holds; when the client hangs up is noted.
 * Each config GET is answered only once the layer's read is under way and `configs` config GETs
 * have come (an image's config is asked for after its scan joined the layer's read): no timing.
 */
function heldLayer(configs: number): { digest: string; size: number; closed: () => number | undefined; gets: () => number } {
  const bytes = gzipSync(Buffer.alloc(1 << 20));
  const digest = reg.putBlob(bytes);
  let closedAt: number | undefined;
  let gets = 0;
  let configGets = 0;
  reg.fault = async (req, res) => {
    if (req.method === 'GET' && req.url === `/v2/app/blobs/${digest}`) {
      gets++;
      res.writeHead(200, { 'content-length': String(bytes.length), 'docker-content-digest': digest });
      res.write(bytes.subarray(0, 10));
      res.on('close', () => (closedAt ??= Date.now()));
      return true;
    }
    if (req.method === 'GET' && /\/blobs\//.test(req.url ?? '')) {
      configGets++;
      await waitFor(() => gets >= 1 && configGets >= configs, 5000);
    }
    return false;
  };
  return { digest, size: bytes.length, closed: () => closedAt, gets: () => gets };
}

describe('a scan whose config cannot be read', () => {
  it('stops reading the layers only it wanted', async () => {
    const layer = heldLayer(1);
    const arm = image(layer.digest, layer.size, 'arm64', false);
    reg.putManifest('app', 'v1', JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: MANIFEST, digest: arm, size: reg.manifests.get('app')!.get(arm)!.bytes.length, platform: { os: 'linux', architecture: 'arm64' } }] }), INDEX);
    const c = new RegistryClient({ attempts: 1 });
    try {
      await expect(verifyReference(c, parseReference(`${reg.addr}/app:v1`), { staticOnly: true, timeoutMs: 10_000 })).rejects.toThrow(/config|404|unknown/i);
      const failed = Date.now();
      expect(layer.gets()).toBe(1); // it was being read beside the config
      await waitFor(() => layer.closed() !== undefined, 3000);
      expect(layer.closed(), 'the held layer read was ended by the client').toBeDefined();
      expect(layer.closed()! - failed).toBeLessThan(3000);
    } finally {
      await c.close();
    }
  });

  it('leaves a layer read another image still waits for', async () => {
    const layer = heldLayer(2);
    const arm = image(layer.digest, layer.size, 'arm64', false);
    const amd = image(layer.digest, layer.size, 'amd64', true);
    const entry = (d: string, arch: string) => ({ mediaType: MANIFEST, digest: d, size: reg.manifests.get('app')!.get(d)!.bytes.length, platform: { os: 'linux', architecture: arch } });
    reg.putManifest('app', 'v2', JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [entry(arm, 'arm64'), entry(amd, 'amd64')] }), INDEX);
    const c = new RegistryClient({ attempts: 1 });
    try {
      await expect(verifyReference(c, parseReference(`${reg.addr}/app:v2`), { staticOnly: true, timeoutMs: 10_000 })).rejects.toThrow(/config|404|unknown/i);
      expect(layer.gets()).toBe(1); // one read for both images
      await new Promise((r) => setTimeout(r, 700));
      expect(layer.closed(), 'the shared read goes on for the amd64 image').toBeUndefined();
    } finally {
      await c.close();
    }
  });
});
