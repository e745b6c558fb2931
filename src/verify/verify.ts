// The verifier: coverage of the target platforms, each child's config against its entry, the
// architecture of its binaries read from the layers (no Docker needed), and optionally `uname -m`
// inside it. `crossbuild verify` and `crossbuild run` (before it writes a list) both use it.
import type { Docker } from '../docker/docker.js';
import { CrossbuildError } from '../errors.js';
import { ATTESTATION_REF_DIGEST, isAttestation, type Descriptor, type ImageConfig } from '../oci/types.js';
import { formatPlatform, normalizeLenient, samePlatform, type Platform } from '../platform/platform.js';
import type { ManifestHead, RegistryClient, RemoteImage, RemoteManifest } from '../registry/client.js';
import { formatReference, manifestReference, type ImageRef } from '../oci/reference.js';
import { worst, type CheckResult, type Verdict } from '../verdict.js';
import { checkMetadata, checkRuntime } from './checks.js';
import { mdCell, verdictIcon } from '../util/markdown.js';
import { judgeBinaries, type BinaryStats } from './binaries.js';
import { scanImage } from './layers.js';
import type { LayerCache } from './layer-cache.js';
import type { TestResult } from '../gate/run.js';

export interface VerifyOptions {
  /** Platforms the tag must cover; absent: whatever it lists. */
  readonly targets?: readonly Platform[];
  /** Per-platform `uname -m` overrides (from platforms.json). */
  readonly uname?: ReadonlyMap<string, string>;
  /** No containers: config and binaries only. */
  readonly staticOnly: boolean;
  readonly docker?: Docker;
  readonly timeoutMs: number;
  /** Paths (globs) whose foreign architecture is legitimate: counted as excused, not failed. */
  readonly allow?: readonly string[];
  /** Layer facts kept by digest; absent: every layer is read from the registry. */
  readonly layerCache?: LayerCache;
}

export interface PlatformReport {
  readonly platform: string;
  readonly digest: string;
  /** Of the manifest checked (absent when it could not be read as an image). */
  readonly mediaType?: string;
  readonly size?: number;
  readonly verdict: Verdict;
  readonly checks: CheckResult[];
  /** What the binaries check read: files, ELF files, mismatches, excused files. */
  readonly files?: BinaryStats;
  /** The image's config digest (its image ID in Docker's classic store). */
  readonly configDigest?: string;
  /** The test gate's results against the published image (verify --test). */
  readonly tests?: TestResult[];
}

export interface VerifyReport {
  readonly ref: string;
  readonly digest: string;
  readonly mediaType: string;
  readonly kind: 'list' | 'manifest';
  readonly ok: boolean;
  readonly coverage: CheckResult[];
  readonly missing: string[];
  readonly extra: string[];
  readonly attestations: string[];
  readonly platforms: PlatformReport[];
}

const platformOf = normalizeLenient;

/**
 * A platform's manifest by digest: the one kept in the layer cache (its bytes hash to the digest),
 * whose still being served is asked beside the layers, not before them (one round trip fewer);
 * else read, and kept. A kept entry that does not type is read again (and kept anew).
 */
async function platformManifest(client: RegistryClient, ref: ImageRef, digest: string, cache: LayerCache | undefined): Promise<{ manifest: RemoteManifest; served?: Promise<void> }> {
  const kept = cache?.manifest(digest);
  if (kept) {
    try {
      const known = client.known(ref.registry, ref.repository, digest, kept);
      known.served.catch(() => undefined); // awaited before any verdict
      return known;
    } catch {
      // read below
    }
  }
  const manifest = await client.manifest(ref.registry, ref.repository, digest);
  cache?.putManifest(digest, manifest.bytes, manifest.descriptor.mediaType);
  return { manifest };
}

/** Verify one image manifest (by digest) against the platform its entry claims. */
export async function verifyImage(client: RegistryClient, ref: ImageRef, digest: string, expected: Platform, opts: VerifyOptions, read?: RemoteImage): Promise<PlatformReport> {
  const platform = formatPlatform(expected);
  const { manifest: m, served } = read ? {} : await platformManifest(client, ref, digest, opts.layerCache);
  if (m?.kind === 'index') {
    await served;
    return { platform, digest, verdict: 'fail', checks: [{ check: 'metadata', verdict: 'fail', evidence: `${digest} is itself a list (${m.descriptor.mediaType}), not an image` }] };
  }
  const image = read ?? { descriptor: m!.descriptor, manifest: m!.manifest, config: client.config(ref.registry, ref.repository, m!.manifest) };
  return judgeImage(client, ref, image, expected, opts, served);
}

