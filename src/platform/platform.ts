// Platform strings: parsing, normalisation (as containerd/platforms does it), formatting, and the
// machine `uname -m` must print for each. Everything that compares platforms goes through here.
import { ARCHES, KNOWN_OS, type ArchInfo } from './arch.js';

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export class PlatformError extends Error {}

/** Aliases users type for architectures, mapped to the OCI/GOARCH name and an implied variant. */
const ARCH_ALIASES: Readonly<Record<string, { arch: string; variant?: string }>> = {
  x86_64: { arch: 'amd64' },
  'x86-64': { arch: 'amd64' },
  x64: { arch: 'amd64' },
  i386: { arch: '386' },
  i486: { arch: '386' },
  i586: { arch: '386' },
  i686: { arch: '386' },
  x86: { arch: '386' },
  aarch64: { arch: 'arm64' },
  armhf: { arch: 'arm', variant: 'v7' },
  armel: { arch: 'arm', variant: 'v6' },
  armv5: { arch: 'arm', variant: 'v5' },
  armv6: { arch: 'arm', variant: 'v6' },
  armv7: { arch: 'arm', variant: 'v7' },
  armv6l: { arch: 'arm', variant: 'v6' },
  armv7l: { arch: 'arm', variant: 'v7' },
  ppc64el: { arch: 'ppc64le' },
  mips64el: { arch: 'mips64le' },
  mipsel: { arch: 'mipsle' },
  loongarch64: { arch: 'loong64' },
};

function allowedArchesText(): string {
  return Object.keys(ARCHES).join(', ');
}

export function archInfo(arch: string): ArchInfo | undefined {
  return Object.prototype.hasOwnProperty.call(ARCHES, arch) ? ARCHES[arch] : undefined;
}

/** Normalise an architecture and variant as containerd does (aarch64 → arm64, armhf → arm/v7, arm64/v8 → arm64 …). */
export function normalizeArch(rawArch: string, rawVariant = ''): { architecture: string; variant: string } {
  let arch = rawArch.toLowerCase();
  let variant = rawVariant.toLowerCase();
  const alias = ARCH_ALIASES[arch];
  if (alias) {
    arch = alias.arch;
    if (alias.variant && variant === '') variant = alias.variant;
  }
  const info = archInfo(arch);
  if (!info) {
    throw new PlatformError(`unknown architecture "${rawArch}" (valid: ${allowedArchesText()}; aliases such as x86_64, aarch64, armhf, i386 are accepted)`);
  }
  if (/^\d/.test(variant)) variant = `v${variant}`;
  switch (arch) {
    case 'arm64':
      if (variant === 'v8' || variant === 'v8.0') variant = '';
      break;
    case 'amd64':
      if (variant === 'v1') variant = '';
      break;
    case 'arm':
      if (variant === '') variant = info.defaultVariant ?? '';
      break;
  }
  if (variant !== '' && !info.variants.includes(variant)) {
    const valid = info.variants.length === 0 ? 'it has no variants' : `valid: ${info.variants.join(', ')}`;
    throw new PlatformError(`variant "${rawVariant}" is not valid for architecture ${arch} (${valid})`);
  }
  return { architecture: arch, variant };
}

export function normalizeOs(rawOs: string): string {
  const os = rawOs.toLowerCase() === 'macos' ? 'darwin' : rawOs.toLowerCase();
  if (!(KNOWN_OS as readonly string[]).includes(os)) {
    throw new PlatformError(`unknown os "${rawOs}" (valid: ${KNOWN_OS.join(', ')})`);
  }
  return os;
}

/** Build a normalised platform from its parts. */
export function makePlatform(os: string, architecture: string, variant?: string): Platform {
  const n = normalizeArch(architecture, variant ?? '');
  const p: Platform = { os: normalizeOs(os), architecture: n.architecture };
  return n.variant ? { ...p, variant: n.variant } : p;
}

/**
 * Parse "os/arch[/variant]", or a lone arch (linux implied) as containerd does.
 * Throws PlatformError with what is valid.
 */
