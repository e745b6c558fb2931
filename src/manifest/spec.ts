// manifest-tool's YAML spec, unchanged: image, tags, annotations, manifests[].image/platform.
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { z } from '../util/zod.js';
import { ConfigError } from '../errors.js';
import { configErrorFromZod } from '../util/schema-error.js';
import { normalizeArch, normalizeOs, PlatformError } from '../platform/platform.js';
import { parseReference, type ImageRef } from '../oci/reference.js';

export interface SpecPlatform {
  architecture?: string;
  os?: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
  features?: string[];
}

export interface SpecChild {
  readonly text: string;
  readonly ref: ImageRef;
  readonly platform: SpecPlatform;
  /** Where it sits in the file, for messages: manifests[2]. */
  readonly field: string;
}

export interface ManifestSpec {
  readonly target: ImageRef;
  readonly tags: readonly string[];
  readonly annotations: Readonly<Record<string, string>>;
  readonly children: readonly SpecChild[];
}

const PlatformYaml = z.strictObject({
  architecture: z.optional(z.string()),
  os: z.optional(z.string()),
  variant: z.optional(z.string()),
  osversion: z.optional(z.string()),
  osfeatures: z.optional(z.array(z.string())),
  features: z.optional(z.array(z.string())),
});

const SpecYaml = z.strictObject({
  image: z.string({ error: 'required: the target reference of the list, e.g. registry/app:tag' }),
  tags: z.optional(z.array(z.string())),
  annotations: z.optional(z.record(z.string(), z.string())),
  manifests: z
    .array(z.strictObject({ image: z.string({ error: 'required: the reference of this image' }), platform: z.optional(PlatformYaml) }), {
      error: 'required: a list of {image, platform}',
    })
    .check(z.minLength(1, { error: 'must list at least one image' })),
});

/** Normalise and check the platform fields given in the spec; missing ones stay missing (taken from the config later). */
export function checkSpecPlatform(p: SpecPlatform, file: string, field: string): SpecPlatform {
  const out: SpecPlatform = { ...p };
  try {
    if (p.os !== undefined) out.os = normalizeOs(p.os);
  } catch (e) {
    if (e instanceof PlatformError) throw new ConfigError(file, `${field}.platform.os`, e.message);
    throw e;
  }
  if (p.architecture !== undefined) {
    try {
      const n = normalizeArch(p.architecture, p.variant ?? '');
      out.architecture = n.architecture;
      if (n.variant) out.variant = n.variant;
      else delete out.variant;
    } catch (e) {
      if (e instanceof PlatformError) {
        const sub = /variant/.test(e.message) ? 'variant' : 'architecture';
        throw new ConfigError(file, `${field}.platform.${sub}`, e.message);
      }
      throw e;
    }
  } else if (p.variant !== undefined) {
    throw new ConfigError(file, `${field}.platform.variant`, 'a variant needs an architecture');
  }
  return out;
}

export function parseSpecText(text: string, file: string): ManifestSpec {
  let raw: unknown;
  try {
    raw = yaml.load(text, { filename: file });
  } catch (e) {
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? (e as Error).message;
    throw new ConfigError(file, '', `not valid YAML: ${reason}${mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : ''}`);
  }
  const parsed = SpecYaml.safeParse(raw ?? {});
  if (!parsed.success) {
    throw configErrorFromZod(file, parsed.error, (path) =>
      path.length === 0 ? 'image, tags, annotations, manifests' : path.at(-1) === 'platform' ? 'architecture, os, variant, osversion, osfeatures, features' : 'image, platform',
    );
  }
  const s = parsed.data;
  const ref = (text: string, field: string): ImageRef => {
    try {
      return parseReference(text, field);
    } catch (e) {
      throw new ConfigError(file, field, (e as Error).message);
    }
  };
  const target = ref(s.image, 'image');
  if (target.digest) throw new ConfigError(file, 'image', `the target "${s.image}" must be a tag, not a digest`);
  const children = s.manifests.map((m, i) => {
    const field = `manifests[${i}]`;
    const p = m.platform ?? {};
    const platform = checkSpecPlatform(
      {
        ...(p.architecture !== undefined ? { architecture: p.architecture } : {}),
        ...(p.os !== undefined ? { os: p.os } : {}),
        ...(p.variant !== undefined ? { variant: p.variant } : {}),
        ...(p.osversion !== undefined ? { osVersion: p.osversion } : {}),
        ...(p.osfeatures !== undefined ? { osFeatures: p.osfeatures } : {}),
        ...(p.features !== undefined ? { features: p.features } : {}),
      },
      file,
      field,
    );
    return { text: m.image, ref: ref(m.image, `${field}.image`), platform, field };
  });
  for (const t of s.tags ?? []) ref(`${target.registry}/${target.repository}:${t}`, 'tags');
  return { target, tags: s.tags ?? [], annotations: s.annotations ?? {}, children };
}

export function loadSpec(file: string): ManifestSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSpecText(text, file);
}

/** manifest-tool's from-args template: OS, ARCH, VARIANT and ARCHVARIANT placeholders. */
export function expandTemplate(template: string, p: { os: string; architecture: string; variant?: string }): string {
  return template
    .replaceAll('ARCHVARIANT', `${p.architecture}${p.variant ?? ''}`)
    .replaceAll('ARCH', p.architecture)
    .replaceAll('VARIANT', p.variant ?? '')
    .replaceAll('OS', p.os);
}
