// What crossbuild knows about each architecture, in one table: how its ELF binaries look (for
// binfmt magic and for the static verifier), what QEMU calls it, which variants it has, and what
// `uname -m` prints inside an emulated container.

export interface ArchInfo {
  /** GOARCH/OCI name. */
  readonly name: string;
  readonly elfClass: 32 | 64;
  readonly endian: 'le' | 'be';
  /** ELF e_machine. */
  readonly elfMachine: number;
  /** Human name of e_machine, as `file`/readelf print it. */
  readonly elfMachineName: string;
  /** qemu-<qemu>-static, and the binfmt_misc handler name qemu-<qemu>. */
  readonly qemu: string;
  /** Variants that exist (after normalisation); `defaultVariant` is filled in when none is given. */
  readonly variants: readonly string[];
  readonly defaultVariant?: string;
}

export const ARCHES: Readonly<Record<string, ArchInfo>> = {
  amd64: { name: 'amd64', elfClass: 64, endian: 'le', elfMachine: 62, elfMachineName: 'x86-64', qemu: 'x86_64', variants: ['v2', 'v3', 'v4'] },
  '386': { name: '386', elfClass: 32, endian: 'le', elfMachine: 3, elfMachineName: 'Intel 80386', qemu: 'i386', variants: [] },
  arm64: { name: 'arm64', elfClass: 64, endian: 'le', elfMachine: 183, elfMachineName: 'AArch64', qemu: 'aarch64', variants: ['v8.1', 'v8.2', 'v8.3', 'v8.4', 'v8.5', 'v8.6', 'v8.7', 'v8.8', 'v8.9', 'v9', 'v9.1', 'v9.2', 'v9.3', 'v9.4', 'v9.5'] },
  arm: { name: 'arm', elfClass: 32, endian: 'le', elfMachine: 40, elfMachineName: 'ARM', qemu: 'arm', variants: ['v5', 'v6', 'v7', 'v8'], defaultVariant: 'v7' },
  ppc64le: { name: 'ppc64le', elfClass: 64, endian: 'le', elfMachine: 21, elfMachineName: 'PowerPC64', qemu: 'ppc64le', variants: [] },
  ppc64: { name: 'ppc64', elfClass: 64, endian: 'be', elfMachine: 21, elfMachineName: 'PowerPC64', qemu: 'ppc64', variants: [] },
  s390x: { name: 's390x', elfClass: 64, endian: 'be', elfMachine: 22, elfMachineName: 'IBM S/390', qemu: 's390x', variants: [] },
  riscv64: { name: 'riscv64', elfClass: 64, endian: 'le', elfMachine: 243, elfMachineName: 'RISC-V', qemu: 'riscv64', variants: ['rva20u64', 'rva22u64', 'rva23u64'] },
  mips64le: { name: 'mips64le', elfClass: 64, endian: 'le', elfMachine: 8, elfMachineName: 'MIPS', qemu: 'mips64el', variants: [] },
  mips64: { name: 'mips64', elfClass: 64, endian: 'be', elfMachine: 8, elfMachineName: 'MIPS', qemu: 'mips64', variants: [] },
  mipsle: { name: 'mipsle', elfClass: 32, endian: 'le', elfMachine: 8, elfMachineName: 'MIPS', qemu: 'mipsel', variants: [] },
  mips: { name: 'mips', elfClass: 32, endian: 'be', elfMachine: 8, elfMachineName: 'MIPS', qemu: 'mips', variants: [] },
  loong64: { name: 'loong64', elfClass: 64, endian: 'le', elfMachine: 258, elfMachineName: 'LoongArch', qemu: 'loongarch64', variants: [] },
};

export const KNOWN_OS = ['linux', 'windows', 'darwin', 'freebsd', 'netbsd', 'openbsd', 'illumos', 'solaris', 'aix'] as const;

/** The ELF e_machine values we can name, for evidence messages about foreign binaries. */
export function elfMachineName(machine: number): string {
  for (const a of Object.values(ARCHES)) if (a.elfMachine === machine) return a.elfMachineName;
  return `e_machine ${machine}`;
}
