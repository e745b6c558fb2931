// Run reports for people and machines: JSON (--report, --json) and Markdown (--summary, for a CI
// job summary). Built from a RunResult; pure, so it is tested on its own.
import type { TestResult } from '../gate/run.js';
import { mdCell, verdictIcon } from '../util/markdown.js';
import type { CheckResult } from '../verdict.js';
import type { RunResult } from './run.js';
import { slowest, type BuildStep } from '../docker/steps.js';
import type { BinaryStats } from '../verify/binaries.js';

export interface RunReport {
  readonly crossbuild: string;
  /** imageStore: "containerd" (the containerd image store) or the graph driver (overlay2). */
  readonly engine: { readonly version: string; readonly api: string; readonly imageStore: string | null } | null;
  readonly builder: { readonly kind: string; readonly cli: string; readonly version: string; readonly driver: string | null } | null;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** The whole run, in seconds. */
  readonly seconds: number | null;
  readonly ok: boolean;
  /** "SIGINT"/"SIGTERM" when the run was interrupted (the report then says what was done so far). */
  readonly interrupted: string | null;
  readonly error: string | null;
  readonly warnings: readonly string[];
  readonly notes: readonly string[];
  readonly logDir: string;
  readonly list: { readonly ref: string; readonly digest: string; readonly size: number; readonly mediaType: string; readonly signed?: string } | null;
  readonly platforms: {
    readonly platform: string;
    readonly tag: string;
    /** The build node (context name or engine URL); null for the local engine. */
    readonly node: string | null;
    readonly ok: boolean;
    /** The platform's image manifest (what the list's entry points at). */
    readonly digest: string | null;
    /** The index `docker push` pushed when the image came with attestations (the suffixed tag's digest). */
    readonly pushedDigest: string | null;
    /** The image's attestation manifests (provenance, SBOM), by digest. */
    readonly attestations: readonly string[];
    readonly buildSeconds: number | null;
    /** The registry proof (config, every ELF file) of what was pushed. */
    readonly proofSeconds: number | null;
    /** Seconds from the platform's start to its end: build, proofs, tests, push. */
    readonly seconds: number | null;
    /** How the build cache was used: "none", or the mechanism and its reference. */
    readonly cache: string;
    /** The slowest build steps, slowest first. */
    readonly slowestSteps: readonly BuildStep[];
    /** What the registry verification read (files, ELF files, mismatches, excused). */
    readonly files: BinaryStats | null;
    readonly failedAt: string | null;
    readonly error: string | null;
    readonly log: string;
    readonly checks: readonly CheckResult[];
    /** The test gate, in order; empty when the platform has no tests. */
    readonly tests: readonly TestResult[];
    /** The proof attestation's predicate type when the image was signed (--sign), else null. */
    readonly signed: string | null;
  }[];
  /** "skipped (--no-test)" when the test gate was turned off, else null. */
  readonly tests: string | null;
}

export function toReport(r: RunResult, version: string): RunReport {
  return {
    crossbuild: version,
    engine: r.engine ? { version: r.engine.serverVersion, api: r.engine.apiVersion, imageStore: r.engine.imageStore ?? null } : null,
    builder: r.builder ? { kind: r.builder.kind, cli: r.builder.cli, version: r.builder.buildxVersion ?? r.builder.clientVersion, driver: r.builder.driver ?? null } : null,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt ?? new Date().toISOString(),
    seconds: r.seconds ?? null,
    ok: r.ok,
    interrupted: r.interrupted ?? null,
    error: r.error ?? null,
    warnings: r.warnings,
    notes: r.notes,
    logDir: r.logDir,
    list: r.list ?? null,
    platforms: r.platforms.map((p) => ({
      platform: p.platform,
      tag: p.ref,
      node: p.node ?? null,
      ok: p.ok,
      digest: p.digest ?? null,
      pushedDigest: p.pushedDigest ?? null,
      attestations: (p.attestations ?? []).map((a) => a.digest),
      buildSeconds: p.buildSeconds ?? null,
      proofSeconds: p.proofSeconds ?? null,
      seconds: p.seconds ?? null,
      cache: p.cache ?? 'none',
      slowestSteps: slowest(p.steps ?? []),
      files: p.files ?? null,
      failedAt: p.failedAt ?? null,
      error: p.error ?? null,
      log: p.log,
      checks: p.checks,
      tests: p.tests ?? [],
      signed: p.signed ?? null,
    })),
    tests: r.testsSkipped ? 'skipped (--no-test)' : null,
  };
}


