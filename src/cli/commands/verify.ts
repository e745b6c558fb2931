// `crossbuild verify REF`: coverage, metadata, binaries (static) and uname (runtime) per platform.
import { loadConfig } from '../../config/config.js';
import { readFileSync } from 'node:fs';
import { ConfigError, UsageError } from '../../errors.js';
import { annotate } from '../../util/annotations.js';
import type { Docker } from '../../docker/docker.js';
import { expectedUname, formatPlatform, parsePlatform, type Platform } from '../../platform/platform.js';
import { formatReference, parseReference, withTag, type ImageRef } from '../../oci/reference.js';
import { formatReport, reportMarkdown, verifyReference, type VerifyReport } from '../../verify/verify.js';
import { parseTestFlag, type PlatformTest } from '../../config/tests.js';
import type { TestResult } from '../../gate/run.js';
import { toJunit } from '../../gate/junit.js';
import { OK, REPORTED, type Outcome } from '../failure.js';
import { scrub } from '../../util/secrets.js';
import { layerCacheOption } from '../../verify/layer-cache.js';
import { clientFromFlags, platformsFromFlags, printJson, watchInterrupts, writeReportFile, type RegistryFlags } from '../common.js';

function readMetadata(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

interface VerifyFlags extends RegistryFlags {
  metadata?: string;
  allow?: string[];
  platform?: string[];
  /** The older spelling of --platform, kept. */
  platforms?: string[];
  config?: string;
  static?: boolean;
  json?: boolean;
  timeout: string;
  report?: string;
  summary?: string;
  /** Tests every platform must pass, run against the published image by digest. */
  test?: string[];
  /** A cosign public key: the list and every child must be signed by it. */
  key?: string;
  requireAttestation?: boolean;
  /** false with --no-layer-cache. */
  layerCache?: boolean;
  junit?: string;
}

/**
 * buildx's --metadata-file (and build-push-action's `metadata` output): the image by digest, from
 * `image.name` (comma-separated names; the first) and `containerimage.digest`.
 */
export function referenceFromMetadata(text: string, file: string): string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(file, '', `not valid JSON: ${(e as Error).message}`);
  }
  const names = typeof j['image.name'] === 'string' ? (j['image.name'] as string).split(',').map((n) => n.trim()).filter(Boolean) : [];
  const digest = j['containerimage.digest'];
  if (names.length === 0) throw new ConfigError(file, 'image.name', 'missing: the build pushed no named image (push with a tag, or pass REF)');
  if (typeof digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(digest)) throw new ConfigError(file, 'containerimage.digest', 'missing or not a sha256 digest');
  const repo = names[0]!.replace(/@sha256:[a-f0-9]{64}$/, '').replace(/:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, '');
  return `${repo}@${digest}`;
}

async function testPublished(report: VerifyReport, docker: Docker, ref: ImageRef, testsOf: (platform: string) => readonly PlatformTest[], uname: Map<string, string> | undefined): Promise<VerifyReport> {
  // Loaded only when there are tests (and signatures only with --key): a plain verify starts faster.
  const { runTest } = await import('../../gate/run.js');
  const engineHasBridge = await docker.hasBridgeNetwork();
  const platforms = await Promise.all(
    report.platforms.map(async (p) => {
      const tests = testsOf(p.platform);
      if (tests.length === 0 || p.verdict === 'fail') return p;
      const platform = parsePlatform(p.platform);
      const exp = expectedUname(platform, uname?.get(p.platform));
      const results: TestResult[] = [];
      for (const t of tests) results.push(await runTest(t, { docker, image: `${ref.registry}/${ref.repository}@${p.digest}`, platform, machines: exp.machines, qemuEnv: exp.env, pull: true, engineHasBridge }));
      const failed = results.some((r) => r.verdict === 'fail');
      const check = { check: 'tests' as const, verdict: failed ? ('fail' as const) : ('pass' as const), evidence: `${results.filter((r) => r.verdict === 'pass').length} of ${results.length} tests passed${failed ? `: ${results.filter((r) => r.verdict === 'fail').map((r) => `${r.name} (${r.reason ?? 'failed'})`).join('; ')}` : ''}` };
      return { ...p, tests: results, checks: [...p.checks, check], verdict: failed ? ('fail' as const) : p.verdict };
    }),
  );
  return { ...report, platforms, ok: report.ok && platforms.every((p) => p.verdict !== 'fail') };
}

