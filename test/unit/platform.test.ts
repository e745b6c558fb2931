import { describe, expect, it } from 'vitest';
import { expectedUname, formatPlatform, isNative, parsePlatform, PlatformError, samePlatform } from '../../src/platform/platform.js';

describe('parsePlatform normalises as containerd does', () => {
  const table: [string, string][] = [
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['x86_64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['arm64/v8', 'linux/arm64'],
    ['aarch64', 'linux/arm64'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['LINUX/ARM/V5', 'linux/arm/v5'],
    ['linux/i386', 'linux/386'],
    ['linux/i686', 'linux/386'],
    ['linux/ppc64el', 'linux/ppc64le'],
    ['linux/s390x', 'linux/s390x'],
    ['linux/riscv64', 'linux/riscv64'],
    ['linux/mips64el', 'linux/mips64le'],
    ['windows/amd64', 'windows/amd64'],
  ];
  for (const [input, want] of table) {
    it(`${input} → ${want}`, () => expect(formatPlatform(parsePlatform(input))).toBe(want));
  }

  const bad: [string, RegExp][] = [
    ["linux/sparc", /unknown architecture "sparc" \(valid: .*amd64.*arm64.*ppc64le/],
    ['linux/arm/v9', /variant "v9" is not valid for architecture arm \(valid: v5, v6, v7, v8\)/],
    ['linux/s390x/v2', /variant "v2" is not valid for architecture s390x \(it has no variants\)/],
    ['plan10/amd64', /unknown os "plan10"/],
    ['linux', /names an os but no architecture/],
    ['linux//v7', /malformed platform/],
    ['a/b/c/d', /malformed platform/],
    ['', /empty platform/],
  ];
  for (const [input, msg] of bad) {
    it(`rejects "${input}"`, () => {
      expect(() => parsePlatform(input)).toThrow(PlatformError);
      expect(() => parsePlatform(input)).toThrow(msg);
    });
  }
});

describe('platform helpers', () => {
  it('compares after normalisation', () => {
    expect(samePlatform({ os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(true);
    expect(samePlatform({ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(samePlatform({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
    expect(samePlatform({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(false);
  });

  it('knows what runs natively on an amd64 host', () => {
    const host = { os: 'linux', architecture: 'amd64' };
    expect(isNative(parsePlatform('linux/amd64'), host)).toBe(true);
    expect(isNative(parsePlatform('linux/386'), host)).toBe(true);
    expect(isNative(parsePlatform('linux/arm64'), host)).toBe(false);
  });

  it('expects the uname machine of each platform', () => {
    const m = (p: string) => expectedUname(parsePlatform(p));
    expect(m('linux/amd64').machines).toEqual(['x86_64']);
    expect(m('linux/386').machines).toEqual(['i686', 'x86_64']);
    expect(m('linux/arm64').machines).toEqual(['aarch64']);
    expect(m('linux/arm/v7').machines).toEqual(['armv7l']);
    expect(m('linux/arm/v6')).toEqual({ machines: ['armv6l'], env: { QEMU_CPU: 'arm1176' } });
    expect(m('linux/ppc64le').machines).toEqual(['ppc64le']);
    expect(m('linux/s390x').machines).toEqual(['s390x']);
    expect(m('linux/riscv64').machines).toEqual(['riscv64']);
    expect(m('linux/mips64le').machines).toEqual(['mips64']);
    expect(expectedUname(parsePlatform('linux/arm64'), 'armv8b').machines).toEqual(['armv8b']);
  });
});
