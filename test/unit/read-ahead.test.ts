// Base layers read ahead into the layer cache (verify/layers.ts readAhead): a later scan of an
// image with that layer takes it from there, one that starts while the read is under way waits
// for it (the layer is read once), and one whose read ahead failed reads the layer itself.
// Against the in-process registry stub.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { LayerCache } from '../../src/verify/layer-cache.js';
import { readAhead, scanImage } from '../../src/verify/layers.js';
import { startRegistryStub, type RegistryStub } from '../helpers/registry-stub.js';
import { ustarHeader } from '../helpers/ustar.mjs';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let reg: RegistryStub;
let dir: string;
let client: RegistryClient;
beforeEach(async () => {
  reg = await startRegistryStub();
  dir = mkdtempSync(join(tmpdir(), 'cb-read-ahead-'));
  client = new RegistryClient({ attempts: 1 });
});
afterEach(async () => {
  await client.close();
  await reg.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A gzip'd tar of one file; its descriptor, stored in the stub. */
function layer(name: string, body: string) {
  const data = Buffer.from(body);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  const bytes = gzipSync(Buffer.concat([ustarHeader(name, data.length), data, pad, Buffer.alloc(1024)]));
  return { mediaType: LAYER, digest: reg.putBlob(bytes), size: bytes.length };
}
const blobGets = (digest: string) => reg.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`));

describe('readAhead', () => {
  it("puts the base's layer in the cache: the scan of an image built on it reads only its own layer", async () => {
    const base = layer('etc/base', 'base\n');
    const top = layer('etc/top', 'top\n');
    const cache = new LayerCache(dir);
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(1);
    const scan = await scanImage(client, reg.addr, 'app', [base, top], { cache });
    expect(scan.fromCache).toBe(1);
    expect(blobGets(base.digest).map((r) => r.path)).toEqual([`/v2/base/blobs/${base.digest}`]);
    expect(blobGets(top.digest).map((r) => r.path)).toEqual([`/v2/app/blobs/${top.digest}`]);
    expect(scan.fs.resolve('/etc/base').status).not.toBe('absent');
    expect(scan.fs.resolve('/etc/top').status).not.toBe('absent');
    // Already there: nothing is read again.
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(0);
  });

  it('a scan that starts while the layer is read ahead waits for that read', async () => {
    const base = layer('etc/base', 'base\n');
    const cache = new LayerCache(dir);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    reg.fault = async (req) => {
      if (req.url === `/v2/base/blobs/${base.digest}`) await held;
      return false;
    };
    const ahead = readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal);
    while (blobGets(base.digest).length === 0) await new Promise((r) => setTimeout(r, 10));
    const scan = scanImage(client, reg.addr, 'app', [base], { cache });
    await new Promise((r) => setTimeout(r, 100));
    release();
    const [n, s] = await Promise.all([ahead, scan]);
    expect(n).toBe(1);
    expect(s.fromCache).toBe(1);
    expect(blobGets(base.digest)).toHaveLength(1);
  });

  it('a read ahead that failed leaves the layer to the scan, which reads it itself', async () => {
    const base = layer('etc/base', 'base\n');
    const cache = new LayerCache(dir);
    reg.fault = (req, res) => {
      if (req.url !== `/v2/base/blobs/${base.digest}`) return false;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
      return true;
    };
    expect(await readAhead(client, reg.addr, 'base', [base], cache, new AbortController().signal)).toBe(0);
    const scan = await scanImage(client, reg.addr, 'app', [base], { cache });
    expect(scan.fromCache).toBe(0);
    expect(blobGets(base.digest).map((r) => r.path)).toEqual([`/v2/base/blobs/${base.digest}`, `/v2/app/blobs/${base.digest}`]);
  });
});
