// Where a manifest list is written: one publisher for `run`, `merge` and `seed`. The list is
// assembled (oci/list.ts), PUT by tag, then read back the strongest way the API allows — the tag
// must serve exactly these bytes and every entry must resolve by digest in the repository — so
// nobody is told "Digest: …" for a list the registry does not hold.
import { CrossbuildError } from '../errors.js';
import { buildList, type ListEntry } from '../oci/list.js';
import { formatReference, withTag, type ImageRef } from '../oci/reference.js';
import type { ListKind } from '../oci/types.js';
import type { RegistryClient } from './client.js';

export interface PublishedList {
  readonly ref: string;
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  /** Entries a Docker list cannot carry (attestations), left out. */
  readonly dropped: readonly ListEntry[];
}

export async function publishList(
  client: RegistryClient,
  image: ImageRef,
  tag: string,
  kind: ListKind,
  entries: readonly ListEntry[],
  opts: { annotations?: Record<string, string> } = {},
): Promise<PublishedList> {
  const list = buildList(kind, entries, opts);
  const { registry, repository } = image;
  const ref = formatReference(withTag(image, tag));
  const digest = await client.putManifest(registry, repository, tag, list.bytes, list.mediaType);
  // Read back: a registry that answered 201 but stored nothing (or something else) is named.
  const back = await client.manifest(registry, repository, tag).catch((e: unknown) => {
    throw new CrossbuildError(`read back: ${ref} was accepted (${digest}) but reading it back failed: ${(e as Error).message}`, { cause: e });
  });
  if (back.descriptor.digest !== digest) throw new CrossbuildError(`read back: ${ref} serves ${back.descriptor.digest}, not the list just written (${digest})`);
  if (back.kind !== 'index') throw new CrossbuildError(`read back: ${ref} serves a single image, not the list just written`);
  const written = new Set(back.index.manifests.map((m) => m.digest));
  await Promise.all(
    entries
      .filter((e) => !list.dropped.includes(e))
      .map(async (e) => {
        if (!written.has(e.digest)) throw new CrossbuildError(`read back: ${ref} has no entry ${e.digest}`);
        const head = await client.headManifest(registry, repository, e.digest);
        if (!head || head.digest !== e.digest) throw new CrossbuildError(`read back: entry ${e.digest} of ${ref} does not resolve in ${repository}`);
      }),
  );
  return { ref, digest, size: list.size, mediaType: list.mediaType, dropped: list.dropped };
}
