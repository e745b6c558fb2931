// ELF headers and ARM build attributes: what architecture a binary really is. Pure functions over
// bytes; the static verifier feeds them the first bytes of each file (or the whole file when it
// needs the section table for .ARM.attributes).
import { elfMachineName } from '../platform/arch.js';

export interface ElfInfo {
  readonly elfClass: 32 | 64;
  readonly endian: 'le' | 'be';
  readonly type: number;
  readonly machine: number;
  readonly flags: number;
  /** ARM only, when the section table was available. */
  readonly arm?: ArmAttributes;
  /** Dynamic linking, when the program headers were in the bytes given. */
  readonly dynamic?: DynamicInfo;
}

export interface DynamicInfo {
  /** PT_INTERP: the loader the kernel starts for a dynamic executable. */
  readonly interp?: string;
  /** DT_NEEDED libraries; undefined when the dynamic section or its strings were not in the bytes. */
  readonly needed?: readonly string[];
  /** DT_RUNPATH / DT_RPATH folders. */
  readonly runpath?: readonly string[];
}

export interface ArmAttributes {
  /** Tag_CPU_arch value and name (v4T, v5TE, v6, v7, v8 …). */
  readonly cpuArch?: number;
  readonly cpuArchName?: string;
  /** From e_flags and Tag_ABI_VFP_args: hard or soft float calling convention. */
  readonly floatAbi?: 'hard' | 'soft';
  readonly eabiVersion?: number;
}

export const ELF_HEADER_BYTES = 64;
const SHT_ARM_ATTRIBUTES = 0x70000003;
const EF_ARM_ABI_FLOAT_SOFT = 0x200;
const EF_ARM_ABI_FLOAT_HARD = 0x400;

export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/**
 * Why an ELF-looking file (it starts with \x7fELF) has no readable header: truncated, or a class
 * or byte order that is neither 32/64-bit nor LSB/MSB. undefined when it is readable, or not ELF.
 */
export function elfHeaderProblem(b: Uint8Array): string | undefined {
  if (!isElf(b)) return undefined;
  if (b.length < 6) return `truncated ELF header (${b.length} bytes)`;
  if (b[4] !== 1 && b[4] !== 2) return `bad EI_CLASS ${b[4]}`;
  if (b[5] !== 1 && b[5] !== 2) return `bad EI_DATA ${b[5]}`;
  const need = b[4] === 2 ? 64 : 52;
  if (b.length < need) return `truncated ELF header (${b.length} of its ${need} bytes)`;
  return undefined;
}

/**
 * A file's bytes, whole or in the pieces they arrived in: the parser reads a few small ranges
 * (header, program headers, interpreter, dynamic section, strings, section table), so a large
 * file is never copied into one buffer to be read.
 */
export interface FileBytes {
  readonly length: number;
  /** Bytes [start, end) clamped to the file: a view when they lie in one piece, else a small copy. */
  slice(start: number, end: number): Buffer;
}

/** One buffer as FileBytes. */
export function wholeBytes(b: Buffer): FileBytes {
  return { length: b.length, slice: (start, end) => b.subarray(Math.max(0, start), Math.max(0, end)) };
}

/** Pieces that follow one another (as a stream delivered them) as FileBytes, without joining them. */
export function piecedBytes(pieces: readonly Buffer[]): FileBytes {
  if (pieces.length <= 1) return wholeBytes(pieces[0] ?? Buffer.alloc(0));
  const starts: number[] = [];
  let length = 0;
  for (const p of pieces) {
    starts.push(length);
    length += p.length;
  }
  return {
    length,
    slice(start, end) {
      const s = Math.max(0, Math.min(start, length));
      const e = Math.max(s, Math.min(end, length));
      // The last piece that starts at or before s (binary search: a file may be many pieces).
      let lo = 0;
      let hi = pieces.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= s) lo = mid;
        else hi = mid - 1;
      }
      const first = pieces[lo]!;
      if (e - starts[lo]! <= first.length) return first.subarray(s - starts[lo]!, e - starts[lo]!);
      const out = Buffer.allocUnsafe(e - s);
      let at = 0;
      for (let i = lo; at < out.length; i++) {
        const p = pieces[i]!;
        const from = i === lo ? s - starts[lo]! : 0;
        at += p.copy(out, at, from, Math.min(p.length, from + out.length - at));
      }
      return out;
    },
  };
}

/** A NUL-terminated string at `start`; undefined when no NUL ends it inside the file. */
function cString(src: FileBytes, start: number): string | undefined {
  if (start >= src.length) return undefined;
  for (let window = 256; ; window *= 4) {
    const b = src.slice(start, start + window);
    const z = b.indexOf(0);
    if (z >= 0) return b.toString('latin1', 0, z);
    if (start + window >= src.length) return undefined;
  }
}

