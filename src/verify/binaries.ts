// The binaries check: every ELF file in the image's final filesystem (after whiteouts) against the
// platform — class, byte order, machine, ARM float ABI and Tag_CPU_arch — and for dynamically
// linked ones, their loader (PT_INTERP, which must be in the image and of the platform) and the
// libraries they name (DT_NEEDED) where the usual paths have them. Pure: it judges an ImageFs.
import { archInfo, formatPlatform, type Platform } from '../platform/platform.js';
import type { ImageConfig } from '../oci/types.js';
import type { CheckResult, Verdict } from '../verdict.js';
import { describeElf, maxCpuArchFor, type ElfInfo } from './elf.js';
import { normalizeTarPath, type FsEntry, type ImageFs, type Resolution } from './image-fs.js';

export const DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** How many findings are listed in full; the rest are counted. */
const LISTED = 10;

/**
 * Does this ELF file run on the platform? `newerArm` marks the one soft reason: the file's ARM
 * attributes name a newer CPU than the variant. For a program that is fatal; a shared library often
 * carries runtime-dispatched code for newer cores (Debian armhf's libgcrypt says v8 and runs on v7).
 */
export function elfFits(p: Platform, e: ElfInfo): { ok: boolean; why?: string; newerArm?: boolean } {
  const a = archInfo(p.architecture);
  if (!a) return { ok: false, why: `no ELF definition for ${p.architecture}` };
  if (e.machine !== a.elfMachine || e.elfClass !== a.elfClass || e.endian !== a.endian) return { ok: false };
  if (p.architecture === 'arm' && e.arm?.cpuArch !== undefined && e.arm.cpuArch > maxCpuArchFor(p.variant)) {
    return { ok: false, why: `built for ARM ${e.arm.cpuArchName}, newer than ${formatPlatform(p)} runs`, newerArm: true };
  }
  return { ok: true };
}

export function execOf(cfg: ImageConfig): { exec?: string; path: string[] } {
  const c = cfg.config ?? {};
  const argv = [...(c.Entrypoint ?? []), ...(c.Entrypoint?.length ? [] : (c.Cmd ?? []))];
  const envPath = (c.Env ?? []).find((e) => e.startsWith('PATH='))?.slice(5);
  return { ...(argv[0] ? { exec: argv[0] } : {}), path: envPath ? envPath.split(':').filter(Boolean) : DEFAULT_PATH };
}

function showChain(r: Resolution, start: string): string {
  const hops = r.chain.filter((c) => c !== start);
  return [start, ...hops, `/${r.path}`].filter((x, i, all) => all.indexOf(x) === i).join(' → ');
}

