// Where a manifest list is written: one publisher for `run`, `merge` and `seed`. The list is
// assembled (oci/list.ts), PUT by tag, then read back the strongest way the API allows — the tag
// must serve exactly these bytes and every entry must resolve by digest in the repository — so
// nobody is told "Digest: …" for a list the registry does not hold.
import { CrossbuildError } from '../errors.js';
import { buildList, type ListEntry } from '../oci/list.js';
import { formatReference, withTag, type ImageRef } from '../oci/reference.js';
import type { ListKind } from '../oci/types.js';
import type { ManifestHead, RegistryClient, RemoteManifest } from './client.js';

/** The write was accepted but what the registry then serves is not proven: said as such, never as a failed write. */
export class ReadBackError extends CrossbuildError {}

export interface PublishedList {
  readonly ref: string;
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  /** Entries a Docker list cannot carry (attestations), left out. */
  readonly dropped: readonly ListEntry[];
  /** Another writer moved the tag after ours (our list is stored, by digest): what it serves now. */
  readonly tagMovedTo?: string;
}

export async function publishList(
  client: RegistryClient,
  image: ImageRef,
  tag: string,
  kind: ListKind,
  entries: readonly ListEntry[],
  opts: { annotations?: Record<string, string>; beforeTag?: (digest: string) => Promise<void> } = {},
): Promise<PublishedList> {
  const list = buildList(kind, entries, opts.annotations ? { annotations: opts.annotations } : {});
  const { registry, repository } = image;
  const ref = formatReference(withTag(image, tag));
  if (opts.beforeTag) {
    // Written by digest first, so what must happen before the tag moves (signing it) can.
    await client.putManifest(registry, repository, list.digest, list.bytes, list.mediaType);
    await opts.beforeTag(list.digest);
  }
  const back = await writeListTag(client, image, tag, list, entries.filter((e) => !list.dropped.includes(e)).map((e) => e.digest));
  return { ref, size: list.size, mediaType: list.mediaType, dropped: list.dropped, ...back };
}

/**
 * PUT a built list under `tag` and prove it (readBackList). The entries were written before the
 * list, so whether each resolves is asked while the list goes out, and the tag is read back on
 * the PUT's connection right behind it: one round trip for write and proof where the registry allows.
 */
export async function writeListTag(client: RegistryClient, image: ImageRef, tag: string, list: { bytes: Buffer; mediaType: string }, entries: readonly string[]): Promise<{ digest: string; tagMovedTo?: string }> {
  const { registry, repository } = image;
  const heads = Promise.allSettled(entries.map((d) => client.headManifest(registry, repository, d)));
  const { digest, served } = await client.putManifestAndRead(registry, repository, tag, list.bytes, list.mediaType);
  return { digest, ...(await readBackList(client, image, tag, digest, entries, { served, heads })) };
}

/**
 * The strongest read-back the API allows: the tag serves exactly `digest`, as an index, and every
 * entry resolves by digest in the repository. A registry that answered 201 but stored nothing (or
 * something else) is named as such.
 */
export async function readBackList(
  client: RegistryClient,
  image: ImageRef,
  tag: string,
  digest: string,
  entries: readonly string[],
  asked: { served?: Promise<RemoteManifest>; heads?: Promise<PromiseSettledResult<ManifestHead | undefined>[]> } = {},
): Promise<{ tagMovedTo?: string }> {
  const { registry, repository } = image;
  const ref = formatReference(withTag(image, tag));
  // The tag and every entry are asked at once (or were already, by the writer): one round trip, not two.
  const [tagged, heads] = await Promise.all([
    (asked.served ?? client.manifest(registry, repository, tag)).catch((e: unknown) => {
      throw new ReadBackError(`read back: ${ref} was accepted (${digest}) but the registry does not serve it: ${(e as Error).message}`, { cause: e });
    }),
    asked.heads ?? Promise.allSettled(entries.map((d) => client.headManifest(registry, repository, d))),
  ]);
  let back = tagged;
  let tagMovedTo: string | undefined;
  if (back.descriptor.digest !== digest) {
    // Another writer may have moved the tag since (two runs of one tag): what we wrote must still
    // be stored, by its digest; a registry that stored nothing fails here all the same.
    back = await client.manifest(registry, repository, digest).catch((e: unknown) => {
      throw new ReadBackError(`read back: ${ref} serves ${tagged.descriptor.digest}, not the list just written (${digest}), and ${digest} is not stored: ${(e as Error).message}`, { cause: e });
    });
    if (back.descriptor.digest !== digest) throw new ReadBackError(`read back: ${ref}@${digest} serves ${back.descriptor.digest}`);
    tagMovedTo = tagged.descriptor.digest;
  }
  if (back.kind !== 'index') throw new ReadBackError(`read back: ${ref} serves a single image, not the list just written`);
  const written = new Set(back.index.manifests.map((m) => m.digest));
  entries.forEach((d, i) => {
    if (!written.has(d)) throw new ReadBackError(`read back: ${ref} has no entry ${d}`);
    const h = heads[i]!;
    if (h.status === 'rejected') throw new ReadBackError(`read back: entry ${d} of ${ref}: ${(h.reason as Error).message}`, { cause: h.reason });
    if (!h.value || h.value.digest !== d) throw new ReadBackError(`read back: entry ${d} of ${ref} does not resolve in ${repository}`);
  });
  return tagMovedTo ? { tagMovedTo } : {};
}
