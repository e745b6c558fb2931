// `crossbuild merge`: legs built anywhere (a CI matrix, devices, `run --no-list`) joined into one
// list — only after each expected platform is found and proven by the same verifier as `run`.
// Legs are found by their suffixed tags, by the legs' own reports (digests), or by a folder of
// digest files as in Docker's multi-runner recipe. Nothing is written unless every leg passes.
import { readdirSync, readFileSync } from 'node:fs';
import { suffixedTag, type BuildConfig, type PlatformTarget } from '../config/config.js';
import type { Docker } from '../docker/docker.js';
import { ConfigError } from '../errors.js';
import { listKindFor, type ListEntry } from '../oci/list.js';
import { formatReference, withTag } from '../oci/reference.js';
import { isAttestation, type ListKind } from '../oci/types.js';
import { formatPlatform, normalizeLenient, samePlatform } from '../platform/platform.js';
import type { ManifestHead, RegistryClient } from '../registry/client.js';
import { publishList } from '../registry/publish.js';
import { worst, type CheckResult } from '../verdict.js';
import { verifyPushed, type AttestationEntry } from '../verify/verify.js';
import type { LayerCache } from '../verify/layer-cache.js';
import type { BinaryStats } from '../verify/binaries.js';
import type { Cosign, RegistryAccess } from '../sign/cosign.js';
import { listPredicate, platformPredicate, PREDICATE_TYPES, proofOf, signWithProofs, type ProofContext, type ToSign } from '../sign/proof.js';

export type LegSource = { readonly kind: 'tags' } | { readonly kind: 'reports'; readonly files: readonly string[] } | { readonly kind: 'digests'; readonly dir: string };

export interface MergeOptions {
  readonly config: BuildConfig;
  readonly client: RegistryClient;
  /** Absent: an OCI index when the legs carry attestations, else a Docker list. */
  readonly type?: ListKind;
  readonly source: LegSource;
  /** Also run `uname -m` in each leg (needs an engine and QEMU handlers). */
  readonly runtime?: Docker;
  readonly timeoutMs: number;
  /** Layer facts kept by digest (absent with --no-layer-cache). */
  readonly layerCache?: LayerCache;
  /** --sign: each leg's image and the list signed with crossbuild's proof (the merge's verdicts). */
  readonly sign?: { readonly cosign: Cosign; readonly access: RegistryAccess; readonly version: string };
}

export interface LegResult {
  readonly platform: string;
  /** Where the leg was looked for: its suffixed tag, or the digest a report or file named. */
  readonly ref: string;
  ok: boolean;
  /** The leg's image manifest (inside its index when the leg was pushed with attestations). */
  digest?: string;
  image?: ManifestHead;
  attestations?: AttestationEntry[];
  files?: BinaryStats;
  checks: CheckResult[];
  error?: string;
}

export interface MergeResult {
  readonly ok: boolean;
  readonly legs: LegResult[];
  readonly list?: { ref: string; digest: string; size: number; mediaType: string };
  readonly error?: string;
  /** The list step's own error as thrown (hint kept), when writing or signing the list failed. */
  readonly failure?: unknown;
  readonly notes?: string[];
}

/** A leg report's platforms and digests (the JSON `run --report` writes). */
function digestsFromReports(files: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of files) {
    let j: { platforms?: { platform?: string; digest?: string | null; pushedDigest?: string | null; ok?: boolean }[] };
    try {
      j = JSON.parse(readFileSync(f, 'utf8')) as typeof j;
    } catch (e) {
      throw new ConfigError(f, '', `not a crossbuild report: ${(e as Error).message}`);
    }
    if (!Array.isArray(j.platforms)) throw new ConfigError(f, 'platforms', 'missing: not a `crossbuild run --report` file');
    // What the leg pushed (its index of image and attestations, when it had them): the attestations come along.
    for (const p of j.platforms) if (p.platform && p.digest && p.ok !== false) out.set(p.platform, p.pushedDigest ?? p.digest);
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
  const m = await client.manifest(cfg.image.registry, cfg.image.repository, digest);
  if (m.kind === 'index') {
    // A leg pushed as an index (one image, maybe with attestations): its image entry says.
    const entry = m.index.manifests.find((d) => !isAttestation(d));
    return entry?.platform ? formatPlatform(normalizeLenient(entry.platform)) : undefined;
  }
  return formatPlatform(normalizeLenient(await client.config(cfg.image.registry, cfg.image.repository, m.manifest)));
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
        const report = await verifyPushed(o.client, cfg.image, f.digest, f.t.platform, {
          staticOnly: o.runtime === undefined,
          ...(o.runtime ? { docker: o.runtime } : {}),
          timeoutMs: o.timeoutMs,
          allow: cfg.allow,
          ...(o.layerCache ? { layerCache: o.layerCache } : {}),
          ...(f.t.uname ? { uname: new Map([[platform, f.t.uname]]) } : {}),
        });
        const failed = report.checks.filter((c) => c.verdict === 'fail');
        return {
          platform,
          ref: f.ref,
          digest: report.image?.digest ?? f.digest,
          ...(report.image ? { image: report.image } : {}),
          attestations: report.attestations,
          ...(report.files ? { files: report.files } : {}),
          ok: worst(report.checks) !== 'fail' && report.image !== undefined,
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
  const entries = legs.flatMap((l, i): ListEntry[] => {
    const p = found[i]!.t.platform;
    return [{ ...l.image!, platform: { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) } }, ...(l.attestations ?? [])];
  });
  const repo = formatReference(cfg.image);
  const ctx: ProofContext = { crossbuild: o.sign?.version ?? '', builder: null, engine: null };
  // Signed with the list, by digest, before its tag moves.
  const sign = async (digest: string): Promise<void> => {
    const s = o.sign!;
    await s.cosign.prepare();
    const items: ToSign[] = legs.map((l) => ({ ref: `${repo}@${l.digest!}`, type: PREDICATE_TYPES.platform, predicate: platformPredicate(proofOf(l), ctx), name: l.platform.replace(/\//g, '-') }));
    items.push({ ref: `${repo}@${digest}`, type: PREDICATE_TYPES.list, predicate: listPredicate(legs.map((l) => ({ platform: l.platform, digest: l.digest!, verdict: 'pass' })), ctx), name: 'list' });
    await signWithProofs(s.cosign, s.access, items, { client: o.client, image: cfg.image });
  };
  let list: Awaited<ReturnType<typeof publishList>>;
  try {
    list = await publishList(o.client, cfg.image, cfg.tag, listKindFor(o.type, legs), entries, o.sign ? { beforeTag: sign } : {});
  } catch (e) {
    // Every leg's verdict still goes in the report; the list's failure is the merge's.
    return { ok: false, legs, error: `the list was not written: ${e instanceof Error ? e.message : String(e)}`, failure: e };
  }
  const notes = list.dropped.length > 0 ? [`--type docker: ${list.dropped.length} attestation manifest${list.dropped.length > 1 ? 's' : ''} left out of ${list.ref}: a Docker manifest list cannot carry them (use --type oci to keep them)`] : [];
  return { ok: true, legs, notes, list: { ref: list.ref, digest: list.digest, size: list.size, mediaType: list.mediaType } };
}