export async function verifyCommand(refArg: string | undefined, flags: VerifyFlags): Promise<Outcome> {
  if (refArg && flags.metadata) throw new UsageError('give REF or --metadata, not both');
  if (!refArg && !flags.metadata && !flags.config) throw new UsageError('verify needs REF (REPO:TAG or REPO@sha256:…), --metadata FILE, or --config platforms.json (its image:tag)');
  // Without REF, the config's list: its image and tag (CROSSBUILD_IMAGE / CROSSBUILD_TAG win, as for run).
  const fromConfig = () => {
    const env = { ...(process.env.CROSSBUILD_IMAGE ? { image: process.env.CROSSBUILD_IMAGE } : {}), ...(process.env.CROSSBUILD_TAG ? { tag: process.env.CROSSBUILD_TAG } : {}) };
    const c = loadConfig(flags.config!, env);
    return formatReference(withTag(c.image, c.tag));
  };
  const refText = refArg ?? (flags.metadata ? referenceFromMetadata(readMetadata(flags.metadata), flags.metadata) : fromConfig());
  const ref = parseReference(refText, 'reference');
  const wanted = [...(flags.platform ?? []), ...(flags.platforms ?? [])];
  if (wanted.length > 0 && flags.config) throw new UsageError('give --platform or --config, not both');
  let targets: Platform[] | undefined = platformsFromFlags(wanted, '--platform');
  let uname: Map<string, string> | undefined;
  let allow = flags.allow ?? [];
  // platforms.json's tests per platform, or --test's for every platform.
  const testsFor = new Map<string, readonly PlatformTest[]>();
  const flagTests = (flags.test ?? []).map((v) => parseTestFlag(v));
  if (flags.config) {
    const cfg = loadConfig(flags.config, flagTests.length > 0 ? { tests: flagTests } : {});
    for (const t of cfg.platforms) testsFor.set(formatPlatform(t.platform), t.tests);
    targets = cfg.platforms.map((t) => t.platform);
    allow = [...cfg.allow, ...allow];
    uname = new Map(cfg.platforms.filter((t) => t.uname).map((t) => [formatPlatform(t.platform), t.uname!]));
  }
  if (flags.requireAttestation && !flags.key) throw new UsageError('--require-attestation needs --key: the public key the attestations must be signed with');
  const anyTests = flagTests.length > 0 || [...testsFor.values()].some((t) => t.length > 0);
  if (anyTests && flags.static) throw new UsageError('--static runs no containers: the tests need Docker (drop --static, or the tests)');
  const timeout = Number(flags.timeout);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout ${flags.timeout}: expected a whole number of seconds ≥ 1`);
  // Interrupted at any point (a registry request pending, uname containers running): every request
  // and wait ends, the containers go, and the exit says so with 130/143.
  const stop = new AbortController();
  let docker: import('../../docker/docker.js').Docker | undefined;
  const interrupts = watchInterrupts(() => {
    stop.abort();
    void docker?.abort();
  });
  const client = clientFromFlags(flags, ref.registry, stop.signal);
  const cleanups: (() => void)[] = [interrupts.dispose];
  const interrupted = (): Outcome | undefined => {
    const signal = interrupts.by();
    return signal ? { kind: 'interrupted', signal, done: 'verification containers removed' } : undefined;
  };
  try {
    // --static needs no Docker at all, so its module (and execa) is not even loaded.
    if (!flags.static) {
      const claimed = await (await import('../../pipeline/sweep.js')).claimedDocker();
      docker = claimed.docker;
      cleanups.push(claimed.release);
      for (const n of claimed.notes) process.stderr.write(`note: ${n}\n`);
      await docker.engine();
    }
    let report: Awaited<ReturnType<typeof verifyReference>>;
    try {
      report = await verifyReference(client, ref, {
        ...(targets ? { targets } : {}),
        ...(uname ? { uname } : {}),
        staticOnly: flags.static === true,
        ...(docker ? { docker } : {}),
        timeoutMs: timeout * 1000,
        allow,
        ...layerCacheOption(flags.layerCache === false),
      });
      // The test gate, against what is published: each platform pulled by digest, tested under QEMU.
      if (anyTests && docker) report = await testPublished(report, docker, ref, (p) => testsFor.get(p) ?? flagTests, uname);
      // Signatures, recursively: the list's and every child's, and with --require-attestation each child's proof.
      if (flags.key) report = await (await import('../../sign/verify.js')).verifySignatures(report, ref, flags.key, { registry: ref.registry, plainHttp: flags.plainHttp === true, insecure: flags.insecure === true }, flags.requireAttestation === true, flags.dockerCfg ? { DOCKER_CONFIG: flags.dockerCfg } : {});
    } catch (e) {
      const stopped = interrupted();
      if (stopped) await docker?.abort();
      // A report on every path: what was asked, that it failed, and why (CI reads the file).
      if (flags.report) writeReportFile(flags.report, `${JSON.stringify({ ref: formatReference(ref), ok: false, error: stopped ? `interrupted by ${interrupts.by()}` : scrub(e instanceof Error ? e.message : String(e)) }, null, 2)}\n`);
      if (stopped) return stopped;
      throw e;
    }
    if (flags.junit) writeReportFile(flags.junit, toJunit(report.platforms.flatMap((p) => p.tests ?? []), `crossbuild verify ${report.ref}`));
    if (flags.report) writeReportFile(flags.report, `${JSON.stringify(report, null, 2)}\n`);
    if (flags.summary) writeReportFile(flags.summary, reportMarkdown(report));
    if (flags.json) printJson(report);
    else process.stdout.write(formatReport(report));
    annotate([
      ...report.coverage.filter((c) => c.verdict === 'fail').map((c) => ({ kind: 'error' as const, title: `crossbuild verify ${report.ref}: coverage`, message: c.evidence })),
      ...report.platforms.flatMap((p) => p.checks.filter((c) => c.verdict === 'fail' || c.verdict === 'warn').map((c) => ({ kind: c.verdict === 'fail' ? ('error' as const) : ('warning' as const), title: `crossbuild verify ${p.platform}: ${c.check}`, message: c.evidence }))),
    ]);
    // A failed verify is its report: every failure is in it.
    return interrupted() ?? (report.ok ? OK : REPORTED);
  } finally {
    if (docker) await (await import('../../docker/docker.js')).settleRemovals(); // before the signal handlers go
    for (const c of cleanups) c();
    await client.close();
  }
}
