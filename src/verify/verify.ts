// The verifier: coverage of the target platforms, each child's config against its entry, the
// architecture of its binaries read from the layers (no Docker needed), and optionally `uname -m`
// inside it. `crossbuild verify` and `crossbuild run` (before it writes a list) both use it.
import type { Docker } from '../docker/docker.js';
import { CrossbuildError } from '../errors.js';
import { ImageConfigSchema, ImageIndexSchema, ImageManifestSchema, isAttestation, isIndexMediaType, type Descriptor, type ImageConfig } from '../oci/types.js';
import { archInfo, formatPlatform, normalizeLenient, samePlatform, type Platform } from '../platform/platform.js';
import type { RegistryClient } from '../registry/client.js';
import { formatReference, manifestReference, type ImageRef } from '../oci/reference.js';
import { worst, type CheckResult, type Verdict } from '../verdict.js';
import { checkMetadata, checkRuntime } from './checks.js';
import { describeElf, maxCpuArchFor, type ElfInfo } from './elf.js';
import { mdCell, verdictIcon } from '../util/markdown.js';
import type { ImageFs, Resolution } from './image-fs.js';
import { scanImage } from './layers.js';

export interface VerifyOptions {
  /** Platforms the tag must cover; absent: whatever it lists. */
  readonly targets?: readonly Platform[];
  /** Per-platform `uname -m` overrides (from platforms.json). */
  readonly uname?: ReadonlyMap<string, string>;
  /** No containers: config and binaries only. */
  readonly staticOnly: boolean;
  readonly docker?: Docker;
  readonly timeoutMs: number;
  /** How many ELF files besides the entrypoint to check. */
  readonly sample?: number;
}

