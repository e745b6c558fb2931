// OCI helpers tests and bench share: digests, the platform formatter, and reading what a registry
// serves over its HTTP API (plain HTTP on loopback), without crossbuild's own client.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

export const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string; variant?: string } }[];
}

export const platformOf = (p: { os: string; architecture: string; variant?: string }): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

function split(ref: string): { registry: string; repository: string; reference: string } {
  const slash = ref.indexOf('/');
  const registry = ref.slice(0, slash);
  const rest = ref.slice(slash + 1);
  const at = rest.indexOf('@');
  if (at >= 0) return { registry, repository: rest.slice(0, at), reference: rest.slice(at + 1) };
  const colon = rest.lastIndexOf(':');
  return { registry, repository: rest.slice(0, colon), reference: rest.slice(colon + 1) };
}

async function get(url: string, accept?: string): Promise<Buffer> {
  const r = await fetch(url, accept ? { headers: { Accept: accept } } : {});
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

/** Every layer of every image a tag names (a list's children too), uncompressed. */
export async function registryLayers(ref: string): Promise<Buffer[]> {
  const { registry, repository, reference } = split(ref);
  const base = `http://${registry}/v2/${repository}`;
  const top = JSON.parse((await get(`${base}/manifests/${reference}`, ACCEPT)).toString()) as { manifests?: { digest: string }[]; layers?: { digest: string }[] };
  const manifests = top.manifests ? await Promise.all(top.manifests.map(async (m) => JSON.parse((await get(`${base}/manifests/${m.digest}`, ACCEPT)).toString()) as { layers: { digest: string }[] })) : [top as { layers: { digest: string }[] }];
  const digests = [...new Set(manifests.flatMap((m) => m.layers.map((l) => l.digest)))];
  return Promise.all(
    digests.map(async (d) => {
      const blob = await get(`${base}/blobs/${d}`);
      return blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
    }),
  );
}
