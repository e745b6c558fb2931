// ELF parsing checked against readelf's own output for Debian's busybox-static on each arch
// (fixtures: the first 64 bytes of each binary, the .ARM.attributes sections, readelf -h/-A text).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeElf, isElf, maxCpuArchFor, parseArmAttributes, parseElf, piecedBytes } from '../../src/verify/elf.js';
import { elfMachineName } from '../../src/platform/arch.js';

const dir = join(__dirname, '..', 'fixtures', 'elf');
const fx = (n: string) => readFileSync(join(dir, n));
/** A buffer cut into n-byte pieces, as a stream might deliver it. */
const split = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));
const readelfField = (text: string, field: string) => new RegExp(`^\\s*${field}:\\s+(.*)$`, 'm').exec(text)?.[1]?.trim();

describe('ELF headers agree with readelf -h', () => {
  for (const arch of ['amd64', 'i386', 'armhf', 'armel', 'arm64', 'ppc64el', 's390x']) {
    it(arch, () => {
      const info = parseElf(fx(`busybox-${arch}.head`))!;
      const text = fx(`busybox-${arch}.readelf-h.txt`).toString();
      expect(`ELF${info.elfClass}`).toBe(readelfField(text, 'Class'));
      expect(readelfField(text, 'Data')).toContain(info.endian === 'le' ? 'little endian' : 'big endian');
      const machine = readelfField(text, 'Machine')!;
      // readelf's names are longer ("Advanced Micro Devices X86-64"); ours must be inside them.
      expect(machine.toLowerCase()).toContain(elfMachineName(info.machine).toLowerCase().replace('powerpc64', 'powerpc64'));
      expect(info.flags).toBe(Number.parseInt(readelfField(text, 'Flags')!.split(',')[0]!, 16));
    });
  }

  it('ARM float ABI and EABI version from e_flags match readelf', () => {
    for (const arch of ['armhf', 'armel']) {
      const arm = parseElf(fx(`busybox-${arch}.head`))!.arm!;
      const flags = readelfField(fx(`busybox-${arch}.readelf-h.txt`).toString(), 'Flags')!;
      expect(flags, arch).toContain(`Version${arm.eabiVersion} EABI`);
      expect(flags, arch).toContain(`${arm.floatAbi}-float ABI`);
    }
  });

  it('is not fooled by non-ELF or truncated input', () => {
    expect(isElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
    expect(parseElf(Buffer.from('#!/bin/sh\n'))).toBeUndefined();
    expect(parseElf(fx('busybox-arm64.head').subarray(0, 30))).toBeUndefined();
  });
});

describe('.ARM.attributes agree with readelf -A', () => {
  for (const arch of ['armhf', 'armel']) {
    it(arch, () => {
      const a = parseArmAttributes(fx(`busybox-${arch}.ARM.attributes`), true);
      const text = fx(`busybox-${arch}.readelf-A.txt`).toString();
      expect(a.cpuArchName).toBe(readelfField(text, 'Tag_CPU_arch'));
      const vfpArgs = readelfField(text, 'Tag_ABI_VFP_args');
      expect(a.floatAbi).toBe(vfpArgs === 'VFP registers' ? 'hard' : vfpArgs === undefined ? undefined : 'soft');
    });
  }

  it('judges CPU architecture against the variant', () => {
    const v7 = parseArmAttributes(fx('busybox-armhf.ARM.attributes'), true).cpuArch!;
    const v5te = parseArmAttributes(fx('busybox-armel.ARM.attributes'), true).cpuArch!;
    expect(v7 <= maxCpuArchFor('v7')).toBe(true);
    expect(v7 <= maxCpuArchFor('v6')).toBe(false);
    expect(v5te <= maxCpuArchFor('v6')).toBe(true);
    expect(v5te <= maxCpuArchFor('v5')).toBe(true);
  });

  it('survives a truncated section', () => {
    const sec = fx('busybox-armhf.ARM.attributes');
    expect(() => parseArmAttributes(sec.subarray(0, 20), true)).not.toThrow();
  });

  it('describes a binary as evidence', () => {
    const info = { ...parseElf(fx('busybox-armhf.head'))!, arm: { ...parseElf(fx('busybox-armhf.head'))!.arm, ...parseArmAttributes(fx('busybox-armhf.ARM.attributes'), true) } };
    expect(describeElf(info)).toBe('ELF32 LSB ARM (EABI5, hard-float, Tag_CPU_arch v7)');
  });
});

describe('dynamic linking agrees with readelf -l -d (Debian bookworm /usr/bin/true)', () => {
  for (const arch of ['amd64', 'arm64', 'armhf']) {
    it(arch, () => {
      const text = fx(`true-${arch}.readelf-ld.txt`).toString();
      const interp = /Requesting program interpreter: (\S+)\]/.exec(text)![1];
      const needed = [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
      const info = parseElf(fx(`true-${arch}`), true)!;
      expect(info.dynamic?.interp).toBe(interp);
      expect(info.dynamic?.needed).toEqual(needed);
    });
  }
  it('a static binary has none; headers alone give the loader but not the libraries', () => {
    expect(parseElf(fx('busybox-arm64.head'))!.dynamic).toBeUndefined();
    const head = parseElf(fx('true-arm64').subarray(0, 4096))!;
    expect(head.dynamic?.interp).toBe('/lib/ld-linux-aarch64.so.1');
    expect(head.dynamic?.needed).toBeUndefined();
  });
});

describe('a file in the pieces a stream delivered reads as the whole file (no joining copy)', () => {
  it('any range of the pieces is the same bytes as that range of the whole', () => {
    const whole = fx('true-armhf');
    for (const n of [1, 7, 64, 4096]) {
      const p = piecedBytes(split(whole, n));
      expect(p.length).toBe(whole.length);
      for (const [s, e] of [[0, 64], [5, 6], [n - 1, n + 1], [100, 5000], [whole.length - 10, whole.length + 50], [whole.length + 1, whole.length + 9]] as const) {
        expect(p.slice(s, e).equals(whole.subarray(s, e)), `${n}-byte pieces, [${s}, ${e})`).toBe(true);
      }
    }
  });

  for (const f of ['true-amd64', 'true-arm64', 'true-armhf', 'busybox-armhf.head', 'busybox-s390x.head']) {
    it(f, () => {
      const whole = fx(f);
      const want = parseElf(whole, true);
      expect(want).toBeDefined();
      for (const n of [1, 3, 64, 1000, 65536]) expect(parseElf(piecedBytes(split(whole, n)), true), `${n}-byte pieces`).toEqual(want);
    });
  }
});

describe('a cut-off or hostile file reads the same in pieces as whole', () => {
  it('every cut of a dynamic binary: the loader and libraries known, or not, alike', () => {
    const whole = fx('true-armhf');
    let sawLibs = 0;
    let sawNoLibs = 0;
    for (let cut = 0; cut <= whole.length; cut += 97) {
      const part = whole.subarray(0, cut);
      const want = parseElf(part, false);
      for (const n of [5, 300]) expect(parseElf(piecedBytes(split(part, n)), false), `cut at ${cut}, ${n}-byte pieces`).toEqual(want);
      if (want?.dynamic?.needed) sawLibs++;
      else if (want) sawNoLibs++;
    }
    // The cuts cross the dynamic strings: both outcomes were compared.
    expect(sawLibs).toBeGreaterThan(0);
    expect(sawNoLibs).toBeGreaterThan(0);
  });

  it('a library name longer than the string window, and one with no NUL before the end', () => {
    const whole = Buffer.from(fx('true-amd64'));
    const text = fx('true-amd64.readelf-ld.txt').toString();
    const first = /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/.exec(text)![1]!;
    // Overwrite the bytes from the first library name's start to the end with a long run of 'a'.
    const at = whole.indexOf(Buffer.from(`${first}\0`));
    expect(at).toBeGreaterThan(0);
    const long = Buffer.from(whole);
    long.fill(0x61, at, at + 1000);
    long[at + 1000] = 0;
    const noNul = Buffer.from(whole);
    noNul.fill(0x61, at);
    for (const b of [long, noNul]) {
      const want = parseElf(b, true);
      for (const n of [7, 256, 4096]) expect(parseElf(piecedBytes(split(b, n)), true)).toEqual(want);
    }
    expect(parseElf(long, true)!.dynamic!.needed![0]).toBe('a'.repeat(1000));
    expect(parseElf(noNul, true)!.dynamic!.needed).toBeUndefined();
  });
});