export interface PlatformReport {
  readonly platform: string;
  readonly digest: string;
  /** Of the manifest checked (absent when it could not be read as an image). */
  readonly mediaType?: string;
  readonly size?: number;
  readonly verdict: Verdict;
  readonly checks: CheckResult[];
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

const DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const platformOf = normalizeLenient;

/** Does this ELF file run on the platform? */
export function elfFits(p: Platform, e: ElfInfo): { ok: boolean; why?: string } {
  const a = archInfo(p.architecture);
  if (!a) return { ok: false, why: `no ELF definition for ${p.architecture}` };
  if (e.machine !== a.elfMachine || e.elfClass !== a.elfClass || e.endian !== a.endian) return { ok: false };
  if (p.architecture === 'arm' && e.arm?.cpuArch !== undefined && e.arm.cpuArch > maxCpuArchFor(p.variant)) {
    return { ok: false, why: `built for ARM ${e.arm.cpuArchName}, newer than ${formatPlatform(p)} runs` };
  }
  return { ok: true };
}

function execOf(cfg: ImageConfig): { exec?: string; path: string[] } {
  const c = cfg.config ?? {};
  const argv = [...(c.Entrypoint ?? []), ...(c.Entrypoint?.length ? [] : (c.Cmd ?? []))];
  const envPath = (c.Env ?? []).find((e) => e.startsWith('PATH='))?.slice(5);
  return { ...(argv[0] ? { exec: argv[0] } : {}), path: envPath ? envPath.split(':').filter(Boolean) : DEFAULT_PATH };
}

function showChain(r: Resolution, start: string): string {
  const hops = r.chain.filter((c) => c !== start);
  return [start, ...hops, `/${r.path}`].filter((x, i, all) => all.indexOf(x) === i).join(' → ');
}

/** Is what we know about the entrypoint final, so the scan may stop before the base layers? */
function settled(fs: ImageFs, exec: string | undefined, path: readonly string[]): boolean {
  if (!exec) return false;
  const r = exec.includes('/') ? fs.resolve(exec) : fs.resolve(`${path[0] ?? '/bin'}/${exec}`);
  if (r.status === 'deleted') return true;
  if (r.status !== 'found' || r.entry.type !== 'file') return false;
  if (r.entry.elf) return true;
  if (r.entry.shebang) {
    const interp = r.entry.shebang.split(/\s+/)[0] ?? '';
    const ir = fs.resolve(interp);
    return ir.status === 'deleted' || (ir.status === 'found' && ir.entry.elf !== undefined);
  }
  return false;
}

/** The binaries check, from an ImageFs built from the layers. */
export function judgeBinaries(fs: ImageFs, p: Platform, cfg: ImageConfig, complete: boolean, sample = 16): CheckResult {
  const { exec, path } = execOf(cfg);
  const evidence: string[] = [];
  let verdict: Verdict = 'pass';
  let entryFile: string | undefined;
  const fail = (m: string) => {
    verdict = 'fail';
    evidence.push(m);
  };
  const warn = (m: string) => {
    if (verdict === 'pass') verdict = 'warn';
    evidence.push(m);
  };
  const judgeElf = (label: string, e: ElfInfo) => {
    const fit = elfFits(p, e);
    if (fit.ok) evidence.push(`${label} is ${describeElf(e)}`);
    else fail(`${label} is ${describeElf(e)}${fit.why ? ` (${fit.why})` : ''}, expected ${archInfo(p.architecture)?.elfMachineName ?? p.architecture} for ${formatPlatform(p)}`);
  };
  if (!exec) {
    warn('no entrypoint or cmd to check');
  } else {
    const r = fs.which(exec, path);
    const start = exec.includes('/') ? exec : `/${r.path}`;
    if (r.status === 'deleted') fail(`entrypoint ${showChain(r, exec)} was deleted by a whiteout in layer ${r.layer}`);
    else if (r.status === 'loop') fail(`entrypoint ${exec}: too many levels of symbolic links at /${r.path}`);
    else if (r.status === 'absent') fail(`entrypoint ${exec} is not in the image${exec.includes('/') ? '' : ` (PATH ${path.join(':')})`}${complete ? '' : ' (layers scanned so far)'}`);
    else if (r.entry.type !== 'file') fail(`entrypoint ${showChain(r, start)} is not a regular file`);
    else {
      entryFile = r.path;
      if (r.entry.elf) judgeElf(showChain(r, exec.includes('/') ? exec : exec), r.entry.elf);
      else if (r.entry.shebang) {
        const interp = r.entry.shebang.split(/\s+/)[0] ?? '';
        const ir = fs.resolve(interp);
        if (ir.status === 'found' && ir.entry.elf) judgeElf(`entrypoint /${r.path} is a script for ${showChain(ir, interp)}, which`, ir.entry.elf);
        else if (ir.status === 'deleted') fail(`entrypoint /${r.path} is a script for ${interp}, deleted by a whiteout in layer ${ir.layer}`);
        else warn(`entrypoint /${r.path} is a script for ${interp}, which is not an ELF file in the image`);
      } else warn(`entrypoint /${r.path} is neither ELF nor a #! script`);
    }
  }
  // A sample of the other ELF files, preferring the usual binary folders.
  const others: [string, ElfInfo][] = [];
  for (const [file, e] of fs.entries) if (e.elf && file !== entryFile) others.push([file, e.elf]);
  others.sort(([a], [b]) => Number(!/^(usr\/)?s?bin\//.test(a)) - Number(!/^(usr\/)?s?bin\//.test(b)) || a.localeCompare(b));
  const checked = others.slice(0, sample);
  const wrong = checked.filter(([, e]) => !elfFits(p, e).ok);
  if (checked.length > 0) {
    if (wrong.length === 0) evidence.push(`${checked.length} other ELF file${checked.length > 1 ? 's' : ''} agree`);
    else {
      const list = wrong.slice(0, 3).map(([f, e]) => `/${f} is ${describeElf(e)}`).join(', ');
      const msg = `${wrong.length} of ${checked.length} other ELF files are not ${formatPlatform(p)}: ${list}${wrong.length > 3 ? ', …' : ''}`;
      if (!entryFile || wrong.length * 2 > checked.length) fail(msg);
      else warn(msg);
    }
  }
  if (!entryFile && checked.length === 0 && (verdict as Verdict) !== 'fail') warn('no ELF binaries found in the image (scripts only?)');
  if (fs.warnings.length > 0) warn(fs.warnings.slice(0, 3).join('; '));
  return { check: 'binaries', verdict: verdict as Verdict, evidence: evidence.join('; ') };
}

/** Verify one image manifest (by digest) against the platform its entry claims. */
export async function verifyImage(client: RegistryClient, ref: ImageRef, digest: string, expected: Platform, opts: VerifyOptions): Promise<PlatformReport> {
  const checks: CheckResult[] = [];
  const platform = formatPlatform(expected);
  const m = await client.getManifest(ref.registry, ref.repository, digest);
  if (isIndexMediaType(m.mediaType)) {
    return { platform, digest, verdict: 'fail', checks: [{ check: 'metadata', verdict: 'fail', evidence: `${digest} is itself a list (${m.mediaType}), not an image` }] };
  }
  const man = ImageManifestSchema.parse(JSON.parse(m.bytes.toString('utf8')));
  const cfg = ImageConfigSchema.parse(JSON.parse((await client.getBlobBytes(ref.registry, ref.repository, man.config.digest, 16 * 1024 * 1024)).toString('utf8')));
  checks.push(checkMetadata(expected, cfg, 'config'));
  const { exec, path } = execOf(cfg);
  try {
    const scan = await scanImage(client, ref.registry, ref.repository, man.layers as Descriptor[], {
      wantArmAttributes: expected.architecture === 'arm',
      done: (fs) => settled(fs, exec, path),
    });
    checks.push(judgeBinaries(scan.fs, expected, cfg, scan.complete, opts.sample));
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
  return { platform, digest, mediaType: m.mediaType, size: m.size, verdict: worst(checks), checks };
}

export async function verifyReference(client: RegistryClient, ref: ImageRef, opts: VerifyOptions): Promise<VerifyReport> {
  const m = await client.getManifest(ref.registry, ref.repository, manifestReference(ref));
  const base = { ref: formatReference(ref), digest: m.digest, mediaType: m.mediaType };
  const coverage: CheckResult[] = [];
  const missing: string[] = [];
  const extra: string[] = [];
  const attestations: string[] = [];
  let jobs: { digest: string; platform: Platform }[] = [];

  if (isIndexMediaType(m.mediaType)) {
    const idx = ImageIndexSchema.parse(JSON.parse(m.bytes.toString('utf8')));
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
    const man = ImageManifestSchema.parse(JSON.parse(m.bytes.toString('utf8')));
    const cfg = ImageConfigSchema.parse(JSON.parse((await client.getBlobBytes(ref.registry, ref.repository, man.config.digest, 16 * 1024 * 1024)).toString('utf8')));
    const own = platformOf(cfg);
    const targets = opts.targets ?? [own];
    // A single image can only be one platform: the first target it claims to be, or the first asked.
    const match = targets.find((t) => samePlatform(t, own)) ?? targets[0]!;
    jobs = [{ digest: m.digest, platform: match }];
    for (const t of targets) if (t !== match) missing.push(formatPlatform(t));
  }
  if (missing.length > 0) coverage.push({ check: 'coverage', verdict: 'fail', evidence: `missing: ${missing.join(', ')}` });
  if (extra.length > 0) coverage.push({ check: 'coverage', verdict: 'pass', evidence: `also lists: ${extra.join(', ')}` });
  if (attestations.length > 0) coverage.push({ check: 'coverage', verdict: 'pass', evidence: `${attestations.length} attestation manifest${attestations.length > 1 ? 's' : ''} skipped` });
  if (missing.length === 0 && jobs.length > 0) coverage.unshift({ check: 'coverage', verdict: 'pass', evidence: `present: ${jobs.map((j) => formatPlatform(j.platform)).join(', ')}` });

  const platforms = await Promise.all(jobs.map((j) => verifyImage(client, ref, j.digest, j.platform, opts)));
  const ok = coverage.every((c) => c.verdict !== 'fail') && platforms.every((p) => p.verdict !== 'fail');
  return { ...base, kind: isIndexMediaType(m.mediaType) ? 'list' : 'manifest', ok, coverage, missing, extra, attestations, platforms };
}

export function formatReport(r: VerifyReport): string {
  const lines = [`${r.ref} (${r.kind === 'list' ? 'manifest list' : 'single manifest'} ${r.digest})`];
  for (const c of r.coverage) lines.push(`  coverage  ${c.verdict.toUpperCase().padEnd(4)}  ${c.evidence}`);
  for (const p of r.platforms) {
    lines.push(`${p.platform}  ${p.verdict.toUpperCase()}  ${p.digest}`);
    for (const c of p.checks) lines.push(`  ${c.check.padEnd(8)}  ${c.verdict.toUpperCase().padEnd(4)}  ${c.evidence}`);
  }
  lines.push(r.ok ? 'verified' : 'verification FAILED');
  return `${lines.join('\n')}\n`;
}

export function reportMarkdown(r: VerifyReport): string {
  const out = [`## crossbuild verify ${r.ok ? '✅' : '❌'} \`${r.ref}\``, '', `${r.kind === 'list' ? 'Manifest list' : 'Single manifest'} \`${r.digest}\``, ''];
  for (const c of r.coverage) out.push(`- ${verdictIcon(c.verdict)} coverage: ${c.evidence}`);
  out.push('', '| Platform | Digest | Config | Binaries | `uname -m` |', '|---|---|---|---|---|');
  for (const p of r.platforms) {
    const c = (name: string) => {
      const x = p.checks.find((k) => k.check === name);
      return x ? `${verdictIcon(x.verdict)} ${mdCell(x.evidence)}` : '—';
    };
    out.push(`| ${p.platform} | \`${p.digest.slice(0, 19)}…\` | ${c('metadata')} | ${c('binaries')} | ${c('runtime')} |`);
  }
  return `${out.join('\n')}\n`;
}
