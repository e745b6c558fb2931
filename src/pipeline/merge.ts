// `crossbuild merge`: legs built anywhere (a CI matrix, devices, `run --no-list`) joined into one
// list — only after each expected platform is found and proven by the same verifier as `run`.
// Legs are found by their suffixed tags, by the legs' own reports (digests), or by a folder of
// digest files as in Docker's multi-runner recipe. Nothing is written unless every leg passes.
import { readdirSync, readFileSync } from 'node:fs';
import { suffixedTag, type BuildConfig, type PlatformTarget } from '../config/config.js';
import type { Docker } from '../docker/docker.js';
import { ConfigError, CrossbuildError, RegistryError } from '../errors.js';
import { buildList } from '../oci/list.js';
import { formatReference, withTag } from '../oci/reference.js';
import { ImageConfigSchema, ImageIndexSchema, ImageManifestSchema, isIndexMediaType, type ListKind } from '../oci/types.js';
import { formatPlatform, normalizeLenient, samePlatform } from '../platform/platform.js';
import type { RegistryClient } from '../registry/client.js';
import { worst, type CheckResult } from '../verdict.js';
import { verifyImage } from '../verify/verify.js';

export type LegSource = { readonly kind: 'tags' } | { readonly kind: 'reports'; readonly files: readonly string[] } | { readonly kind: 'digests'; readonly dir: string };

export interface MergeOptions {
  readonly config: BuildConfig;
  readonly client: RegistryClient;
  readonly type: ListKind;
  readonly source: LegSource;
  /** Also run `uname -m` in each leg (needs an engine and QEMU handlers). */
  readonly runtime?: Docker;
  readonly timeoutMs: number;
}

export interface LegResult {
  readonly platform: string;
  /** Where the leg was looked for: its suffixed tag, or the digest a report or file named. */
  readonly ref: string;
  ok: boolean;
  digest?: string;
  checks: CheckResult[];
  error?: string;
}

export interface MergeResult {
  readonly ok: boolean;
  readonly legs: LegResult[];
  readonly list?: { ref: string; digest: string; size: number; mediaType: string };
  readonly error?: string;
}

/** A leg report's platforms and digests (the JSON `run --report` writes). */
function digestsFromReports(files: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of files) {
    let j: { platforms?: { platform?: string; digest?: string | null; ok?: boolean }[] };
    try {
      j = JSON.parse(readFileSync(f, 'utf8')) as typeof j;
    } catch (e) {
      throw new ConfigError(f, '', `not a crossbuild report: ${(e as Error).message}`);
    }
    if (!Array.isArray(j.platforms)) throw new ConfigError(f, 'platforms', 'missing: not a `crossbuild run --report` file');
    for (const p of j.platforms) if (p.platform && p.digest && p.ok !== false) out.set(p.platform, p.digest);
  }
  return out;
}