/** An image to judge: its config may still be on its way (the layers need only the manifest). */
type ImageToJudge = Omit<RemoteImage, 'config'> & { readonly config: RemoteImage['config'] | Promise<RemoteImage['config']> };

/** `served`: the registry still serves this manifest (a kept one, see verifyImage); no verdict without it. */
async function judgeImage(client: RegistryClient, ref: ImageRef, image: ImageToJudge, expected: Platform, opts: VerifyOptions, served?: Promise<void>): Promise<PlatformReport> {
  const checks: CheckResult[] = [];
  const platform = formatPlatform(expected);
  const { descriptor, manifest: man } = image;
  const digest = descriptor.digest;
  // The whole image: every layer, every ELF file of the final filesystem. The layers are asked
  // for beside the config, not after it: one round trip fewer per platform.
  const unwanted = new AbortController();
  const scanning = scanImage(client, ref.registry, ref.repository, man.layers as Descriptor[], { ...(opts.layerCache ? { cache: opts.layerCache } : {}), signal: unwanted.signal });
  scanning.catch(() => undefined); // a config that fails first ends the judging; the scan's own failure is read below
  let cfg: ImageConfig;
  try {
    [cfg] = await Promise.all([image.config, served]);
  } catch (e) {
    unwanted.abort(); // no verdict without the config: its layers are not read for nothing
    throw e;
  }
  checks.push(checkMetadata(expected, cfg, 'config'));
  let files: BinaryStats | undefined;
  try {
    const scan = await scanning;
    const judged = judgeBinaries(scan.fs, expected, cfg, scan.complete, { ...(opts.allow ? { allow: opts.allow } : {}) });
    checks.push(judged.check);
    files = { ...judged.stats, layers: scan.layers, layersFromCache: scan.fromCache };
  } catch (e) {
    checks.push({ check: 'binaries', verdict: 'fail', evidence: `layers could not be read: ${(e as Error).message}` });
  }
  if (!opts.staticOnly) {
    if (!opts.docker) throw new CrossbuildError('runtime verification needs Docker');
    const staticOk = checks.every((c) => c.verdict !== 'fail');
    const uname = opts.uname?.get(platform);
    const rt = await checkRuntime(opts.docker, `${ref.registry}/${ref.repository}@${digest}`, expected, { ...(uname ? { uname } : {}), timeoutMs: opts.timeoutMs, pull: true });
    // No uname is only a skip when the static check vouched for the binaries.
    checks.push(rt.verdict === 'skip' && !staticOk ? { ...rt, verdict: 'fail' } : rt);
  }
  return { platform, digest, mediaType: descriptor.mediaType, size: descriptor.size, verdict: worst(checks), checks, configDigest: man.config.digest, ...(files ? { files } : {}) };
}

/** An attestation manifest that stands beside an image: its descriptor as the index had it. */
export type AttestationEntry = Descriptor;

/** What a pushed platform digest holds, proven: the image, and the attestations that describe it. */
export interface PushedPlatform extends PlatformReport {
  /** What was pushed: the image itself, or an index of the image and its attestations. */
  readonly pushed: ManifestHead;
  /** The image inside (the pushed digest itself when it is an image). */
  readonly image?: ManifestHead;
  readonly attestations: AttestationEntry[];
}

/**
 * A platform's pushed digest, as buildx pushes it: a single image, or an index holding one image
 * of that platform and attestation manifests (provenance, SBOM) that point at it
 * (`vnd.docker.reference.digest`). The image inside is verified as any other; the attestations
 * are kept for the list. An index without an image of the platform fails, naming what it holds.
 */
