// An OCI image layout on disk (what `buildx build --output type=oci,tar=false` writes), pushed by
// digest: every blob, then each manifest, then the index on top — no tag is written, so nothing
// is published until the caller moves one. Bytes are checked against their digests on the way.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CrossbuildError } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import type { ImageRef } from '../oci/reference.js';
import { ATTESTATION_MANIFEST, ATTESTATION_REF_TYPE, isIndexMediaType } from '../oci/types.js';
import { limiter } from '../util/limit.js';
import type { RegistryClient } from './client.js';

export interface LayoutDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

function blobPath(dir: string, digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new CrossbuildError(`${dir}: not a sha256 digest: ${digest}`);
  return join(dir, 'blobs', 'sha256', m[1]!);
}

function descriptors(value: unknown, where: string): LayoutDescriptor[] {
  if (!Array.isArray(value)) throw new CrossbuildError(`${where}: expected a list of descriptors`);
  return value.map((d: unknown, i) => {
    const x = d as Partial<LayoutDescriptor> | null;
    if (!x || typeof x.mediaType !== 'string' || typeof x.digest !== 'string' || typeof x.size !== 'number') throw new CrossbuildError(`${where}[${i}]: not a descriptor (mediaType, digest, size)`);
    return { mediaType: x.mediaType, digest: x.digest, size: x.size };
  });
}

/** A JSON blob of the layout (a manifest, an index, a config), its bytes checked against its digest. */
async function readJson<T>(dir: string, d: Pick<LayoutDescriptor, 'digest'>, what = 'manifest'): Promise<{ bytes: Buffer; json: T }> {
  const bytes = await readFile(blobPath(dir, d.digest));
  if (sha256Digest(bytes) !== d.digest) throw new CrossbuildError(`${dir}: ${what} ${d.digest} does not hash to its digest`);
  return { bytes, json: JSON.parse(bytes.toString('utf8')) as T };
}

/** The layout's one top-level entry, pushed whole by digest; what was pushed. */
export async function pushLayout(client: RegistryClient, image: ImageRef, dir: string, opts: { parallel?: number } = {}): Promise<LayoutDescriptor> {
  const { registry, repository } = image;
  const top = await layoutTop(dir);
  const slots = limiter(opts.parallel ?? 8);
  const blobs = new Map<string, Promise<unknown>>();

  const pushBlob = (d: LayoutDescriptor): Promise<unknown> => {
    let p = blobs.get(d.digest);
    if (!p) {
      const file = blobPath(dir, d.digest);
      p = slots(async () => {
        const size = (await stat(file)).size;
        if (size !== d.size) throw new CrossbuildError(`${file}: ${size} bytes, its descriptor says ${d.size}`);
        return client.pushBlob(registry, repository, d.digest, d.size, () => createReadStream(file));
      });
      blobs.set(d.digest, p);
    }
    return p;
  };

  // Children before parents: a registry refuses a manifest whose blobs or entries it lacks.
  const push = async (d: LayoutDescriptor): Promise<void> => {
    const m = await readJson<Record<string, unknown>>(dir, d);
    if (isIndexMediaType(d.mediaType)) {
      await Promise.all(descriptors(m.json.manifests, `${d.digest} manifests`).map(push));
    } else {
      const config = descriptors([m.json.config], `${d.digest} config`);
      await Promise.all([...config, ...descriptors(m.json.layers ?? [], `${d.digest} layers`)].map(pushBlob));
    }
    await client.putManifest(registry, repository, d.digest, m.bytes, d.mediaType);
  };
  await push(top);
  return top;
}

/** One platform's image in a layout: its manifest's descriptor and its config's platform fields. */
export interface LayoutImage extends LayoutDescriptor {
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant?: string };
  readonly config: { readonly os: string; readonly architecture: string; readonly variant?: string };
  /** Its config has ONBUILD triggers (a build FROM it runs them; `docker run` does not). */
  readonly onBuild: boolean;
}

/**
 * The images of a layout's top-level entry (attestations left out), each with its config read
 * from disk: every image of an index, or the one image when the top is an image (one platform
 * without attestations). An entry without a platform takes its config's.
 */
export async function layoutImages(dir: string, top: LayoutDescriptor): Promise<LayoutImage[]> {
  type Entry = LayoutDescriptor & { platform?: LayoutImage['platform']; annotations?: Record<string, string> };
  const entries: Entry[] = isIndexMediaType(top.mediaType) ? ((await readJson<{ manifests?: Entry[] }>(dir, top, 'index')).json.manifests ?? []) : [top];
  const out: LayoutImage[] = [];
  for (const d of entries) {
    if (d.annotations?.[ATTESTATION_REF_TYPE] === ATTESTATION_MANIFEST || d.platform?.os === 'unknown') continue;
    const manifest = (await readJson<{ config?: LayoutDescriptor }>(dir, d)).json;
    if (!manifest.config) continue;
    const c = (await readJson<LayoutImage['config'] & { config?: { OnBuild?: unknown[] | null } }>(dir, manifest.config, 'config')).json;
    const config = { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) };
    out.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, platform: d.platform ?? config, config, onBuild: (c.config?.OnBuild ?? []).length > 0 });
  }
  return out;
}

/** The layout's one top-level entry. */
export async function layoutTop(dir: string): Promise<LayoutDescriptor> {
  const top = descriptors((JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: unknown }).manifests, `${dir}/index.json manifests`);
  if (top.length !== 1) throw new CrossbuildError(`${dir}/index.json: expected one image or index, found ${top.length}`);
  return top[0]!;
}
