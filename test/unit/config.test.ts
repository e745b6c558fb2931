import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Ajv from 'ajv';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flagsConfig, loadConfig, PLATFORM_FIELDS, TOP_FIELDS } from '../../src/config/config.js';
import { initText } from '../../src/cli/commands/init.js';
import { formatReference } from '../../src/oci/reference.js';
import { ConfigError } from '../../src/errors.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../../src/platform/platform.js';

const dir = mkdtempSync(join(tmpdir(), 'cb-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
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
  });

  it('--platform may add a platform the file lacks: built with the top-level settings under a derived suffix', () => {
    const f = write('good3.json', { ...good, buildArgs: { A: '1' }, network: 'host', target: 'app' });
    const c = loadConfig(f, { platforms: [parsePlatform('linux/arm64'), parsePlatform('linux/s390x'), parsePlatform('linux/arm/v6')] });
    expect(c.platforms.map((p) => [p.suffix, p.added ?? false, p.network, p.target])).toEqual([['arm64', false, 'host', 'app'], ['s390x', true, 'host', 'app'], ['arm32v6', true, 'host', 'app']]);
    expect(c.platforms[1]!.dockerfile).toBe(c.dockerfile);
    // A derived suffix another platform of the file already uses is refused, naming both.
    const taken = write('taken.json', { ...good, platforms: [{ platform: 'linux/amd64', suffix: 's390x' }] });
    const e = errorOf(() => loadConfig(taken, { platforms: [parsePlatform('linux/s390x')] }));
    expect(e.message).toMatch(/^--platform: linux\/s390x is not in .*taken\.json and its derived suffix "s390x" is linux\/amd64's; add linux\/s390x to the file/);
    // Two added platforms deriving one suffix, and --node for an added one.
    const armOnly = write('two.json', { ...good, platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] });
    const two = errorOf(() => loadConfig(armOnly, { platforms: [parsePlatform('linux/amd64'), parsePlatform('windows/amd64')] }));
    expect(two.message).toMatch(/^--platform: windows\/amd64 is not in .*two\.json and its derived suffix "amd64" is linux\/amd64's/);
    const onNode = loadConfig(write('node.json', good), { platforms: [parsePlatform('linux/riscv64')], nodes: [{ platform: parsePlatform('linux/riscv64'), node: 'ssh://ci@riscv' }] });
    expect(onNode.platforms[0]!.node).toBe('ssh://ci@riscv');
  });

  it('flags alone: two platforms that would share a suffix are refused, naming both', () => {
    expect(() => flagsConfig({ image: 'localhost:5000/app', platforms: [parsePlatform('linux/amd64'), parsePlatform('windows/amd64')] })).toThrow(/^--platform: linux\/amd64 and windows\/amd64 would both be tagged -amd64$/);
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
    ['unknown field', { ...good, platfroms: [] }, /unknown field "platfroms" \(did you mean "platforms"\?\) \(allowed: image, tag/],
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
    // Node 20's JSON.parse gives no position for a trailing comma: ours does, and names it.
    const trailing = write('trailing.json', '{\n  "image": "x/y",\n  "platforms": [\n    { "platform": "linux/amd64", "suffix": "amd64" },\n  ]\n}\n');
    expect(errorOf(() => loadConfig(trailing)).message).toBe(`${trailing}: not valid JSON: a trailing comma before ] at line 5, column 3`);
    const quote = write('quote.json', '{\n  "image": "x/y,\n  "platforms": []\n}');
    expect(errorOf(() => loadConfig(quote)).message).toMatch(/not valid JSON: a string runs to the end of the line \(a closing " is missing\) at line 2, column 12/);
  });

  it('takes // and /* */ comments, as crossbuild init writes them', () => {
    const f = write('comments.json', `// the matrix\n{\n  /* where it goes */ "image": "localhost:5000/c", // inline\n  "platforms": [{ "platform": "linux/arm64", "suffix": "arm64" }]\n}\n`);
    const c = loadConfig(f);
    expect([c.image.repository, c.platforms[0]!.suffix]).toEqual(['c', 'arm64']);
    // A "//" inside a string is text, not a comment.
    expect(loadConfig(write('url.json', { ...good, buildArgs: { URL: 'http://x//y' } })).buildArgs.URL).toBe('http://x//y');
  });

  it('says "did you mean" for a misspelt field and names the shape a platform must have', () => {
    const top = errorOf(() => loadConfig(write('typo.json', { image: 'x/y', platform: [{ platform: 'linux/amd64', suffix: 'amd64' }] })));
    expect(top.message).toMatch(/typo\.json: unknown field "platform" \(did you mean "platforms"\?\) \(allowed: image, /);
    const inner = errorOf(() => loadConfig(write('typo2.json', { ...good, platforms: [{ platform: 'linux/amd64', sufix: 'amd64' }] })));
    expect(inner.message).toMatch(/platforms\[0\]: unknown field "sufix" \(did you mean "suffix"\?\)/);
    // A word far from every field gets no guess.
    expect(errorOf(() => loadConfig(write('typo3.json', { ...good, zzzzzz: 1 }))).message).not.toMatch(/did you mean/);
    const strings = errorOf(() => loadConfig(write('strings.json', { image: 'x/y', platforms: ['linux/amd64'] })));
    expect(strings.message).toBe(`${join(dir, 'strings.json')}: platforms[0]: expected an object such as {"platform": "linux/arm64", "suffix": "arm64"}, found a string ("linux/amd64")`);
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
    expect(e.message).toMatch(/dup\.json: not valid JSON: a key appears twice in one object at line 4, column 3 \("tag", first at line 3, column 3; JSON would silently keep the last\)/);
  });
  it('refuses build arg names ARG cannot have, and values the kernel would refuse', () => {
    expect(errorOf(() => loadConfig(write('argkey.json', { ...good, buildArgs: { 'A=B': '1' } }))).message).toMatch(/argkey\.json: buildArgs: A=B: not a build arg name/);
    expect(errorOf(() => loadConfig(write('argkey2.json', { ...good, platforms: [{ platform: 'linux/amd64', suffix: 'a', buildArgs: { '': 'x' } }] }))).message).toMatch(/platforms\[0\]\.buildArgs: : not a build arg name/);
    expect(errorOf(() => loadConfig(write('argbig.json', { ...good, buildArgs: { BIG: 'x'.repeat(200_000) } }))).message).toMatch(/buildArgs: BIG: the value is 200000 bytes; an argument may be at most 131072 bytes/);
  });
});

describe('a run from flags alone (no platforms.json)', () => {
  it('derives the suffixes as seed and the README name them, and resolves paths against the cwd', () => {
    const c = flagsConfig({ image: 'localhost:5000/app', tag: 'v1', platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'linux/arm/v6', 'linux/386', 'linux/ppc64le'].map((p) => parsePlatform(p)) });
    expect(c.file).toBe('');
    expect(c.platforms.map((p) => p.suffix)).toEqual(['amd64', 'arm64', 'arm32', 'arm32v6', '386', 'ppc64le']);
    expect([c.context, c.dockerfile, c.tag]).toEqual([process.cwd(), join(process.cwd(), 'Dockerfile'), 'v1']);
    const ctx = flagsConfig({ image: 'localhost:5000/app', context: dir, dockerfile: join(dir, 'Other.Dockerfile') });
    expect([ctx.context, ctx.dockerfile, ctx.platforms[0]!.dockerfile]).toEqual([dir, join(dir, 'Other.Dockerfile'), join(dir, 'Other.Dockerfile')]);
  });
  it('defaults to this host\'s platform, as buildx does', () => {
    expect(flagsConfig({ image: 'localhost:5000/app' }).platforms.map((p) => p.spec)).toEqual([formatPlatform(hostPlatform())]);
  });
  it('names the flags in its errors, never a file', () => {
    expect(() => flagsConfig({})).toThrow(/no platforms\.json here and no image named/);
    expect(() => flagsConfig({ image: 'localhost:5000/app', platforms: [parsePlatform('linux/arm64'), parsePlatform('linux/aarch64')] })).toThrow(/^--platform: linux\/arm64 is named twice$/);
    expect(errorOf(() => flagsConfig({ image: 'Bad/Upper' })).message).toMatch(/^--image: invalid reference/);
    expect(errorOf(() => flagsConfig({ image: 'localhost:5000/app', tag: '-x' })).message).toMatch(/^--tag: "-x" is not a valid tag/);
  });
});

describe('crossbuild init', () => {
  it('writes a commented file that loads back as the matrix asked for', () => {
    const platforms = ['linux/amd64', 'linux/arm/v7', 'linux/riscv64'].map((p) => parsePlatform(p));
    const text = initText({ image: 'localhost:5000/app', tag: '1.0', context: '.', dockerfile: 'Dockerfile', platforms, schema: './schema/platforms.schema.json' });
    expect(text).toMatch(/^\/\/ /);
    const f = write('init.json', text);
    const c = loadConfig(f);
    expect([formatReference(c.image), c.tag, c.platforms.map((p) => `${formatPlatform(p.platform)}=${p.suffix}`)]).toEqual(['localhost:5000/app', '1.0', ['linux/amd64=amd64', 'linux/arm/v7=arm32', 'linux/riscv64=riscv64']]);
    // Each commented-out example is a valid field once uncommented.
    const uncommented = text.replace(/^ {2}\/\/ ("[a-z]+": .*?,)(\s{2,}.*)?$/gm, '  $1');
    expect(uncommented).not.toBe(text);
    writeFileSync(join(dir, 'cosign.key'), 'x');
    expect(loadConfig(write('init-all.json', uncommented)).cache).toBe('registry');
  });
});
