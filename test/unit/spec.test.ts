import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { expandTemplate, parseSpecText } from '../../src/manifest/spec.js';
import { parsePlatform } from '../../src/platform/platform.js';

describe("manifest-tool's YAML spec", () => {
  it('parses the classic spec unchanged, normalising platform fields', () => {
    const s = parseSpecText(
      `image: registry/app:multiarch
tags: ['1.0', latest]
manifests:
  - image: registry/app:multiarch-arm32
    platform: {architecture: arm, os: linux}
  - image: registry/app:multiarch-arm64
    platform: {architecture: aarch64, os: linux, variant: v8}
  - image: registry/app:multiarch-win
    platform: {architecture: amd64, os: windows, osversion: 10.0.17763.1577, osfeatures: [win32k]}
  - image: registry/app:multiarch-amd64
`,
      'spec.yaml',
    );
    expect(s.target).toEqual({ registry: 'docker.io', repository: 'registry/app', tag: 'multiarch' });
    expect(s.tags).toEqual(['1.0', 'latest']);
    expect(s.children.map((c) => c.platform)).toEqual([
      { architecture: 'arm', os: 'linux', variant: 'v7' },
      { architecture: 'arm64', os: 'linux' },
      { architecture: 'amd64', os: 'windows', osVersion: '10.0.17763.1577', osFeatures: ['win32k'] },
      {},
    ]);
  });

  const bad: [string, string, string, RegExp][] = [
    ['a target digest', `image: a/b@sha256:${'0'.repeat(64)}\nmanifests: [{image: a/b:c}]\n`, 'image', /must be a tag/],
    ['a variant without an architecture', 'image: a/b:c\nmanifests: [{image: a/b:d, platform: {os: linux, variant: v7}}]\n', 'manifests[0].platform.variant', /needs an architecture/],
    ['an unknown os', 'image: a/b:c\nmanifests: [{image: a/b:d, platform: {os: temple, architecture: amd64}}]\n', 'manifests[0].platform.os', /unknown os "temple"/],
    ['a bad child reference', 'image: a/b:c\nmanifests: [{image: "A B"}]\n', 'manifests[0].image', /invalid manifests\[0\]\.image/],
    ['no manifests', 'image: a/b:c\nmanifests: []\n', 'manifests', /at least one/],
    ['an unknown platform field', 'image: a/b:c\nmanifests: [{image: a/b:d, platform: {arch: amd64}}]\n', 'manifests[0].platform', /unknown field "arch" \(allowed: architecture, os, variant/],
  ];
  for (const [name, text, field, msg] of bad) {
    it(`rejects ${name}`, () => {
      try {
        parseSpecText(text, 'spec.yaml');
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).field).toBe(field);
        expect((e as Error).message).toMatch(msg);
      }
    });
  }

  it('locates YAML syntax errors', () => {
    expect(() => parseSpecText('image: a\nmanifests:\n  - image: [x\n', 's.yaml')).toThrow(/s\.yaml: not valid YAML: .* at line 4, column 1/);
  });
});

describe('from-args templates', () => {
  it('expands OS, ARCH, VARIANT and ARCHVARIANT as manifest-tool does', () => {
    expect(expandTemplate('reg/app:1.0-OS-ARCH', parsePlatform('linux/arm64'))).toBe('reg/app:1.0-linux-arm64');
    expect(expandTemplate('reg/app:1.0-ARCHVARIANT', parsePlatform('linux/arm/v7'))).toBe('reg/app:1.0-armv7');
    expect(expandTemplate('reg/app:1.0-ARCHVARIANT', parsePlatform('linux/amd64'))).toBe('reg/app:1.0-amd64');
    expect(expandTemplate('reg/app:ARCH-VARIANT', parsePlatform('linux/arm/v6'))).toBe('reg/app:arm-v6');
  });
});