function verdictOf(checks: readonly CheckResult[], name: CheckResult['check'], prefix = ''): string {
  const c = checks.filter((x) => x.check === name && x.evidence.startsWith(prefix));
  if (c.length === 0) return '—';
  const worst = c.find((x) => x.verdict === 'fail') ?? c.find((x) => x.verdict === 'warn') ?? c[0]!;
  return `${verdictIcon(worst.verdict)} ${mdCell(worst.evidence.replace(/^registry /, ''))}`;
}

export function toMarkdown(r: RunReport): string {
  const out: string[] = [];
  out.push(`## crossbuild ${r.ok ? '✅' : '❌'} ${r.list ? `\`${r.list.ref}\`` : ''}`.trimEnd());
  out.push('');
  if (r.list) out.push(`Manifest list \`${r.list.ref}\`: \`${r.list.digest}\` (${r.list.size} bytes, ${r.list.mediaType})`, '');
  else if (r.interrupted) out.push(`**Interrupted by ${r.interrupted}: no manifest list was written.** What was done so far:`, '');
  else if (!r.ok) out.push(`**No manifest list was written.** ${r.error ? mdCell(r.error.split('\n')[0]!) : ''}`.trimEnd(), '');
  for (const w of r.warnings) out.push(`> ⚠️ ${mdCell(w)}`, '');
  for (const n of r.notes) out.push(`> ℹ️ ${mdCell(n)}`, '');
  out.push('| Platform | Tag | Digest | Build (s) | Total (s) | Config | Binaries | `uname -m` |');
  out.push('|---|---|---|---:|---:|---|---|---|');
  for (const p of r.platforms) {
    const status = p.ok ? '' : ` ❌ ${p.failedAt ?? ''}`;
    out.push(
      `| ${p.platform}${status}${p.node ? ` on ${mdCell(p.node)}` : ''} | \`${p.tag}\` | ${p.digest ? `\`${p.digest.slice(0, 19)}…\`` : '—'} | ${p.buildSeconds ?? '—'} | ${p.seconds ?? '—'} | ${verdictOf(p.checks, 'metadata')} | ${verdictOf(p.checks, 'binaries')} | ${verdictOf(p.checks, 'runtime')} |`,
    );
  }
  const timed = r.platforms.filter((p) => p.slowestSteps.length > 0);
  if (timed.length > 0) {
    out.push('', '### Where the build time went', '', '| Platform | Cache | Slowest steps |', '|---|---|---|');
    for (const p of timed) {
      const steps = p.slowestSteps.slice(0, 3).map((s) => `${mdCell(s.name.slice(0, 60))} ${s.seconds}s${s.cached ? ' (cached)' : s.emulated ? ' (emulated)' : ''}`);
      out.push(`| ${p.platform} | ${mdCell(p.cache)} | ${steps.join('<br>')} |`);
    }
  }
  const tested = r.platforms.flatMap((p) => p.tests);
  if (tested.length > 0 || r.tests) {
    out.push('', '### Tests', '');
    if (r.tests) out.push(`Tests ${r.tests}.`, '');
    if (tested.length > 0) {
      out.push('| Platform | Test | Verdict | Time (s) |', '|---|---|---|---:|');
      for (const t of tested) out.push(`| ${t.platform} | ${mdCell(t.name)} | ${t.verdict === 'pass' ? '✅ passed' : `❌ ${mdCell(t.reason ?? 'failed')}`} | ${t.seconds} |`);
    }
  }
  const failed = r.platforms.filter((p) => !p.ok && p.error);
  if (failed.length > 0) {
    out.push('', '### Failures', '');
    for (const p of failed) out.push(`<details><summary>${p.platform}: ${mdCell(p.error!.split('\n')[0]!)}</summary>`, '', '```', p.error!, '```', '', `log: \`${p.log}\``, '</details>', '');
  }
  out.push('', `${r.seconds !== null ? `${r.seconds} s in all; ` : ''}crossbuild ${r.crossbuild}${r.engine ? `, engine ${r.engine.version} (API ${r.engine.api})` : ''}${r.builder ? `, builder ${r.builder.kind}` : ''}; ${r.startedAt} → ${r.finishedAt}`);
  return `${out.join('\n')}\n`;
}