/** Docker's multi-runner recipe: one empty file per pushed image, named by its digest's hex. */
function digestsFromFolder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new ConfigError(dir, '', `cannot read the digests folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return names.filter((n) => /^(sha256:)?[a-f0-9]{64}$/.test(n)).map((n) => (n.startsWith('sha256:') ? n : `sha256:${n}`));
}

/** Which platform a pushed image says it is (its config), for digests that come without one. */
async function platformOfDigest(client: RegistryClient, cfg: BuildConfig, digest: string): Promise<string | undefined> {
  const m = await client.getManifest(cfg.image.registry, cfg.image.repository, digest);
  if (isIndexMediaType(m.mediaType)) {
    // A leg pushed as a one-entry list: its entry says.
    const idx = ImageIndexSchema.parse(JSON.parse(m.bytes.toString('utf8')));
    return idx.manifests[0]?.platform ? formatPlatform(normalizeLenient(idx.manifests[0].platform)) : undefined;
  }
  const man = ImageManifestSchema.parse(JSON.parse(m.bytes.toString('utf8')));
  const c = ImageConfigSchema.parse(JSON.parse((await client.getBlobBytes(cfg.image.registry, cfg.image.repository, man.config.digest, 16 * 1024 * 1024)).toString('utf8')));
  return formatPlatform(normalizeLenient(c));
}

/** Find each expected leg: its digest, or why there is none. */
async function findLegs(o: MergeOptions): Promise<{ t: PlatformTarget; ref: string; digest?: string; why?: string }[]> {
  const cfg = o.config;
  const { registry, repository } = cfg.image;
  if (o.source.kind === 'tags') {
    return Promise.all(
      cfg.platforms.map(async (t) => {
        const ref = formatReference(withTag(cfg.image, suffixedTag(cfg, t)));
        try {
          const head = await o.client.headManifest(registry, repository, suffixedTag(cfg, t));
          return head ? { t, ref, digest: head.digest } : { t, ref, why: `${ref} does not exist` };
        } catch (e) {
          return { t, ref, why: (e as Error).message };
        }
      }),
    );
  }
  let byPlatform: Map<string, string>;
  if (o.source.kind === 'reports') byPlatform = digestsFromReports(o.source.files);
  else {
    byPlatform = new Map();
    for (const d of digestsFromFolder(o.source.dir)) {
      const p = await platformOfDigest(o.client, cfg, d).catch(() => undefined);
      if (p) byPlatform.set(p, d);
    }
  }
  return cfg.platforms.map((t) => {
    const hit = [...byPlatform.entries()].find(([p]) => samePlatform(normalizeLenient({ os: p.split('/')[0]!, architecture: p.split('/')[1] ?? '', variant: p.split('/')[2] }), t.platform));
    const ref = hit ? `${formatReference(cfg.image)}@${hit[1]}` : formatReference(cfg.image);
    return hit ? { t, ref, digest: hit[1] } : { t, ref, why: `no leg for ${formatPlatform(t.platform)} in ${o.source.kind === 'reports' ? 'the reports' : `the digests in ${(o.source as { dir: string }).dir}`}` };
  });
}

export async function runMerge(o: MergeOptions): Promise<MergeResult> {
  const cfg = o.config;
  const found = await findLegs(o);
  const legs: LegResult[] = await Promise.all(
    found.map(async (f): Promise<LegResult> => {
      const platform = formatPlatform(f.t.platform);
      if (!f.digest) return { platform, ref: f.ref, ok: false, checks: [], error: `missing: ${f.why}` };
      try {
        const report = await verifyImage(o.client, cfg.image, f.digest, f.t.platform, {
          staticOnly: o.runtime === undefined,
          ...(o.runtime ? { docker: o.runtime } : {}),
          timeoutMs: o.timeoutMs,
          allow: cfg.allow,
          ...(f.t.uname ? { uname: new Map([[platform, f.t.uname]]) } : {}),
        });
        const failed = report.checks.filter((c) => c.verdict === 'fail');
        return {
          platform,
          ref: f.ref,
          digest: f.digest,
          ok: worst(report.checks) !== 'fail',
          checks: report.checks,
          ...(failed.length > 0 ? { error: `${f.ref} (${f.digest}) is not a proven ${platform}: ${failed.map((c) => `${c.check}: ${c.evidence}`).join('; ')}` } : {}),
        };
      } catch (e) {
        return { platform, ref: f.ref, digest: f.digest, ok: false, checks: [], error: e instanceof Error ? e.message : String(e) };
      }
    }),
  );
  const bad = legs.filter((l) => !l.ok);
  if (bad.length > 0) return { ok: false, legs, error: `not writing the list: ${bad.map((l) => `${l.platform} ${l.error?.startsWith('missing') ? 'missing' : 'failed'}`).join(', ')}` };

  // Every leg is there and proven: the list, by digest, then read back.
  const { registry, repository } = cfg.image;
  const entries = await Promise.all(
    legs.map(async (l, i) => {
      const head = await o.client.headManifest(registry, repository, l.digest!);
      if (!head) throw new RegistryError(`${l.ref}: ${l.digest} vanished from ${repository} while merging`);
      const p = found[i]!.t.platform;
      return { mediaType: head.mediaType, digest: l.digest!, size: head.size, platform: { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) } };
    }),
  );
  const list = buildList(o.type, entries);
  const digest = await o.client.putManifest(registry, repository, cfg.tag, list.bytes, list.mediaType);
  const back = await o.client.getManifest(registry, repository, cfg.tag);
  const listRef = formatReference(withTag(cfg.image, cfg.tag));
  if (back.digest !== digest) throw new CrossbuildError(`read back: ${listRef} serves ${back.digest}, not the list just written (${digest})`);
  return { ok: true, legs, list: { ref: listRef, digest, size: list.size, mediaType: list.mediaType } };
}
