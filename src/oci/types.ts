// OCI image-spec and Docker schema2 types, mirroring the specs, with runtime schemas (zod) for
// everything read from a registry: a registry's bytes are input like any other.
import { z, type Infer } from '../util/zod.js';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciNondistributableLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
} as const;

/** What we send in Accept for every manifest request: both lists and both single manifests. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
] as const;

export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];

/** The media type of each kind of list crossbuild writes (--type docker|oci). */
export const LIST_MEDIA_TYPE = { docker: MediaType.DockerManifestList, oci: MediaType.OciIndex } as const;
export type ListKind = keyof typeof LIST_MEDIA_TYPE;

/** buildx marks attestation manifests with this annotation (and platform unknown/unknown). */
export const ATTESTATION_REF_TYPE = 'vnd.docker.reference.type';
export const ATTESTATION_MANIFEST = 'attestation-manifest';
/** …and names the image it describes with this one. */
export const ATTESTATION_REF_DIGEST = 'vnd.docker.reference.digest';

const digestRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

const optString = () => z.optional(z.string());
const optStrings = () => z.optional(z.array(z.string()));
const optAnnotations = () => z.optional(z.record(z.string(), z.string()));

export const PlatformSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  'os.version': optString(),
  'os.features': optStrings(),
  variant: optString(),
  features: optStrings(),
});
export type OciPlatform = Infer<typeof PlatformSchema>;

export const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest: z.string().check(z.regex(digestRe)),
  size: z.number().check(z.int(), z.nonnegative()),
  urls: optStrings(),
  annotations: optAnnotations(),
  platform: z.optional(PlatformSchema),
  artifactType: optString(),
});
export type Descriptor = Infer<typeof DescriptorSchema>;

export const ImageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: optString(),
  artifactType: optString(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: z.optional(DescriptorSchema),
  annotations: optAnnotations(),
});
export type ImageManifest = Infer<typeof ImageManifestSchema>;

export const ImageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: optString(),
  artifactType: optString(),
  manifests: z.array(DescriptorSchema),
  subject: z.optional(DescriptorSchema),
  annotations: optAnnotations(),
});
export type ImageIndex = Infer<typeof ImageIndexSchema>;

export const ImageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: optString(),
  'os.version': optString(),
  'os.features': optStrings(),
  created: optString(),
  config: z.nullish(
    z.looseObject({
      Entrypoint: z.nullish(z.array(z.string())),
      Cmd: z.nullish(z.array(z.string())),
      Env: z.nullish(z.array(z.string())),
      WorkingDir: z.nullish(z.string()),
      User: z.nullish(z.string()),
    }),
  ),
  rootfs: z.object({ type: z.string(), diff_ids: z.array(z.string()) }),
  history: z.optional(z.array(z.record(z.string(), z.unknown()))),
});
export type ImageConfig = Infer<typeof ImageConfigSchema>;

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt !== undefined && INDEX_MEDIA_TYPES.includes(mt);
}

export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.[ATTESTATION_REF_TYPE] === ATTESTATION_MANIFEST;
}
