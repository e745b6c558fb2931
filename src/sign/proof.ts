// crossbuild's proof as in-toto predicates (schema/proof-predicate.schema.json), and the signing
// step that attaches them: each platform's image signed and attested with what was proven about
// it, then the list signed and attested with every platform's verdict — after every proof passed
// and before the list's tag moves.
import type { CheckResult } from '../verdict.js';
import type { BinaryStats } from '../verify/binaries.js';
import { LIST_PREDICATE_TYPE, PROOF_PREDICATE_TYPE, signArgv, attestArgv, type Cosign, type RegistryAccess } from './cosign.js';
import type { RegistryClient } from '../registry/client.js';
import type { ImageRef } from '../oci/reference.js';

export interface PlatformProof {
  readonly platform: string;
  /** What the image config says. */
  readonly configPlatform: string;
  readonly unameSeen: string | null;
  readonly files: BinaryStats | null;
  readonly checks: readonly CheckResult[];
  readonly tests: readonly { name: string; verdict: string }[];
}

export interface ProofContext {
  readonly crossbuild: string;
  readonly builder: { kind: string; version: string | null } | null;
  readonly engine: { version: string; imageStore: string | null } | null;
}

export function platformPredicate(p: PlatformProof, ctx: ProofContext, at = new Date()): Record<string, unknown> {
  return {
    platform: p.platform,
    configPlatform: p.configPlatform,
    uname: p.unameSeen,
    files: p.files ? { scanned: p.files.filesScanned, elfChecked: p.files.elfChecked, mismatched: p.files.mismatches, excused: p.files.excused } : null,
    checks: p.checks.map((c) => ({ check: c.check, verdict: c.verdict, evidence: c.evidence })),
    tests: p.tests,
    builder: ctx.builder,
    engine: ctx.engine,
    crossbuild: ctx.crossbuild,
    provenAt: at.toISOString(),
  };
}

/** A platform's proof from its checks (and files and tests) as run, merge and verify recorded them. */
export function proofOf(p: { platform: string; checks: readonly CheckResult[]; files?: BinaryStats | undefined; tests?: readonly { name: string; verdict: string }[] | undefined }): PlatformProof {
  return { platform: p.platform, configPlatform: configPlatformOf(p.checks, p.platform), unameSeen: unameOf(p.checks), files: p.files ?? null, checks: p.checks, tests: (p.tests ?? []).map((t) => ({ name: t.name, verdict: t.verdict })) };
}

export function listPredicate(platforms: readonly { platform: string; digest: string; verdict: string }[], ctx: ProofContext, at = new Date()): Record<string, unknown> {
  return { platforms, crossbuild: ctx.crossbuild, provenAt: at.toISOString() };
}

/** `uname -m printed aarch64` → aarch64. */
export function unameOf(checks: readonly CheckResult[]): string | null {
  const c = checks.find((x) => x.check === 'runtime' && x.verdict === 'pass');
  return c ? (/printed (\S+)/.exec(c.evidence)?.[1] ?? null) : null;
}

/** `config says linux/arm64` → linux/arm64. */
export function configPlatformOf(checks: readonly CheckResult[], fallback: string): string {
  const c = checks.find((x) => x.check === 'metadata');
  return (c && /says (\S+)/.exec(c.evidence)?.[1]) || fallback;
}

export interface Signed {
  readonly ref: string;
  readonly signature: true;
  readonly attestation: string;
}

export interface ToSign {
  /** `repo@digest` */
  readonly ref: string;
  readonly type: string;
  readonly predicate: unknown;
  /** For the predicate's file name. */
  readonly name: string;
}

/**
 * Sign images (by digest) and attach each one's proof, all or an error naming one: in this
 * process with a key file (local.ts: a few requests per image), else with the cosign CLI — one
 * `cosign sign` for all of them and the attestations at the same time (each cosign start costs
 * ~0.3 s of CPU).
 */
export async function signWithProofs(cosign: Cosign, access: RegistryAccess, items: readonly ToSign[], where?: { client: RegistryClient; image: ImageRef }): Promise<Signed[]> {
  if (items.length === 0) return [];
  const local = where ? await cosign.localSigner() : undefined;
  if (local && where) {
    await local.signAll(where.client, where.image, items.map((i) => ({ digest: i.ref.slice(i.ref.indexOf('@') + 1), type: i.type, predicate: i.predicate })));
    return items.map((i) => ({ ref: i.ref, signature: true, attestation: i.type }));
  }
  const refs = items.map((i) => i.ref);
  const sign = cosign.exec([...signArgv(refs[0]!, cosign.key, access).slice(0, -1), ...refs], `signing ${refs.join(', ')}`);
  const attest = items.map((i) => cosign.exec(attestArgv(i.ref, cosign.key, i.type, cosign.predicateFile(i.name, i.predicate), access), `attesting ${i.ref}`));
  await Promise.all([sign, ...attest]);
  return items.map((i) => ({ ref: i.ref, signature: true, attestation: i.type }));
}

export const PREDICATE_TYPES = { platform: PROOF_PREDICATE_TYPE, list: LIST_PREDICATE_TYPE } as const;
