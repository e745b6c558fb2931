import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { elfHeaderFor, elfMaskFor, platformStatus, registrationLine } from '../../src/binfmt/binfmt.js';
import { entryMatches, parseBinfmtEntry } from '../../src/binfmt/entry.js';
import { parsePlatform } from '../../src/platform/platform.js';

// Real /proc/sys/fs/binfmt_misc/* files captured on this machine's kernel.
const dir = join(__dirname, '..', 'fixtures', 'binfmt');
const load = (name: string) => parseBinfmtEntry(name, readFileSync(join(dir, name), 'utf8'));

describe('binfmt_misc entry parsing', () => {
  it('parses a magic handler with flags', () => {
    const e = load('qemu-aarch64');
    expect(e.enabled).toBe(true);
    expect(e.interpreter).toBe('/usr/libexec/qemu-binfmt/aarch64-binfmt-P');
    expect(e.flags).toBe('POCF');
    expect(e.offset).toBe(0);
    expect(e.magic?.toString('hex')).toBe('7f454c460201010000000000000000000200b700');
    expect(e.mask?.toString('hex')).toBe('ffffffffffffff00fffffffffffffffffeffffff');
  });

  it('parses a disabled handler without flags', () => {
    const e = load('cbtest-mips');
    expect(e.enabled).toBe(false);
    expect(e.flags).toBe('');
    expect(e.interpreter).toBe('/usr/bin/qemu-mips64el-static');
  });

  it('parses an extension handler', () => {
    const e = load('cbtest-ext');
    expect(e.extension).toBe('.cbtestx');
    expect(e.magic).toBeUndefined();
  });

  it('rejects a file that is not an entry', () => {
    expect(() => parseBinfmtEntry('x', 'garbage\n')).toThrow(/expected enabled or disabled/);
  });
});

describe('matching handlers to platforms', () => {
  const handlers = readdirSync(dir).map(load);

  it('our ELF header for a platform is claimed by the real handler for it, and only by it', () => {
    const claims = (p: string) => handlers.filter((h) => entryMatches(h, elfHeaderFor(parsePlatform(p)))).map((h) => h.name);
    expect(claims('linux/arm64')).toEqual(['qemu-aarch64']);
    expect(claims('linux/arm/v7')).toEqual(['qemu-arm']);
    expect(claims('linux/s390x')).toEqual(['qemu-s390x']);
    expect(claims('linux/mips64le')).toEqual(['cbtest-mips']);
    expect(claims('linux/ppc64le')).toEqual([]);
  });

  it('generates the magic and mask the kernel printed back for our registrations', () => {
    const e = load('qemu-aarch64');
    expect(elfHeaderFor(parsePlatform('linux/arm64')).toString('hex')).toBe(e.magic?.toString('hex'));
    expect(elfMaskFor(parsePlatform('linux/arm64')).toString('hex')).toBe(e.mask?.toString('hex'));
    const s = load('qemu-s390x');
    expect(elfHeaderFor(parsePlatform('linux/s390x')).toString('hex')).toBe(s.magic?.toString('hex'));
    expect(elfMaskFor(parsePlatform('linux/s390x')).toString('hex')).toBe(s.mask?.toString('hex'));
  });

  it('reports the state of each platform', () => {
    expect(platformStatus(parsePlatform('linux/arm64'), handlers).state).toBe('ok');
    expect(platformStatus(parsePlatform('linux/amd64'), handlers).state).toBe('native');
    expect(platformStatus(parsePlatform('linux/mips64le'), handlers).state).toBe('disabled');
    expect(platformStatus(parsePlatform('linux/ppc64le'), handlers).state).toBe('missing');
    const noF = handlers.map((h) => (h.name === 'qemu-arm' ? { ...h, flags: 'OC' } : h));
    const st = platformStatus(parsePlatform('linux/arm/v7'), noF);
    expect(st.state).toBe('no-fix-binary');
    expect(st.detail).toMatch(/no F flag/);
  });

  it('escapes every byte in the registration line', () => {
    const line = registrationLine('qemu-arm', parsePlatform('linux/arm/v7'), '/usr/bin/qemu-arm-static', 'OCF');
    expect(line).toBe(
      ':qemu-arm:M:0:\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x28\\x00:' +
        '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-arm-static:OCF',
    );
  });
});
