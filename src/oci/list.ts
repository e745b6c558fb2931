// Building manifest lists / OCI indexes: the one place crossbuild assembles one.
import { UsageError } from '../errors.js';
import { formatPlatform, normalizeLenient, samePlatform, type Platform } from '../platform/platform.js';
import { sha256Digest } from './digest.js';
import {
  LIST_MEDIA_TYPE,
  isAttestation,
  type Descriptor,
  type ListKind,
  type OciPlatform,
} from './types.js';

export interface ListEntry {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  /** Absent for attestation entries, which carry unknown/unknown. */
  readonly platform?: OciPlatform;
  readonly annotations?: Record<string, string>;
}

export interface BuiltList {
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly digest: string;
  readonly size: number;
  readonly json: Record<string, unknown>;
}

/** `--type` as given, else what buildx writes: an OCI index when there are attestations to carry. */
export function listKindFor(asked: ListKind | undefined, platforms: readonly { attestations?: readonly unknown[] }[]): ListKind {
  if (asked) return asked;
  return platforms.some((p) => (p.attestations?.length ?? 0) > 0) ? 'oci' : 'docker';
}

const toPlatform = (p: OciPlatform): Platform => normalizeLenient(p);

/**
 * Assemble a Docker manifest list or an OCI index. Images come first in the given order,
 * attestations after them; two images for one platform are an error. Docker lists can't carry
 * annotations or attestations: the caller is told which entries were dropped.
 */
export function buildList(
  kind: ListKind,
  entries: readonly ListEntry[],
  opts: { annotations?: Record<string, string> } = {},
): BuiltList & { dropped: ListEntry[] } {
  const images = entries.filter((e) => !isAttestation(e as Descriptor));
  const attestations = entries.filter((e) => isAttestation(e as Descriptor));
  for (let i = 0; i < images.length; i++) {
    const a = images[i]!;
    if (!a.platform) throw new UsageError(`manifest ${a.digest} has no platform`);
    for (let j = 0; j < i; j++) {
      const b = images[j]!;
      if (b.platform && samePlatform(toPlatform(a.platform), toPlatform(b.platform)) && (a.platform['os.version'] ?? '') === (b.platform['os.version'] ?? '')) {
        throw new UsageError(`duplicate platform ${formatPlatform(toPlatform(a.platform))}: ${b.digest} and ${a.digest}`);
      }
    }
  }
  const dropped: ListEntry[] = kind === 'docker' ? attestations : [];
  const kept = kind === 'docker' ? images : [...images, ...attestations];
  const manifests = kept.map((e) => descriptorFor(kind, e));
  const json: Record<string, unknown> = { schemaVersion: 2, mediaType: LIST_MEDIA_TYPE[kind], manifests };
  if (kind === 'oci' && opts.annotations && Object.keys(opts.annotations).length > 0) json.annotations = opts.annotations;
  if (kind === 'docker' && opts.annotations && Object.keys(opts.annotations).length > 0) {
    throw new UsageError('annotations need an OCI index: use --type oci');
  }
  const bytes = Buffer.from(JSON.stringify(json, null, 3));
  return { mediaType: LIST_MEDIA_TYPE[kind], bytes, digest: sha256Digest(bytes), size: bytes.length, json, dropped };
}

function descriptorFor(kind: ListKind, e: ListEntry): Record<string, unknown> {
  const d: Record<string, unknown> = { mediaType: e.mediaType, digest: e.digest, size: e.size };
  if (e.platform) {
    const p: Record<string, unknown> = { architecture: e.platform.architecture, os: e.platform.os };
    if (e.platform['os.version']) p['os.version'] = e.platform['os.version'];
    if (e.platform['os.features']?.length) p['os.features'] = e.platform['os.features'];
    if (e.platform.variant) p.variant = e.platform.variant;
    // `features` is Docker-only (and reserved in OCI).
    if (kind === 'docker' && e.platform.features?.length) p.features = e.platform.features;
    d.platform = p;
  }
  if (kind === 'oci' && e.annotations && Object.keys(e.annotations).length > 0) d.annotations = e.annotations;
  return d;
}