export function parsePlatform(spec: string): Platform {
  const s = spec.trim();
  if (s === '') throw new PlatformError('empty platform (expected os/arch[/variant], e.g. linux/arm/v7)');
  const parts = s.split('/');
  if (parts.some((p) => p === '') || parts.length > 3) {
    throw new PlatformError(`malformed platform "${spec}" (expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7)`);
  }
  if (parts.length === 1) {
    const only = parts[0]!.toLowerCase();
    if ((KNOWN_OS as readonly string[]).includes(only)) {
      throw new PlatformError(`platform "${spec}" names an os but no architecture (e.g. ${only}/amd64)`);
    }
    return makePlatform('linux', only);
  }
  if (parts.length === 2) {
    // "arm64/v8" (arch/variant) as well as "linux/arm64".
    const [a, b] = parts as [string, string];
    if (!(KNOWN_OS as readonly string[]).includes(a.toLowerCase()) && a.toLowerCase() !== 'macos' && /^v?\d/.test(b)) {
      return makePlatform('linux', a, b);
    }
    return makePlatform(a, b);
  }
  const [os, arch, variant] = parts as [string, string, string];
  return makePlatform(os, arch, variant);
}

export function formatPlatform(p: { readonly os: string; readonly architecture: string; readonly variant?: string | undefined }): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** Compare after normalisation; an arm platform without a variant means v7. */
export function samePlatform(a: Platform, b: Platform): boolean {
  const na = normalizeLenient(a);
  const nb = normalizeLenient(b);
  return na.os === nb.os && na.architecture === nb.architecture && (na.variant ?? '') === (nb.variant ?? '');
}

/**
 * The lenient normaliser for platforms other tools wrote (configs, lists, specs): normalised as
 * containerd does when known, else kept as written, so a foreign or odd platform can still be
 * shown and compared instead of throwing.
 */
export function normalizeLenient(p: { readonly os: string; readonly architecture: string; readonly variant?: string | undefined }): Platform {
  try {
    return makePlatform(p.os, p.architecture, p.variant);
  } catch {
    return p.variant ? { os: p.os, architecture: p.architecture, variant: p.variant } : { os: p.os, architecture: p.architecture };
  }
}

/** The platform of this host, for deciding what needs emulation. */
export function hostPlatform(): Platform {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: process.platform === 'linux' ? 'ppc64le' : 'ppc64', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  return makePlatform(process.platform === 'win32' ? 'windows' : process.platform, map[process.arch] ?? process.arch);
}

/** Platforms the host CPU runs without emulation (amd64 runs 386 natively). */
export function isNative(p: Platform, host: Platform = hostPlatform()): boolean {
  if (p.os !== host.os) return false;
  if (p.architecture === host.architecture) return true;
  return host.architecture === 'amd64' && p.architecture === '386';
}

export interface UnameExpectation {
  /** Any of these is a pass. */
  readonly machines: readonly string[];
  /** Environment needed for QEMU to emulate the right CPU (it defaults to the newest it knows). */
  readonly env: Readonly<Record<string, string>>;
}

/** What `uname -m` prints inside a container of this platform on an x86_64 host with QEMU. */
export function expectedUname(p: Platform, override?: string): UnameExpectation {
  if (override) return { machines: [override], env: {} };
  const v = p.variant ?? '';
  switch (p.architecture) {
    case 'amd64':
      return { machines: ['x86_64'], env: {} };
    case '386':
      // A 32-bit userland on an x86_64 kernel reports x86_64 unless run under linux32.
      return { machines: ['i686', 'x86_64'], env: {} };
    case 'arm64':
      return { machines: ['aarch64'], env: {} };
    case 'arm':
      if (v === 'v6') return { machines: ['armv6l'], env: { QEMU_CPU: 'arm1176' } };
      if (v === 'v5') return { machines: ['armv5tejl', 'armv5tel'], env: { QEMU_CPU: 'arm926' } };
      if (v === 'v8') return { machines: ['armv8l', 'armv7l'], env: {} };
      return { machines: ['armv7l'], env: {} };
    case 'mips64le':
      return { machines: ['mips64'], env: {} };
    case 'mipsle':
      return { machines: ['mips'], env: {} };
    case 'loong64':
      return { machines: ['loongarch64'], env: {} };
    default:
      return { machines: [p.architecture], env: {} };
  }
}

/**
 * The tag suffix crossbuild derives for a platform, as the README's tags and `seed` name them:
 * amd64, arm32 (arm/v7), arm32v6, arm64, 386, ppc64le, s390x, riscv64 …
 */
export function platformSuffix(p: { architecture: string; variant?: string | undefined }): string {
  if (p.architecture === 'arm') return p.variant === 'v7' || !p.variant ? 'arm32' : `arm32${p.variant}`;
  return `${p.architecture}${p.variant ?? ''}`;
}
