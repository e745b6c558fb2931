// `crossbuild verify REF --key PUB`: what cosign cannot do in one command — the list's signature,
// every child's, and (with --require-attestation) every child's proof attestation, whose subject
// must be that child's digest and whose predicate must name that child's platform. Any unsigned,
// wrongly signed or swapped child fails, naming it.
import type { ImageRef } from '../oci/reference.js';
import { formatReference } from '../oci/reference.js';
import type { CheckResult } from '../verdict.js';
import type { VerifyReport } from '../verify/verify.js';
import { cosignCheck, parseAttestations, PROOF_PREDICATE_TYPE, verifyArgv, verifyAttestationArgv, type RegistryAccess } from './cosign.js';

export async function verifySignatures(report: VerifyReport, ref: ImageRef, publicKey: string, access: RegistryAccess, requireAttestation: boolean, env: Readonly<Record<string, string>> = {}): Promise<VerifyReport> {
  const repo = formatReference({ registry: ref.registry, repository: ref.repository });
  const coverage = [...report.coverage];
  if (report.kind === 'list') {
    const r = await cosignCheck(verifyArgv(`${repo}@${report.digest}`, publicKey, access), env);
    coverage.push({ check: 'signature', verdict: r.ok ? 'pass' : 'fail', evidence: r.ok ? `the list ${report.digest} is signed by the key` : `the list ${report.digest} is not signed by the key: ${r.reason}` });
  }
  const platforms = await Promise.all(
    report.platforms.map(async (p) => {
      const child = `${repo}@${p.digest}`;
      const checks: CheckResult[] = [];
      const sig = await cosignCheck(verifyArgv(child, publicKey, access), env);
      checks.push({ check: 'signature', verdict: sig.ok ? 'pass' : 'fail', evidence: sig.ok ? `${p.platform} (${p.digest}) is signed by the key` : `${p.platform} (${p.digest}) is not signed by the key: ${sig.reason}` });
      if (requireAttestation) {
        const att = await cosignCheck(verifyAttestationArgv(child, publicKey, PROOF_PREDICATE_TYPE, access), env);
        const hex = p.digest.replace(/^sha256:/, '');
        const statements = att.ok ? parseAttestations(att.stdout) : [];
        const mine = statements.find((s) => s.predicateType === PROOF_PREDICATE_TYPE && s.subject.some((x) => x.digest.sha256 === hex));
        let evidence: string;
        let ok = false;
        if (!att.ok) evidence = `${p.platform} (${p.digest}) has no proof attestation signed by the key: ${att.reason}`;
        else if (!mine) evidence = `${p.platform}: no proof attestation whose subject is ${p.digest}`;
        else if (mine.predicate.platform !== p.platform) evidence = `${p.platform}: the proof attestation of ${p.digest} is for ${String(mine.predicate.platform)}`;
        else {
          ok = true;
          const f = mine.predicate.files as { elfChecked?: number } | null;
          evidence = `proof attestation signed by the key: ${p.platform}${f?.elfChecked !== undefined ? `, ${f.elfChecked} ELF files checked` : ''}, proven ${String(mine.predicate.provenAt ?? '')}`;
        }
        checks.push({ check: 'attestation', verdict: ok ? 'pass' : 'fail', evidence });
      }
      const failed = checks.some((c) => c.verdict === 'fail');
      return { ...p, checks: [...p.checks, ...checks], verdict: failed ? ('fail' as const) : p.verdict };
    }),
  );
  const ok = coverage.every((c) => c.verdict !== 'fail') && platforms.every((p) => p.verdict !== 'fail');
  return { ...report, coverage, platforms, ok };
}
