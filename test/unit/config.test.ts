import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import Ajv from 'ajv';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, PLATFORM_FIELDS, TOP_FIELDS } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { parsePlatform } from '../../src/platform/platform.js';

const dir = mkdtempSync(join(tmpdir(), 'cb-config-'));
function write(name: string, content: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return f;
}
const good = {
  image: 'localhost:5000/nodeinfo',
  tag: 'multiarch',
  platforms: [
    { platform: 'linux/amd64', suffix: 'amd64' },
    { platform: 'linux/armhf', suffix: 'arm32' },
    { platform: 'aarch64', suffix: 'arm64', uname: 'aarch64' },
  ],
};

function errorOf(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('platforms.json', () => {
  it('loads and normalises the matrix, resolving paths against the file', () => {
    const f = write('good.json', good);
    const c = loadConfig(f);
    expect(c.image).toEqual({ registry: 'localhost:5000', repository: 'nodeinfo' });
    expect(c.tag).toBe('multiarch');
    expect(c.platforms.map((p) => `${p.platform.os}/${p.platform.architecture}${p.platform.variant ? `/${p.platform.variant}` : ''}`)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    expect(c.context).toBe(dir);
    expect(c.dockerfile).toBe(join(dir, 'Dockerfile'));
    expect(c.platforms[2]!.uname).toBe('aarch64');
  });

  it('applies overrides and filters platforms', () => {
    const c = loadConfig(write('good2.json', good), { image: 'localhost:5000/other', tag: 'v2', platforms: [parsePlatform('linux/arm64')] });
    expect(c.image.repository).toBe('other');
    expect(c.tag).toBe('v2');
    expect(c.platforms.map((p) => p.suffix)).toEqual(['arm64']);
    const e = errorOf(() => loadConfig(write('good3.json', good), { platforms: [parsePlatform('linux/s390x')] }));
    expect(e.message).toMatch(/--platform: linux\/s390x is not in the matrix \(it has: linux\/amd64, linux\/arm\/v7, linux\/arm64\)/);
  });

  const cases: [string, unknown, RegExp][] = [
    ['unknown platform', { ...good, platforms: [{ platform: 'linux/sparc64', suffix: 'x' }] }, /platforms\[0\]\.platform: unknown architecture "sparc64" \(valid: /],
    ['bad variant', { ...good, platforms: [{ platform: 'linux/arm64/v7', suffix: 'x' }] }, /platforms\[0\]\.platform: variant "v7" is not valid for architecture arm64/],
    ['duplicate platform', { ...good, platforms: [{ platform: 'linux/arm64', suffix: 'a' }, { platform: 'linux/aarch64', suffix: 'b' }] }, /platforms\[1\]\.platform: duplicate platform linux\/arm64 \(also platforms\[0\]: "linux\/arm64"\)/],
    ['duplicate suffix', { ...good, platforms: [{ platform: 'linux/arm64', suffix: 'a' }, { platform: 'linux/amd64', suffix: 'a' }] }, /platforms\[1\]\.suffix: duplicate suffix "a"/],
    ['bad suffix', { ...good, platforms: [{ platform: 'linux/arm64', suffix: 'a/b' }] }, /platforms\[0\]\.suffix: "a\/b" does not make a valid tag/],
    ['bad image', { ...good, image: 'Localhost:5000/UPPER' }, /image: invalid reference/],
    ['image with tag', { ...good, image: 'localhost:5000/app:1.0' }, /image: "localhost:5000\/app:1\.0" includes a tag or digest/],
    ['missing image', { platforms: good.platforms }, /: image: required/],
    ['no platforms', { image: 'x/y', platforms: [] }, /platforms: must list at least one platform/],
    ['unknown field', { ...good, platfroms: [] }, /unknown field "platfroms" \(allowed: image, tag/],
    ['unknown platform field', { ...good, platforms: [{ platform: 'linux/arm64', suffix: 'a', arch: 'x' }] }, /platforms\[0\]: unknown field "arch" \(allowed: platform, suffix, uname, buildArgs, dockerfile, target, network, node, test\)/],
    ['bad tag', { ...good, tag: '-x' }, /tag: "-x" is not a valid tag/],
  ];
  for (const [name, content, msg] of cases) {
    it(`rejects ${name} naming the file and field`, () => {
      const f = write(`${name.replace(/ /g, '-')}.json`, content);
      const e = errorOf(() => loadConfig(f));
      expect(e.message.startsWith(f)).toBe(true);
      expect(e.message).toMatch(msg);
    });
  }

  it('locates JSON syntax errors by line and column', () => {
    const f = write('syntax.json', '{\n  "image": "x/y",\n  "platforms": [,]\n}\n');
    const e = errorOf(() => loadConfig(f));
    expect(e.message).toMatch(/not valid JSON: .* at line 3, column 17/);
  });

  it('names a missing file', () => {
    const e = errorOf(() => loadConfig(join(dir, 'nope.json')));
    expect(e.message).toMatch(/nope\.json: cannot read: ENOENT/);
  });
});

describe('platforms.json documentation', () => {
  const root = join(__dirname, '..', '..');
  const schema = JSON.parse(readFileSync(join(root, 'schema', 'platforms.schema.json'), 'utf8')) as {
    properties: Record<string, unknown> & { platforms: { items: { properties: Record<string, unknown> } } };
  };
  it('the JSON Schema and the README table name every field the loader accepts', () => {
    expect(Object.keys(schema.properties).filter((k) => k !== '$schema').sort()).toEqual(TOP_FIELDS.split(', ').sort());
    expect(Object.keys(schema.properties.platforms.items.properties).sort()).toEqual(PLATFORM_FIELDS.split(', ').sort());
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const f of TOP_FIELDS.split(', ')) expect(readme, f).toContain(`\`${f}\``);
    for (const f of PLATFORM_FIELDS.split(', ')) expect(readme, f).toMatch(new RegExp(`\`platforms\\[\\]\\.${f}\``));
  });
  it('every platforms.json in the repository validates against the schema and loads', () => {
    const validate = new Ajv({ strict: false }).compile(schema);
    const files = [join(root, 'platforms.json'), join(root, 'example', 'busybox', 'platforms.json'), join(root, 'bench', 'p3', 'platforms.json')];
    for (const d of readdirSync(join(root, 'test', 'fixtures'))) {
      const f = join(root, 'test', 'fixtures', d, 'platforms.json');
      if (existsSync(f)) files.push(f);
    }
    expect(files.length).toBeGreaterThan(8);
    for (const f of files) {
      expect(validate(JSON.parse(readFileSync(f, 'utf8'))), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(loadConfig(f).platforms.length).toBeGreaterThan(0);
    }
  });
});

describe('input a file or flag must not get away with', () => {
  it('refuses a key given twice, which JSON.parse would silently take the last of', () => {
    const f = write('dup.json', '{\n  "image": "localhost:5000/a",\n  "tag": "v1",\n  "tag": "v2",\n  "platforms": [{ "platform": "linux/amd64", "suffix": "amd64" }]\n}\n');
    const e = errorOf(() => loadConfig(f));
    expect(e.message).toMatch(/dup\.json: a key appears twice in one object at line 4, column \d+/);
  });
  it('refuses build arg names ARG cannot have, and values the kernel would refuse', () => {
    expect(errorOf(() => loadConfig(write('argkey.json', { ...good, buildArgs: { 'A=B': '1' } }))).message).toMatch(/argkey\.json: buildArgs: A=B: not a build arg name/);
    expect(errorOf(() => loadConfig(write('argkey2.json', { ...good, platforms: [{ platform: 'linux/amd64', suffix: 'a', buildArgs: { '': 'x' } }] }))).message).toMatch(/platforms\[0\]\.buildArgs: : not a build arg name/);
    expect(errorOf(() => loadConfig(write('argbig.json', { ...good, buildArgs: { BIG: 'x'.repeat(200_000) } }))).message).toMatch(/buildArgs: BIG: the value is 200000 bytes; an argument may be at most 131072 bytes/);
  });
});