/** `--allow` globs: `*` within a path segment, `**` across them, `?` one character. */
export function globMatcher(globs: readonly string[]): (path: string) => boolean {
  if (globs.length === 0) return () => false;
  const res = globs.map((g) => {
    const norm = g.startsWith('/') ? g : `/${g}`;
    let re = '';
    for (let i = 0; i < norm.length; i++) {
      const c = norm[i]!;
      if (c === '*' && norm[i + 1] === '*') {
        re += '.*';
        i++;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}$`);
  });
  return (path) => res.some((r) => r.test(path));
}

export interface BinaryStats {
  /** Regular files in the final filesystem. */
  readonly filesScanned: number;
  readonly elfChecked: number;
  readonly mismatches: number;
  readonly excused: number;
  /** ELF-looking files (\x7fELF) whose header cannot be read; present when there are any. */
  readonly malformed?: number;
  /** Files whose content could not be read as a runtime extracts it (an unsupported sparse format); present when any. */
  readonly unreadable?: number;
  /** Tar entries of a type the verifier does not know (runtimes refuse them); present when any. */
  readonly unknownTypes?: number;
  /** The image's layers, and how many of them came from the layer cache instead of the registry. */
  readonly layers?: number;
  readonly layersFromCache?: number;
}

export interface BinariesResult {
  readonly check: CheckResult;
  readonly stats: BinaryStats;
}

/** Library folders the dynamic loader searches by default, plus Debian's multiarch ones present in the image. */
function libraryDirs(fs: ImageFs): string[] {
  const dirs = ['lib', 'usr/lib', 'lib64', 'usr/lib64', 'usr/local/lib', 'lib32', 'usr/lib32'];
  // forEach, not for-of: no [path, entry] pair made for each of an image's many entries.
  fs.entries.forEach((e, path) => {
    if (e.type === 'dir' && path.includes('-linux-') && /^(usr\/)?lib\/[a-z0-9_]+-linux-[a-z0-9_]+$/.test(path)) dirs.push(path);
  });
  return dirs;
}

/** A shared library rather than a program: position-independent and started by no loader of its own. */
function isLibrary(e: ElfInfo): boolean {
  return e.type === 3 && e.dynamic?.interp === undefined;
}

interface Finding {
  readonly path: string;
  readonly text: string;
}

/** What keeps a file from being judged: a header that is ELF-looking but unreadable, or content that could not be read. */
function broken(e: FsEntry): string | undefined {
  if (e.unreadable) return `could not be read as runtimes extract it (${e.unreadable})`;
  if (e.malformedElf) return `is a malformed ELF file (${e.malformedElf})`;
  return undefined;
}

/** The first LISTED texts, and how many more. */
function listed(items: readonly string[]): string {
  return `${items.slice(0, LISTED).join(', ')}${items.length > LISTED ? `, … and ${items.length - LISTED} more` : ''}`;
}

/** Judge the binaries of an image's merged filesystem against the platform. */
export function judgeBinaries(fs: ImageFs, p: Platform, cfg: ImageConfig, complete: boolean, opts: { allow?: readonly string[] } = {}): BinariesResult {
  const { exec, path } = execOf(cfg);
  const allowed = globMatcher(opts.allow ?? []);
  const evidence: string[] = [];
  let verdict: Verdict = 'pass';
  let excused = 0;
  const fail = (m: string) => {
    verdict = 'fail';
    evidence.push(m);
  };
  const warn = (m: string) => {
    if (verdict === 'pass') verdict = 'warn';
    evidence.push(m);
  };
  const want = `${archInfo(p.architecture)?.elfMachineName ?? p.architecture} for ${formatPlatform(p)}`;
  const judgeElf = (label: string, e: ElfInfo, file: string) => {
    const fit = elfFits(p, e);
    if (fit.ok) evidence.push(`${label} is ${describeElf(e)}`);
    else if (allowed(`/${file}`)) evidence.push(`${label} is ${describeElf(e)} (excused by --allow)`);
    else fail(`${label} is ${describeElf(e)}${fit.why ? ` (${fit.why})` : ''}, expected ${want}`);
  };

  // Files whose problems a finding already named (not listed again), and the files programs are
  // started from (the entrypoint, its interpreter, loaders, libraries) beside the PATH folders.
  const reported = new Set<string>();
  const programFiles = new Set<string>();
  const judgeBroken = (label: string, e: FsEntry, file: string) => {
    reported.add(file);
    if (allowed(`/${file}`)) {
      excused++;
      evidence.push(`${label} ${broken(e)} (excused by --allow)`);
    } else fail(`${label} ${broken(e)}`);
  };

  // 1. The entrypoint, as the container would start it.
  if (!exec) {
    warn('no entrypoint or cmd to check');
  } else {
    const r = fs.which(exec, path);
    programFiles.add(r.path);
    const start = exec.includes('/') ? exec : `/${r.path}`;
    if (r.status === 'deleted') fail(`entrypoint ${showChain(r, exec)} was deleted by a whiteout in layer ${r.layer}`);
    else if (r.status === 'loop') fail(`entrypoint ${exec}: too many levels of symbolic links at /${r.path}`);
    else if (r.status === 'absent') fail(`entrypoint ${exec} is not in the image${exec.includes('/') ? '' : ` (PATH ${path.join(':')})`}${complete ? '' : ' (layers scanned so far)'}`);
    else if (r.entry.type !== 'file') fail(`entrypoint ${showChain(r, start)} is not a regular file`);
    else if (broken(r.entry)) judgeBroken(`entrypoint ${showChain(r, exec)}`, r.entry, r.path);
    else if (r.entry.elf) judgeElf(showChain(r, exec), r.entry.elf, r.path);
    else if (r.entry.shebang) {
      const interp = r.entry.shebang.split(/\s+/)[0] ?? '';
      const ir = fs.resolve(interp);
      programFiles.add(ir.path);
      if (ir.status === 'found' && broken(ir.entry)) judgeBroken(`entrypoint /${r.path} is a script for ${showChain(ir, interp)}, which`, ir.entry, ir.path);
      else if (ir.status === 'found' && ir.entry.elf) judgeElf(`entrypoint /${r.path} is a script for ${showChain(ir, interp)}, which`, ir.entry.elf, ir.path);
      else if (ir.status === 'deleted') fail(`entrypoint /${r.path} is a script for ${interp}, deleted by a whiteout in layer ${ir.layer}`);
      else warn(`entrypoint /${r.path} is a script for ${interp}, which is not an ELF file in the image`);
    } else warn(`entrypoint /${r.path} is neither ELF nor a #! script`);
  }

  // 2. Every ELF file, its loader, and the libraries it names.
  let filesScanned = 0;
  let elfChecked = 0;
  const wrong: Finding[] = [];
  const newerLibs: Finding[] = [];
  const malformed: Finding[] = [];
  const unreadable: Finding[] = [];
  const loaders = new Map<string, { problem: string; users: string[] }>();
  const neededBy = new Map<string, string>();
  const dirs = libraryDirs(fs);
  const libCache = new Map<string, Resolution | undefined>();
  /** Loaders resolved once: every program of an image names the same one or two. */
  const interps = new Map<string, Resolution>();
  const findLib = (name: string, runpath: readonly string[], origin: string): Resolution | undefined => {
    if (name.includes('/')) return fs.resolve(name);
    // Where the file is matters only to a RUNPATH that names $ORIGIN: most lookups share one answer.
    const rp = runpath.join(':');
    const key = `${rp}|${rp.includes('ORIGIN') ? origin : ''}|${name}`;
    if (libCache.has(key)) return libCache.get(key);
    let hit: Resolution | undefined;
    for (const d of [...runpath.map((r) => r.replace(/\$(ORIGIN|\{ORIGIN\})/g, `/${origin}`)), ...dirs]) {
      const r = fs.resolve(`${d}/${name}`);
      if (r.status === 'found' && r.entry.type === 'file') {
        hit = r;
        break;
      }
    }
    libCache.set(key, hit);
    return hit;
  };
  // forEach (see libraryDirs): every entry of the image passes here.
  fs.entries.forEach((e, file) => {
    if (e.type !== 'file') return;
    filesScanned++;
    if (e.unreadable) unreadable.push({ path: file, text: `/${file} (${e.unreadable})` });
    if (e.malformedElf) malformed.push({ path: file, text: `/${file} (${e.malformedElf})` });
    if (!e.elf) return;
    elfChecked++;
    const fit = elfFits(p, e.elf);
    if (!fit.ok && fit.newerArm && isLibrary(e.elf)) {
      if (allowed(`/${file}`)) excused++;
      else newerLibs.push({ path: file, text: `/${file} (${e.elf.arm?.cpuArchName ?? '?'})` });
    } else if (!fit.ok) {
      if (allowed(`/${file}`)) excused++;
      else wrong.push({ path: file, text: `/${file} is ${describeElf(e.elf)}${fit.why ? ` (${fit.why})` : ''}` });
      return; // a foreign file's own loader and libraries are beside the point
    }
    const dyn = e.elf.dynamic;
    if (dyn?.interp) {
      let lr = interps.get(dyn.interp);
      if (!lr) interps.set(dyn.interp, (lr = fs.resolve(dyn.interp)));
      programFiles.add(lr.path);
      let problem: string | undefined;
      if (lr.status === 'deleted') problem = `was deleted by a whiteout in layer ${lr.layer}`;
      else if (lr.status !== 'found' || lr.entry.type !== 'file') problem = 'is not in the image';
      else if (broken(lr.entry)) {
        problem = `(/${lr.path}) ${broken(lr.entry)}`;
        reported.add(lr.path);
      } else if (!lr.entry.elf) problem = `(/${lr.path}) is not an ELF file`;
      else if (!elfFits(p, lr.entry.elf).ok) problem = `(/${lr.path}) is ${describeElf(lr.entry.elf)}`;
      if (problem) {
        if (allowed(`/${file}`)) excused++;
        else {
          const l = loaders.get(dyn.interp) ?? { problem, users: [] };
          l.users.push(`/${file}`);
          loaders.set(dyn.interp, l);
        }
      }
    }
    const origin = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '';
    for (const lib of dyn?.needed ?? []) {
      const r = findLib(lib, dyn?.runpath ?? [], origin);
      if (r?.status === 'found' && !neededBy.has(r.path)) neededBy.set(r.path, `/${file}`);
    }
  });
  for (const [interp, l] of loaders) {
    const users = `${l.users.slice(0, 3).join(', ')}${l.users.length > 3 ? ` and ${l.users.length - 3} more` : ''}`;
    fail(`loader ${interp} ${l.problem}, expected ${want} (needed by ${users})`);
  }
  if (wrong.length > 0) {
    const shown = wrong.slice(0, LISTED).map((w) => (neededBy.has(w.path) ? `${w.text} (needed by ${neededBy.get(w.path)})` : w.text));
    fail(`${wrong.length} of ${elfChecked} ELF files are not ${formatPlatform(p)}: ${shown.join(', ')}${wrong.length > LISTED ? `, … and ${wrong.length - LISTED} more` : ''}`);
  } else if (elfChecked > 0) {
    evidence.push(`all ${elfChecked} ELF file${elfChecked > 1 ? 's' : ''} of ${filesScanned} files agree${excused > 0 ? ` (${excused} excused by --allow)` : ''}`);
  }

  // 3. What could not be judged: content that could not be read fails wherever it is; a
  // malformed ELF header or an entry of unknown type fails on a program path, warns elsewhere.
  for (const lib of neededBy.keys()) programFiles.add(lib);
  const programDirs = new Set<string>();
  for (const d of [...DEFAULT_PATH, ...path, ...dirs]) {
    programDirs.add(normalizeTarPath(d).path);
    const r = fs.resolve(d);
    if (r.status === 'found' && r.entry.type === 'dir') programDirs.add(r.path);
  }
  const onProgramPath = (file: string) => programFiles.has(file) || programDirs.has(file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '');
  const judgeUnjudged = (findings: readonly Finding[], what: (n: number) => string, everywhere: boolean) => {
    const open = findings.filter((f) => !reported.has(f.path));
    const kept = open.filter((f) => !allowed(`/${f.path}`));
    excused += open.length - kept.length;
    const hot: Finding[] = [];
    const cold: Finding[] = [];
    for (const f of kept) (everywhere || onProgramPath(f.path) ? hot : cold).push(f);
    if (hot.length > 0) fail(`${what(hot.length)}${everywhere ? '' : ' on a program path (the entrypoint, PATH, a loader or a library)'}: ${listed(hot.map((f) => f.text))}`);
    if (cold.length > 0) warn(`${what(cold.length)}: ${listed(cold.map((f) => f.text))}`);
  };
  const plural = (n: number, one: string, many: string) => `${n} ${n > 1 ? many : one}`;
  judgeUnjudged(unreadable, (n) => `${plural(n, 'file', 'files')} could not be read as container runtimes extract ${n > 1 ? 'them' : 'it'}`, true);
  judgeUnjudged(malformed, (n) => plural(n, 'malformed ELF file', 'malformed ELF files'), false);
  const unknown = fs.unknown.map((u) => ({ path: u.path, text: `/${u.path} (typeflag '${u.typeflag}', layer ${u.layer})` }));
  judgeUnjudged(unknown, (n) => `${plural(n, 'tar entry', 'tar entries')} of an unknown type, which runtimes refuse to extract`, false);

  if (newerLibs.length > 0) {
    warn(`${newerLibs.length} shared librar${newerLibs.length > 1 ? 'ies carry' : 'y carries'} code for a newer ARM than ${formatPlatform(p)} (usually chosen at run time): ${newerLibs.slice(0, 3).map((n) => n.text).join(', ')}${newerLibs.length > 3 ? ', …' : ''}`);
  }
  if (elfChecked === 0 && (verdict as Verdict) !== 'fail') warn('no ELF binaries found in the image (scripts only?)');
  if (fs.warnings.length > 0) warn(fs.warnings.slice(0, 3).join('; '));
  return {
    check: { check: 'binaries', verdict: verdict as Verdict, evidence: evidence.join('; ') },
    stats: {
      filesScanned,
      elfChecked,
      mismatches: wrong.length + [...loaders.values()].reduce((n, l) => n + l.users.length, 0),
      excused,
      ...(malformed.length > 0 ? { malformed: malformed.length } : {}),
      ...(unreadable.length > 0 ? { unreadable: unreadable.length } : {}),
      ...(fs.unknown.length > 0 ? { unknownTypes: fs.unknown.length } : {}),
    },
  };
}