/** Field readers for a file's byte order and class (a word is 64-bit in ELF64, 32-bit in ELF32). */
function readers(le: boolean, is64: boolean) {
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
  return { u16, u32, word };
}

/** Parse the ELF header (and, given the whole file, ARM attributes). undefined if not ELF or not readable (elfHeaderProblem says why). */
export function parseElf(file: Buffer | FileBytes, wholeFile = false): ElfInfo | undefined {
  const src = Buffer.isBuffer(file) ? wholeBytes(file) : file;
  const head = src.slice(0, ELF_HEADER_BYTES);
  if (!isElf(head) || elfHeaderProblem(head)) return undefined;
  const le = head[5] === 1;
  const is64 = head[4] === 2;
  const { u16, u32 } = readers(le, is64);
  const type = u16(head, 16);
  const machine = u16(head, 18);
  const flags = is64 ? u32(head, 48) : u32(head, 36);
  const dynamic = parseDynamic(src, head, is64, le);
  const info: ElfInfo = { elfClass: is64 ? 64 : 32, endian: le ? 'le' : 'be', type, machine, flags, ...(dynamic ? { dynamic } : {}) };
  if (machine !== 40) return info;
  const arm: { -readonly [K in keyof ArmAttributes]: ArmAttributes[K] } = { eabiVersion: (flags >>> 24) & 0xff };
  if (flags & EF_ARM_ABI_FLOAT_HARD) arm.floatAbi = 'hard';
  else if (flags & EF_ARM_ABI_FLOAT_SOFT) arm.floatAbi = 'soft';
  if (wholeFile && !is64) {
    const shoff = u32(head, 32);
    const shentsize = u16(head, 46);
    const shnum = u16(head, 48);
    for (let i = 0; i < shnum && shentsize >= 40; i++) {
      const at = shoff + i * shentsize;
      if (at + 40 > src.length) break;
      const sh = src.slice(at, at + 40);
      if (u32(sh, 4) !== SHT_ARM_ATTRIBUTES) continue;
      const off = u32(sh, 16);
      const size = u32(sh, 20);
      if (off + size <= src.length) Object.assign(arm, parseArmAttributes(src.slice(off, off + size), le));
      break;
    }
  }
  return { ...info, arm };
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/**
 * The loader (PT_INTERP) and the libraries (DT_NEEDED) of a dynamically linked file, from its
 * program headers and dynamic section; undefined for a static one. The dynamic section names its
 * strings by virtual address, mapped to a file offset through the PT_LOAD segments.
 */
function parseDynamic(src: FileBytes, head: Buffer, is64: boolean, le: boolean): DynamicInfo | undefined {
  const { u16, u32, word } = readers(le, is64);
  const phoff = is64 ? word(head, 32) : u32(head, 28);
  const phentsize = u16(head, is64 ? 54 : 42);
  const phnum = u16(head, is64 ? 56 : 44);
  if (phoff === 0 || phnum === 0 || phentsize < (is64 ? 56 : 32)) return undefined;
  const table = src.slice(phoff, phoff + phnum * phentsize);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interp: string | undefined;
  let dyn: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = i * phentsize;
    if (ph + phentsize > table.length) return interp || dyn ? { ...(interp ? { interp } : {}) } : undefined;
    const type = u32(table, ph);
    const offset = is64 ? word(table, ph + 8) : u32(table, ph + 4);
    const vaddr = is64 ? word(table, ph + 16) : u32(table, ph + 8);
    const filesz = is64 ? word(table, ph + 32) : u32(table, ph + 16);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_INTERP && offset + filesz <= src.length) interp = src.slice(offset, offset + filesz).toString('latin1').replace(/\0.*$/s, '');
    else if (type === PT_DYNAMIC) dyn = { offset, size: filesz };
  }
  if (!dyn) return interp ? { interp } : undefined;
  const out: { interp?: string; needed?: string[]; runpath?: string[] } = interp ? { interp } : {};
  if (dyn.offset + dyn.size > src.length) return out;
  const section = src.slice(dyn.offset, dyn.offset + dyn.size);
  const entSize = is64 ? 16 : 8;
  const neededOffsets: number[] = [];
  const pathOffsets: number[] = [];
  let strtab: number | undefined;
  for (let o = 0; o + entSize <= section.length; o += entSize) {
    const tag = is64 ? word(section, o) : u32(section, o);
    const val = is64 ? word(section, o + 8) : u32(section, o + 4);
    if (tag === 0) break;
    if (tag === DT_NEEDED) neededOffsets.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_RUNPATH || tag === DT_RPATH) pathOffsets.push(val);
  }
  const seg = strtab === undefined ? undefined : loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
  if (!seg || strtab === undefined) return out;
  const base = seg.offset + (strtab - seg.vaddr);
  const needed: string[] = [];
  for (const o of neededOffsets) {
    const name = cString(src, base + o);
    if (name === undefined) return out; // strings cut off: the libraries are unknown (a hostile file stops at the first)
    needed.push(name);
  }
  out.needed = needed;
  const runpath = pathOffsets.flatMap((o) => (cString(src, base + o) ?? '').split(':').filter(Boolean));
  if (runpath.length > 0) out.runpath = runpath;
  return out;
}

