// The names a run gives its images (plan.ts) and the names the sweep of a killed run looks for
// (sweep.ts) must agree, or a SIGKILL leaves a name behind for good.
import { describe, expect, it } from 'vitest';
import type { BuildConfig, PlatformTarget } from '../../src/config/config.js';
import { familiarRepository, parseReference } from '../../src/oci/reference.js';
import { runTag } from '../../src/pipeline/plan.js';
import { isRunName, namePattern } from '../../src/pipeline/sweep.js';

const image = (ref: string) => parseReference(ref);
const config = (ref: string, tag: string) => ({ image: image(ref), tag }) as unknown as BuildConfig;
const target = { suffix: 'arm64', platform: { os: 'linux', architecture: 'arm64' } } as unknown as PlatformTarget;

/** `docker image ls`'s `{{.Repository}}:{{.Tag}}` of a name runTag made. */
const listed = (name: string) => {
  const r = parseReference(name);
  return `${familiarRepository(r)}:${r.tag}`;
};

/** Go's path.Match for the patterns namePattern makes: `*` within one path component, `\` escapes. */
const matches = (pattern: string, name: string) => {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(name);
};

describe("the sweep finds every name a run gives its images, and no other run's", () => {
  const id = '0a1b2c3d';
  const cases: [string, string][] = [
    ['localhost:5000/it/app', 'v1'],
    ['docker.io/library/app', 'v1'],
    ['user/app', 'v1'],
    ['[::1]:5000/team/app', 'v1'],
    ['localhost:5000/it/app', 'x'.repeat(120)], // too long for <tag>-<suffix>-cb-<id>: cb-<id>-<suffix>
  ];
  for (const [ref, tag] of cases) {
    for (const role of ['', '-test'] as const) {
      it(`${ref}:${tag.slice(0, 20)}${tag.length > 20 ? '…' : ''}${role}`, () => {
        const name = listed(runTag(config(ref, tag), target, id, role));
        expect(name.split(':').at(-1)!.length).toBeLessThanOrEqual(128);
        expect(isRunName(name, id)).toBe(true);
        expect(isRunName(name, 'ffffffff')).toBe(false);
        expect(matches(namePattern(familiarRepository(image(ref)), id), name)).toBe(true);
        expect(matches(namePattern(familiarRepository(image(ref)), 'ffffffff'), name)).toBe(false);
      });
    }
  }

  it('escapes what Go would read as a pattern in the repository (an IPv6 registry)', () => {
    expect(namePattern('[::1]:5000/team/app', id)).toBe('\\[::1\\]:5000/team/app:*cb-0a1b2c3d*');
  });
});
