// The whole-image binaries check, over filesystems made of real ELF files (Debian bookworm's
// /usr/bin/true for amd64, arm64 and armhf; busybox-static's headers).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { globMatcher, judgeBinaries } from '../../src/verify/binaries.js';
import { parseElf } from '../../src/verify/elf.js';
import { ImageFs } from '../../src/verify/image-fs.js';
import { parsePlatform } from '../../src/platform/platform.js';

const elf = (f: string) => parseElf(readFileSync(join(__dirname, '..', 'fixtures', 'elf', f)), true)!;
const trueArm64 = elf('true-arm64');
const trueAmd64 = elf('true-amd64');
const busyboxArm64 = elf('busybox-arm64.head');
const cfg = { architecture: 'arm64', os: 'linux', config: { Cmd: ['/usr/bin/true'] } };
const arm64 = parsePlatform('linux/arm64');

type Node = { type: 'file' | 'dir' | 'symlink'; link?: string; elf?: ReturnType<typeof elf> };
function image(entries: Record<string, Node>): ImageFs {
  const fs = new ImageFs();
  fs.beginLayer(0);
  for (const [path, n] of Object.entries(entries)) {
    const e = fs.add(path, { type: n.type, size: 1, mode: 0o755, ...(n.link ? { link: n.link } : {}) });
    if (e && n.elf) e.elf = n.elf;
  }
  fs.endLayer();
  return fs;
}
/** A Debian-like arm64 userland: the loader behind its usual symlink, libc in the multiarch folder. */
const userland: Record<string, Node> = {
  'usr/lib/aarch64-linux-gnu': { type: 'dir' },
  'lib': { type: 'symlink', link: 'usr/lib' },
  'usr/lib/ld-linux-aarch64.so.1': { type: 'symlink', link: 'aarch64-linux-gnu/ld-linux-aarch64.so.1' },
  'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1': { type: 'file', elf: busyboxArm64 },
  'usr/lib/aarch64-linux-gnu/libc.so.6': { type: 'file', elf: busyboxArm64 },
  'usr/bin/true': { type: 'file', elf: trueArm64 },
  'etc/passwd': { type: 'file' },
};

