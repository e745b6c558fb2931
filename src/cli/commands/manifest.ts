// `crossbuild manifest push from-spec|from-args` and `crossbuild manifest inspect`.
import { UsageError } from '../../errors.js';
import { planList, pushList, describeEntry } from '../../manifest/assemble.js';
import { checkSpecPlatform, expandTemplate, loadSpec, type SpecChild } from '../../manifest/spec.js';
import { isAttestation, type ListKind } from '../../oci/types.js';
import { formatPlatform } from '../../platform/platform.js';
import type { RegistryClient } from '../../registry/client.js';
import { formatReference, manifestReference, parseReference, type ImageRef } from '../../oci/reference.js';
import { clientFromFlags, parseKeyValues, platformsFromFlags, printJson, type RegistryFlags } from '../common.js';
import { OK, type Outcome } from '../failure.js';

interface PushFlags extends RegistryFlags {
  type: ListKind;
  ignoreMissing?: boolean;
  json?: boolean;
}


async function pushAndReport(client: RegistryClient, target: ImageRef, children: SpecChild[], flags: PushFlags, tags: readonly string[], annotations: Record<string, string>): Promise<void> {
  if (Object.keys(annotations).length > 0 && flags.type !== 'oci') throw new UsageError('annotations need an OCI index: add --type oci');
  const opts = Object.keys(annotations).length > 0 ? { annotations } : {};
  const plan = await planList(client, target, children, flags.type, { ignoreMissing: flags.ignoreMissing === true, ...opts });
  const res = await pushList(client, target, plan, { tags });
  if (flags.json) {
    printJson({ ref: formatReference(target), digest: res.digest, size: res.size, mediaType: res.mediaType, tags: res.tags, warnings: res.warnings, entries: plan.entries, copied: res.copied });
    return;
  }
  for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const e of plan.entries) process.stderr.write(`  ${describeEntry(e)}\n`);
  if (res.copied.manifests > 0) process.stderr.write(`brought ${res.copied.manifests} manifest(s) into ${target.repository}: ${res.copied.mounted} blob(s) mounted, ${res.copied.copied} copied, ${res.copied.existed} already there\n`);
  process.stdout.write(`Digest: ${res.digest} ${res.size}\n`);
}

export async function pushFromSpec(file: string, flags: PushFlags): Promise<Outcome> {
  const spec = loadSpec(file);
  const client = clientFromFlags(flags, spec.target.registry);
  try {
    await pushAndReport(client, spec.target, [...spec.children], flags, spec.tags, { ...spec.annotations });
    return OK;
  } finally {
    await client.close();
  }
}

export async function pushFromArgs(flags: PushFlags & { platform?: string[]; platforms?: string[]; template: string; target: string; tags?: string; annotations?: string[] }): Promise<Outcome> {
  const platforms = platformsFromFlags([...(flags.platform ?? []), ...(flags.platforms ?? [])], '--platform');
  if (!platforms) throw new UsageError('--platform is required: the platforms of the list, e.g. --platform linux/amd64,linux/arm/v7');
  const target = parseReference(flags.target, '--target');
  if (target.digest) throw new UsageError(`--target ${flags.target}: must be a tag, not a digest`);
  if (!/OS|ARCH|VARIANT/.test(flags.template)) throw new UsageError(`--template ${flags.template}: needs at least one of the placeholders OS, ARCH, VARIANT, ARCHVARIANT`);
  const children: SpecChild[] = platforms.map((p, i) => {
    const text = expandTemplate(flags.template, p);
    return {
      text,
      ref: parseReference(text, `--template (for ${formatPlatform(p)})`),
      platform: checkSpecPlatform({ os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) }, '--platforms', `[${i}]`),
      field: `--platforms[${i}] ${formatPlatform(p)}`,
    };
  });
  const tags = (flags.tags ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  const client = clientFromFlags(flags, target.registry);
  try {
    await pushAndReport(client, target, children, flags, tags, parseKeyValues((flags.annotations ?? []).flatMap((x) => x.split(',')), '--annotations'));
    return OK;
  } finally {
    await client.close();
  }
}

export async function inspect(refText: string, flags: RegistryFlags & { raw?: boolean; json?: boolean }): Promise<Outcome> {
  const ref = parseReference(refText, 'reference');
  const client = clientFromFlags(flags, ref.registry);
  try {
    if (flags.raw) {
      // The bytes as served (checked against their digest), whatever they are.
      process.stdout.write((await client.getManifest(ref.registry, ref.repository, manifestReference(ref))).bytes);
      return OK;
    }
    const m = await client.manifest(ref.registry, ref.repository, manifestReference(ref));
    const head = { ref: formatReference(ref), ...m.descriptor };
    if (m.kind === 'index') {
      const idx = m.index;
      const rows = idx.manifests.map((d) => ({
        platform: d.platform ? formatPlatform(d.platform) : '',
        ...(d.platform?.['os.version'] ? { osVersion: d.platform['os.version'] } : {}),
        digest: d.digest,
        size: d.size,
        mediaType: d.mediaType,
        attestation: isAttestation(d),
        ...(d.annotations ? { annotations: d.annotations } : {}),
      }));
      if (flags.json) {
        printJson({ ...head, manifests: rows, ...(idx.annotations ? { annotations: idx.annotations } : {}) });
        return OK;
      }
      process.stdout.write(`Name:      ${head.ref}\nMediaType: ${head.mediaType}\nDigest:    ${head.digest}\nSize:      ${head.size}\n\n`);
      const w = Math.max(8, ...rows.map((r) => r.platform.length));
      process.stdout.write(`${'PLATFORM'.padEnd(w)}  ${'DIGEST'.padEnd(71)}  ${'SIZE'.padStart(6)}  ${'ATTESTATION'.padEnd(11)}  MEDIA TYPE\n`);
      for (const r of rows) process.stdout.write(`${r.platform.padEnd(w)}  ${r.digest.padEnd(71)}  ${String(r.size).padStart(6)}  ${(r.attestation ? 'yes' : 'no').padEnd(11)}  ${r.mediaType}\n`);
      return OK;
    }
    const man = m.manifest;
    // An artifact's "config" need not be an image config: its platform is then unknown.
    const platform = await client.config(ref.registry, ref.repository, man).then(formatPlatform, () => 'unknown');
    const layers = man.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
    if (flags.json) {
      printJson({ ...head, platform, config: { digest: man.config.digest, size: man.config.size, mediaType: man.config.mediaType }, layers });
      return OK;
    }
    process.stdout.write(`Name:      ${head.ref}\nMediaType: ${head.mediaType}\nDigest:    ${head.digest}\nSize:      ${head.size}\nPlatform:  ${platform} (from the image config)\nConfig:    ${man.config.digest}\nLayers:\n`);
    for (const l of layers) process.stdout.write(`  ${l.digest}  ${String(l.size).padStart(10)}  ${l.mediaType}\n`);
    return OK;
  } finally {
    await client.close();
  }
}
