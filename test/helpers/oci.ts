// OCI helpers tests and bench share: digests, the platform formatter, and reading what a registry
// serves over its HTTP API (plain HTTP on loopback), without crossbuild's own client.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

export const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }[];
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

export { ustarHeader } from './ustar.mjs';

async function pushBlob(registry: string, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha(bytes);
  const start = await fetch(`http://${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload to ${repository}: ${start.status}`);
  const url = new URL(start.headers.get('location')!, `http://${registry}`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`upload of ${digest} to ${repository}: ${put.status}`);
  return digest;
}

/**
 * Push a one-layer OCI image made from a tar (gzipped here) to a plain-HTTP registry, over the
 * distribution API directly, so tests make their fixtures without crossbuild's own client.
 */
export async function pushTestImage(ref: string, tar: Buffer, config: { architecture: string; os: string; variant?: string; cmd?: string[] }): Promise<string> {
  const { registry, repository, reference } = split(ref);
  const { gzipSync } = await import('node:zlib');
  const gz = gzipSync(tar);
  const cfg = Buffer.from(JSON.stringify({ architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}), config: { Cmd: config.cmd ?? ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [sha(tar)] } }));
  const [layerDigest, cfgDigest] = await Promise.all([pushBlob(registry, repository, gz), pushBlob(registry, repository, cfg)]);
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const man = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: gz.length }] }));
  const put = await fetch(`http://${registry}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: new Uint8Array(man), headers: { 'content-type': mediaType } });
  if (put.status !== 201) throw new Error(`manifest ${ref}: ${put.status} ${await put.text()}`);
  return sha(man);
}

/** A list entry as the tests read it. */
export interface Entry {
  readonly digest: string;
  readonly mediaType?: string;
  readonly platform?: { os: string; architecture: string; variant?: string };
  readonly annotations?: Record<string, string>;
}

/** The image entries of a list: what is left without buildx's attestation manifests. */
export function imageEntries<T extends Entry>(manifests: readonly T[]): T[] {
  return manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
}

/** The attestation entries of a list, each with the image digest it describes. */
export function attestationEntries<T extends Entry>(manifests: readonly T[]): T[] {
  return manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest');
}