export async function verifyPushed(client: RegistryClient, ref: ImageRef, digest: string, expected: Platform, opts: VerifyOptions): Promise<PushedPlatform> {
  const platform = formatPlatform(expected);
  const m = await client.manifest(ref.registry, ref.repository, digest);
  if (m.kind === 'image') {
    const config = client.config(ref.registry, ref.repository, m.manifest);
    const report = await judgeImage(client, ref, { descriptor: m.descriptor, manifest: m.manifest, config }, expected, opts);
    return { ...report, pushed: m.descriptor, image: m.descriptor, attestations: [] };
  }
  const images = m.index.manifests.filter((d) => !isAttestation(d));
  let hit = images.filter((d) => d.platform !== undefined && samePlatform(platformOf(d.platform), expected));
  // buildx writes a one-platform index without its image's platform: the config says it (judged below).
  if (hit.length === 0 && images.length === 1 && images[0]!.platform === undefined) hit = images;
  const fail = (evidence: string): PushedPlatform => ({ platform, digest, verdict: 'fail', checks: [{ check: 'metadata', verdict: 'fail', evidence }], pushed: m.descriptor, attestations: [] });
  if (hit.length !== 1) {
    const held = images.map((d) => (d.platform ? formatPlatform(platformOf(d.platform)) : `${d.digest} without a platform`));
    return fail(`${digest} is an index (${m.descriptor.mediaType}) with ${hit.length === 0 ? `no ${platform} image` : `${hit.length} ${platform} images`} (it holds: ${held.join(', ') || 'no image'})`);
  }
  const entry = hit[0]!;
  const inner = await client.manifest(ref.registry, ref.repository, entry.digest, { size: entry.size });
  if (inner.kind !== 'image') return fail(`${digest}: its ${platform} entry ${entry.digest} is itself a list, not an image`);
  const config = client.config(ref.registry, ref.repository, inner.manifest);
  const report = await judgeImage(client, ref, { descriptor: inner.descriptor, manifest: inner.manifest, config }, expected, opts);
  const attestations = m.index.manifests.filter((d) => isAttestation(d) && d.annotations?.[ATTESTATION_REF_DIGEST] === entry.digest);
  const evidence = attestations.length > 0 ? `; with ${attestations.length} attestation manifest${attestations.length > 1 ? 's' : ''}` : '';
  return {
    ...report,
    checks: report.checks.map((c, i) => (i === 0 ? { ...c, evidence: `${c.evidence} (image ${entry.digest.slice(0, 19)}… in index ${digest.slice(0, 19)}…${evidence})` } : c)),
    pushed: m.descriptor,
    image: inner.descriptor,
    attestations,
  };
}

