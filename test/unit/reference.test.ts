import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from '../../src/registry/auth.js';
import { familiarRepository, formatReference, isLoopbackRegistry, parseReference } from '../../src/oci/reference.js';
import { registerSecret, scrub } from '../../src/util/secrets.js';

describe('the repository as `docker image ls` names it', () => {
  // What Docker 28.5 (containerd store) listed for images tagged with the name on the left.
  const seen: [string, string][] = [
    ['docker.io/library/fam1:x', 'fam1'],
    ['docker.io/user/fam2:x', 'user/fam2'],
    ['docker.io/library/a/fam3:x', 'library/a/fam3'],
    ['index.docker.io/user/fam4:x', 'user/fam4'],
    ['localhost:5000/it/x:foo', 'localhost:5000/it/x'],
  ];
  for (const [ref, listed] of seen) it(ref, () => expect(familiarRepository(parseReference(ref))).toBe(listed));
});

describe('image references', () => {
  const table: [string, string][] = [
    ['alpine', 'docker.io/library/alpine'],
    ['alpine:3.19', 'docker.io/library/alpine:3.19'],
    ['user/app', 'docker.io/user/app'],
    ['localhost:5000/nodeinfo:multiarch', 'localhost:5000/nodeinfo:multiarch'],
    ['localhost/app', 'localhost/app'],
    ['127.0.0.1:5000/a/b/c:t', '127.0.0.1:5000/a/b/c:t'],
    [`reg.example:443/app@sha256:${'a'.repeat(64)}`, `reg.example:443/app@sha256:${'a'.repeat(64)}`],
  ];
  for (const [input, want] of table) it(`${input}`, () => expect(formatReference(parseReference(input))).toBe(want));

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['UPPER/app', /repository component "UPPER"/],
    ['localhost:5000/app:-bad', /tag "-bad"/],
    ['app@sha256:abc', /digest "sha256:abc"/],
    ['localhost:5000/', /no repository/],
  ];
  for (const [input, msg] of bad) it(`rejects "${input}"`, () => expect(() => parseReference(input)).toThrow(msg));

  it('knows loopback registries', () => {
    expect(isLoopbackRegistry('localhost:5000')).toBe(true);
    expect(isLoopbackRegistry('127.0.0.5:5000')).toBe(true);
    expect(isLoopbackRegistry('[::1]:5000')).toBe(true);
    expect(isLoopbackRegistry('registry.example:5000')).toBe(false);
  });
});

describe('WWW-Authenticate', () => {
  it('parses a Bearer challenge as distribution sends it', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://127.0.0.1:5001/token",service="registry.test",scope="repository:app:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://127.0.0.1:5001/token', service: 'registry.test', scope: 'repository:app:pull,push' },
    });
  });
  it('parses Basic and ignores other schemes', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseWwwAuthenticate('Negotiate abc')).toBeUndefined();
    expect(parseWwwAuthenticate(undefined)).toBeUndefined();
  });
});

describe('secret scrubbing', () => {
  it('removes registered secrets, their base64 and auth headers', () => {
    registerSecret('hunter2-password');
    const b64 = Buffer.from('hunter2-password').toString('base64');
    const out = scrub(`pw=hunter2-password b64=${b64} Authorization: Bearer abc.def.ghi`);
    expect(out).not.toContain('hunter2-password');
    expect(out).not.toContain(b64);
    expect(out).not.toContain('abc.def.ghi');
  });
});