const CPU_ARCH_NAMES = ['Pre-v4', 'v4', 'v4T', 'v5T', 'v5TE', 'v5TEJ', 'v6', 'v6KZ', 'v6T2', 'v6K', 'v7', 'v6-M', 'v6S-M', 'v7E-M', 'v8', 'v8-R', 'v8-M.base', 'v8-M.main', 'v8.1-M.main', 'v9'];

function uleb(b: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  let p = pos;
  for (;;) {
    if (p >= b.length) throw new RangeError('truncated ULEB128');
    const byte = b[p++]!;
    result += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [result, p];
    shift += 7;
    if (shift > 49) throw new RangeError('ULEB128 too long');
  }
}

/** The "aeabi" file-scope attributes of an .ARM.attributes section. */
export function parseArmAttributes(sec: Buffer, le: boolean): Pick<ArmAttributes, 'cpuArch' | 'cpuArchName' | 'floatAbi'> {
  const out: { cpuArch?: number; cpuArchName?: string; floatAbi?: 'hard' | 'soft' } = {};
  if (sec.length < 1 || sec[0] !== 0x41) return out; // 'A', format version
  let p = 1;
  try {
    while (p + 4 <= sec.length) {
      const len = le ? sec.readUInt32LE(p) : sec.readUInt32BE(p);
      if (len < 5 || p + len > sec.length) break;
      const end = p + len;
      const nameEnd = sec.indexOf(0, p + 4);
      const vendor = sec.toString('latin1', p + 4, nameEnd);
      let q = nameEnd + 1;
      if (vendor === 'aeabi') {
        while (q + 5 <= end) {
          const tag = sec[q]!;
          const size = le ? sec.readUInt32LE(q + 1) : sec.readUInt32BE(q + 1);
          const subEnd = Math.min(q + size, end);
          let r = q + 5;
          if (tag === 1) {
            // File scope: tag/value pairs. Strings: tags 4, 5, 67 and odd tags ≥ 32 (but 32 is ULEB+string).
            while (r < subEnd) {
              let t: number;
              [t, r] = uleb(sec, r);
              if (t === 4 || t === 5 || t === 67 || (t > 32 && t % 2 === 1)) {
                const z = sec.indexOf(0, r);
                r = z < 0 ? subEnd : z + 1;
              } else if (t === 32) {
                [, r] = uleb(sec, r);
                const z = sec.indexOf(0, r);
                r = z < 0 ? subEnd : z + 1;
              } else {
                let v: number;
                [v, r] = uleb(sec, r);
                if (t === 6) {
                  out.cpuArch = v;
                  out.cpuArchName = CPU_ARCH_NAMES[v] ?? `arch ${v}`;
                } else if (t === 28) {
                  out.floatAbi = v === 1 ? 'hard' : 'soft';
                }
              }
            }
          }
          if (size < 5) break;
          q += size;
        }
      }
      p = end;
    }
  } catch {
    // malformed attributes: report what was read
  }
  return out;
}

export function describeElf(e: ElfInfo): string {
  const parts = [`ELF${e.elfClass}`, e.endian === 'le' ? 'LSB' : 'MSB', elfMachineName(e.machine)];
  if (e.arm) {
    const extra: string[] = [];
    if (e.arm.eabiVersion) extra.push(`EABI${e.arm.eabiVersion}`);
    if (e.arm.floatAbi) extra.push(`${e.arm.floatAbi}-float`);
    if (e.arm.cpuArchName) extra.push(`Tag_CPU_arch ${e.arm.cpuArchName}`);
    if (extra.length) parts.push(`(${extra.join(', ')})`);
  }
  return parts.join(' ');
}

/** Highest Tag_CPU_arch a platform variant can run: arm/v5 → v5TEJ, v6 → v6K, v7 → v7, v8 → v8. */
export function maxCpuArchFor(variant: string | undefined): number {
  switch (variant) {
    case 'v5':
      return 5;
    case 'v6':
      return 9;
    case 'v8':
      return 14;
    default:
      return 10;
  }
}