describe('every ELF file of the image', () => {
  it('passes a right-arch userland, counting what it read', () => {
    const r = judgeBinaries(image(userland), arm64, cfg, true);
    expect(r.check.verdict).toBe('pass');
    expect(r.check.evidence).toMatch(/all 3 ELF files of 4 files agree/);
    expect(r.stats).toEqual({ filesScanned: 4, elfChecked: 3, mismatches: 0, excused: 0 });
  });

  it('names each wrong-arch file in the middle of it, with the binary that needs a foreign library', () => {
    const fs = image({
      ...userland,
      'usr/local/bin/busybox': { type: 'file', elf: trueAmd64 },
      'usr/lib/aarch64-linux-gnu/libc.so.6': { type: 'file', elf: trueAmd64 },
    });
    const r = judgeBinaries(fs, arm64, cfg, true);
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toMatch(/2 of 4 ELF files are not linux\/arm64: /);
    expect(r.check.evidence).toContain('/usr/local/bin/busybox is ELF64 LSB x86-64');
    expect(r.check.evidence).toContain('/usr/lib/aarch64-linux-gnu/libc.so.6 is ELF64 LSB x86-64 (needed by /usr/bin/true)');
    expect(r.stats.mismatches).toBe(2);
  });

  it('a RUNPATH with $ORIGIN is looked up from each program\'s own folder', () => {
    const withOrigin = { ...trueArm64, dynamic: { ...trueArm64.dynamic, needed: [...(trueArm64.dynamic?.needed ?? []), 'libfoo.so'], runpath: ['$ORIGIN/../lib'] } };
    const fs = image({
      ...userland,
      'opt/a/bin/app': { type: 'file', elf: withOrigin },
      'opt/a/lib/libfoo.so': { type: 'file', elf: busyboxArm64 },
      'opt/b/bin/app': { type: 'file', elf: withOrigin },
      'opt/b/lib/libfoo.so': { type: 'file', elf: trueAmd64 },
    });
    const r = judgeBinaries(fs, arm64, cfg, true);
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('/opt/b/lib/libfoo.so is ELF64 LSB x86-64 (needed by /opt/b/bin/app)');
    expect(r.check.evidence).not.toContain('needed by /opt/a/bin/app');
  });

  it('a dynamic ELF whose loader is missing, or foreign, fails naming the loader', () => {
    const { 'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1': _gone, ...noLoader } = userland;
    const missing = judgeBinaries(image(noLoader), arm64, cfg, true);
    expect(missing.check.verdict).toBe('fail');
    expect(missing.check.evidence).toContain('loader /lib/ld-linux-aarch64.so.1 is not in the image, expected AArch64 for linux/arm64 (needed by /usr/bin/true)');
    const foreign = judgeBinaries(image({ ...userland, 'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1': { type: 'file', elf: trueAmd64 } }), arm64, cfg, true);
    expect(foreign.check.evidence).toContain('loader /lib/ld-linux-aarch64.so.1 (/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1) is ELF64 LSB x86-64');
  });

  it('--allow excuses the paths it matches and only those', () => {
    const fs = image({ ...userland, 'usr/share/qemu/helper': { type: 'file', elf: trueAmd64 }, 'usr/local/bin/x': { type: 'file', elf: trueAmd64 } });
    const one = judgeBinaries(fs, arm64, cfg, true, { allow: ['/usr/share/qemu/**'] });
    expect(one.check.verdict).toBe('fail');
    expect(one.check.evidence).toContain('/usr/local/bin/x is ELF64 LSB x86-64');
    expect(one.check.evidence).not.toContain('/usr/share/qemu/helper');
    expect(one.stats).toMatchObject({ mismatches: 1, excused: 1 });
    const both = judgeBinaries(fs, arm64, cfg, true, { allow: ['/usr/share/qemu/**', 'usr/local/bin/*'] });
    expect(both.check.verdict).toBe('pass');
    expect(both.check.evidence).toMatch(/\(2 excused by --allow\)/);
  });

  it('lists a few mismatches in full and counts the rest', () => {
    const many: Record<string, Node> = { ...userland };
    for (let i = 0; i < 25; i++) many[`opt/x/bin${String(i).padStart(2, '0')}`] = { type: 'file', elf: trueAmd64 };
    const r = judgeBinaries(image(many), arm64, cfg, true);
    expect(r.check.evidence).toMatch(/25 of 28 ELF files are not linux\/arm64: .*, … and 15 more/);
    expect(r.check.evidence.match(/is ELF64 LSB x86-64/g)).toHaveLength(10);
  });

  it('a library with code for a newer ARM is a warning (runtime-dispatched, as Debian armhf libgcrypt); a program is a failure', () => {
    const armhf = elf('true-armhf');
    const v8 = { cpuArch: 14, cpuArchName: 'v8' };
    const lib = { ...armhf, type: 3, dynamic: { needed: ['libc.so.6'] }, arm: { ...armhf.arm, ...v8 } };
    const prog = { ...armhf, arm: { ...armhf.arm, ...v8 } };
    const armCfg = { architecture: 'arm', variant: 'v7', os: 'linux', config: { Cmd: ['/bin/sh'] } };
    const base = { 'bin/sh': { type: 'file' as const, elf: armhf }, 'lib/ld-linux-armhf.so.3': { type: 'file' as const, elf: { ...armhf, dynamic: undefined } } };
    const withLib = judgeBinaries(image({ ...base, 'usr/lib/libgcrypt.so.20': { type: 'file', elf: lib } }), parsePlatform('linux/arm/v7'), armCfg, true);
    expect(withLib.check.verdict).toBe('warn');
    expect(withLib.check.evidence).toMatch(/1 shared library carries code for a newer ARM than linux\/arm\/v7 \(usually chosen at run time\): \/usr\/lib\/libgcrypt\.so\.20 \(v8\)/);
    const withProg = judgeBinaries(image({ ...base, 'usr/bin/tool': { type: 'file', elf: prog } }), parsePlatform('linux/arm/v7'), armCfg, true);
    expect(withProg.check.verdict).toBe('fail');
    expect(withProg.check.evidence).toMatch(/\/usr\/bin\/tool is ELF32 LSB ARM .*\(built for ARM v8, newer than linux\/arm\/v7 runs\)/);
  });

  it('globs: * stays in a folder, ** crosses folders', () => {
    const m = globMatcher(['/usr/lib/*.so', '/opt/**', 'etc/x?']);
    expect(m('/usr/lib/a.so')).toBe(true);
    expect(m('/usr/lib/sub/a.so')).toBe(false);
    expect(m('/opt/a/b/c')).toBe(true);
    expect(m('/etc/x1')).toBe(true);
    expect(m('/etc/x12')).toBe(false);
  });
});