export async function verifyReference(client: RegistryClient, ref: ImageRef, opts: VerifyOptions): Promise<VerifyReport> {
  const m = await client.manifest(ref.registry, ref.repository, manifestReference(ref));
  const base = { ref: formatReference(ref), digest: m.descriptor.digest, mediaType: m.descriptor.mediaType };
  const coverage: CheckResult[] = [];
  const missing: string[] = [];
  const extra: string[] = [];
  const attestations: string[] = [];
  let jobs: { digest: string; platform: Platform }[] = [];

  let single: RemoteImage | undefined;
  if (m.kind === 'index') {
    const idx = m.index;
    const images: { d: Descriptor; p: Platform }[] = [];
    for (const d of idx.manifests) {
      if (isAttestation(d)) {
        attestations.push(d.digest);
        continue;
      }
      if (!d.platform || d.platform.os === 'unknown' || d.platform.architecture === 'unknown') {
        coverage.push({ check: 'coverage', verdict: 'fail', evidence: `entry ${d.digest} is ${d.platform ? `${d.platform.os}/${d.platform.architecture}` : 'without a platform'} and not marked as an attestation` });
        continue;
      }
      images.push({ d, p: platformOf(d.platform) });
    }
    const targets = opts.targets ?? images.map((i) => i.p);
    for (const t of targets) {
      const hit = images.find((i) => samePlatform(i.p, t));
      if (hit) jobs.push({ digest: hit.d.digest, platform: t });
      else missing.push(formatPlatform(t));
    }
    for (const i of images) if (!targets.some((t) => samePlatform(i.p, t))) extra.push(formatPlatform(i.p));
  } else {
    single = { descriptor: m.descriptor, manifest: m.manifest, config: await client.config(ref.registry, ref.repository, m.manifest) };
    const own = platformOf(single.config);
    const targets = opts.targets ?? [own];
    // A single image can only be one platform: the first target it claims to be, or the first asked.
    const claimed = targets.find((t) => samePlatform(t, own));
    const match = claimed ?? targets[0]!;
    jobs = [{ digest: m.descriptor.digest, platform: match }];
    for (const t of targets) if (t !== match) missing.push(formatPlatform(t));
    // Say what the one image really is: a single linux/arm64 image does not cover linux/amd64.
    if (!claimed) {
      missing.unshift(formatPlatform(match));
      coverage.push({ check: 'coverage', verdict: 'fail', evidence: `a single image whose config says ${formatPlatform(own)}, not a list: it cannot be ${formatPlatform(match)}` });
    }
  }
  if (missing.length > 0) coverage.push({ check: 'coverage', verdict: 'fail', evidence: `missing: ${missing.join(', ')}` });
  if (extra.length > 0) coverage.push({ check: 'coverage', verdict: 'pass', evidence: `also lists: ${extra.join(', ')}` });
  if (attestations.length > 0) coverage.push({ check: 'coverage', verdict: 'pass', evidence: `${attestations.length} attestation manifest${attestations.length > 1 ? 's' : ''} skipped` });
  if (missing.length === 0 && jobs.length > 0) coverage.unshift({ check: 'coverage', verdict: 'pass', evidence: `present: ${jobs.map((j) => formatPlatform(j.platform)).join(', ')}` });
  if (!opts.targets) coverage.push({ check: 'coverage', verdict: 'skip', evidence: 'not checked: no --platform or --config named the platforms it must have; each platform it has was verified' });

  const platforms = await Promise.all(jobs.map((j) => verifyImage(client, ref, j.digest, j.platform, opts, single)));
  const ok = coverage.every((c) => c.verdict !== 'fail') && platforms.every((p) => p.verdict !== 'fail');
  return { ...base, kind: m.kind === 'index' ? 'list' : 'manifest', ok, coverage, missing, extra, attestations, platforms };
}

export function formatReport(r: VerifyReport): string {
  const lines = [`${r.ref} (${r.kind === 'list' ? 'manifest list' : 'single manifest'} ${r.digest})`];
  for (const c of r.coverage) lines.push(`  ${c.check.padEnd(8)}  ${c.verdict.toUpperCase().padEnd(4)}  ${c.evidence}`);
  for (const p of r.platforms) {
    lines.push(`${p.platform}  ${p.verdict.toUpperCase()}  ${p.digest}`);
    for (const c of p.checks) lines.push(`  ${c.check.padEnd(8)}  ${c.verdict.toUpperCase().padEnd(4)}  ${c.evidence}`);
    if (p.files) lines.push(`  files     ${p.files.filesScanned} scanned, ${p.files.elfChecked} ELF checked, ${p.files.mismatches} mismatched, ${p.files.excused} excused${p.files.layers ? `; ${p.files.layersFromCache ?? 0} of ${p.files.layers} layers from the layer cache` : ''}`);
  }
  lines.push(r.ok ? 'verified' : 'verification FAILED');
  return `${lines.join('\n')}\n`;
}

export function reportMarkdown(r: VerifyReport): string {
  const out = [`## crossbuild verify ${r.ok ? '✅' : '❌'} \`${r.ref}\``, '', `${r.kind === 'list' ? 'Manifest list' : 'Single manifest'} \`${r.digest}\``, ''];
  for (const c of r.coverage) out.push(`- ${verdictIcon(c.verdict)} coverage: ${c.evidence}`);
  out.push('', '| Platform | Digest | Config | Binaries | Files (scanned / ELF / mismatched / excused) | `uname -m` |', '|---|---|---|---|---:|---|');
  for (const p of r.platforms) {
    const c = (name: string) => {
      const x = p.checks.find((k) => k.check === name);
      return x ? `${verdictIcon(x.verdict)} ${mdCell(x.evidence)}` : '—';
    };
    const f = p.files ? `${p.files.filesScanned} / ${p.files.elfChecked} / ${p.files.mismatches} / ${p.files.excused}` : '—';
    out.push(`| ${p.platform} | \`${p.digest.slice(0, 19)}…\` | ${c('metadata')} | ${c('binaries')} | ${f} | ${c('runtime')} |`);
  }
  return `${out.join('\n')}\n`;
}
