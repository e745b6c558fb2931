// platforms.json: the build matrix. Validated at load; every error names the file and the field.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { z } from '../util/zod.js';
import { ConfigError } from '../errors.js';
import { configErrorFromZod } from '../util/schema-error.js';
import { formatPlatform, hostPlatform, parsePlatform, platformSuffix, PlatformError, type Platform } from '../platform/platform.js';
import { isValidTag, parseReference, type ImageRef } from '../oci/reference.js';
import {
  CACHE_MODES,
  checkBuildArgs,
  type CacheMode,
  mergeBy,
  NETWORK_MODES,
  parseAddHost,
  parseAnnotation,
  parseAttest,
  parseAttestationFlag,
  parseBuildContext,
  parseSecret,
  parseShmSize,
  parseSsh,
  parseUlimit,
  type BuildInputs,
  type NetworkMode,
} from './build-inputs.js';
import { UsageError } from '../errors.js';
import { TestSchema, toTest, type PlatformTest } from './tests.js';
import { JsonSyntaxError, parseJsonc } from './jsonc.js';

export interface PlatformTarget {
  readonly platform: Platform;
  /** As written in the file, for messages. */
  readonly spec: string;
  readonly suffix: string;
  readonly uname?: string;
  readonly buildArgs: Readonly<Record<string, string>>;
  /** Absolute; the top-level dockerfile unless this platform has its own. */
  readonly dockerfile: string;
  readonly target?: string;
  /** RUN steps' network for this platform (flag > env > platform > file). */
  readonly network: NetworkMode;
  /** The engine that builds, checks and pushes it: a context name or an engine URL; absent = local. */
  readonly node?: string;
  /** The tests it must pass before it is pushed (the file's, or its own `test`, or --test's). */
  readonly tests: readonly PlatformTest[];
  /** Named by --platform only, not by the file: built with the file's top-level settings and a derived suffix. */
  readonly added?: true;
}

export interface BuildConfig {
  readonly file: string;
  readonly image: ImageRef;
  readonly tag: string;
  /** Absolute paths, resolved against the config file's folder. */
  readonly context: string;
  readonly dockerfile: string;
  readonly buildArgs: Readonly<Record<string, string>>;
  /** Secrets, SSH, hosts, contexts, shm and ulimits for every platform's build. */
  readonly inputs: BuildInputs;
  /** Registry build cache: the flag/env value, else the file's, else none. */
  readonly cache: CacheMode;
  /** Path globs whose foreign architecture is legitimate (verify's --allow), file's and flags'. */
  readonly allow: readonly string[];
  /** Sign what is published (cosign): the key (a file relative to the config, env://VAR, a KMS URI) or keyless. */
  readonly sign?: { readonly key?: string };
  readonly platforms: readonly PlatformTarget[];
}

const BuildArgs = z.record(z.string(), z.pipe(z.union([z.string(), z.number(), z.boolean()]), z.transform(String)));

const Network = z.literal(NETWORK_MODES, { error: `must be one of ${NETWORK_MODES.join(', ')}` });
const Strings = z.array(z.string());

const FileSchema = z.strictObject({
  $schema: z.optional(z.string()),
  image: z.string({ error: 'required: the image repository, e.g. "localhost:5000/app"' }),
  tag: z._default(z.string(), 'latest'),
  context: z._default(z.string(), '.'),
  dockerfile: z._default(z.string(), 'Dockerfile'),
  target: z.optional(z.string()),
  buildArgs: z._default(BuildArgs, {}),
  network: z.optional(Network),
  secrets: z._default(Strings, []),
  ssh: z._default(Strings, []),
  addHosts: z._default(Strings, []),
  buildContexts: z._default(z.record(z.string(), z.string()), {}),
  shmSize: z.optional(z.string()),
  ulimits: z._default(Strings, []),
  provenance: z.optional(z.pipe(z.union([z.string(), z.boolean()]), z.transform(String))),
  sbom: z.optional(z.pipe(z.union([z.string(), z.boolean()]), z.transform(String))),
  attest: z._default(Strings, []),
  annotations: z._default(Strings, []),
  allow: z._default(Strings, []),
  test: z.optional(z.array(TestSchema)),
  sign: z.optional(z.union([z.boolean(), z.strictObject({ key: z.optional(z.string()) })], { error: 'must be true, false or {"key": "cosign.key" | "env://VAR"}' })),
  cache: z.optional(z.literal(CACHE_MODES, { error: `must be one of ${CACHE_MODES.join(', ')}` })),
  platforms: z
    .array(
      z.strictObject({
        platform: z.string({ error: 'required: os/arch[/variant], e.g. "linux/arm64"' }),
        suffix: z.string({ error: 'required: the tag suffix for this platform, e.g. "arm64"' }),
        uname: z.optional(z.string()),
        buildArgs: z._default(BuildArgs, {}),
        dockerfile: z.optional(z.string()),
        target: z.optional(z.string()),
        network: z.optional(Network),
        node: z.optional(z.string()),
        test: z.optional(z.array(TestSchema)),
      }),
      { error: 'required: a list of {"platform", "suffix"} objects' },
    )
    .check(z.minLength(1, { error: 'must list at least one platform' })),
});

export interface ConfigOverrides {
  readonly image?: string;
  readonly tag?: string;
  /** Keep only these platforms of the matrix (or build these, when the file has none of them). */
  readonly platforms?: readonly Platform[];
  /** From --network / CROSSBUILD_NETWORK: every platform, whatever the file says. */
  readonly network?: NetworkMode;
  /** From --target: every platform. */
  readonly target?: string;
  /** From flags, already parsed (relative to the cwd); merged over the file's, flags winning by key. */
  readonly inputs?: Partial<BuildInputs>;
  /** From --cache / CROSSBUILD_CACHE. */
  readonly cache?: CacheMode;
  /** From --allow: added to the file's. */
  readonly allow?: readonly string[];
  /** From --node PLATFORM=NODE: wins over the file's `node`. */
  readonly nodes?: readonly { platform: Platform; node: string }[];
  /** From --test: every platform's tests, instead of the file's; `[]` with --no-test. */
  readonly tests?: readonly PlatformTest[];
  /** The positional CONTEXT of `run`, absolute (resolved against the cwd, as buildx does). */
  readonly context?: string;
  /** From -f/--file, absolute: every platform's Dockerfile. */
  readonly dockerfile?: string;
}

export const TOP_FIELDS = 'image, tag, context, dockerfile, target, buildArgs, network, secrets, ssh, addHosts, buildContexts, shmSize, ulimits, provenance, sbom, attest, annotations, cache, allow, test, sign, platforms';
export const PLATFORM_FIELDS = 'platform, suffix, uname, buildArgs, dockerfile, target, network, node, test';

/** A file field's value through a flag-style parser, its error re-located to the file and field. */
function fieldValue<T>(file: string, field: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof UsageError) throw new ConfigError(file, field, e.message.replace(/^[^:]*?: /, ''));
    throw e;
  }
}

/** A relative Dockerfile must stay inside the context (an absolute one is taken as meant). */
function dockerfileIn(file: string, field: string, context: string, dockerfile: string): string {
  const abs = resolve(context, dockerfile);
  if (!isAbsolute(dockerfile)) {
    const rel = relative(context, abs);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new ConfigError(file, field, `the Dockerfile resolves outside the build context ${context}; give an absolute path if that is meant`);
    }
  }
  return abs;
}

export function loadConfig(file: string, overrides: ConfigOverrides = {}): BuildConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: 'pass --config FILE, or run from a folder that has platforms.json',
    });
  }
  let raw: unknown;
  try {
    raw = parseJsonc(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new ConfigError(file, '', `not valid JSON: ${e.message}`);
    throw e;
  }
  return validateConfig(raw, file, overrides);
}

export function validateConfig(raw: unknown, file: string, overrides: ConfigOverrides = {}): BuildConfig {
  const parsed = FileSchema.safeParse(raw);
  if (!parsed.success) {
    throw configErrorFromZod(file, parsed.error, (path) => (path.length === 0 ? TOP_FIELDS : PLATFORM_FIELDS), raw, (path) =>
      path.length === 2 && path[0] === 'platforms' ? '{"platform": "linux/arm64", "suffix": "arm64"}' : path.length === 1 && path[0] === 'platforms' ? '[{"platform": "linux/arm64", "suffix": "arm64"}]' : undefined,
    );
  }
  const c = parsed.data;
  const checkArgs = (args: Record<string, string>, field: string) => {
    try {
      checkBuildArgs(args, field);
    } catch (e) {
      if (e instanceof UsageError) throw new ConfigError(file, field, e.message.slice(field.length + 1));
      throw e;
    }
  };
  checkArgs(c.buildArgs, 'buildArgs');
  c.platforms.forEach((p, i) => checkArgs(p.buildArgs, `platforms[${i}].buildArgs`));
  const imageField = overrides.image !== undefined ? '--image' : 'image';
  const imageText = overrides.image ?? c.image;
  let image: ImageRef;
  try {
    image = parseReference(imageText, imageField);
  } catch (e) {
    throw new ConfigError(file, imageField, (e as Error).message.replace(/^invalid [^"]*/, 'invalid reference '), {
      hint: 'expected [registry[:port]/]repository, e.g. localhost:5000/nodeinfo',
    });
  }
  if (image.tag !== undefined || image.digest !== undefined) {
    throw new ConfigError(file, imageField, `"${imageText}" includes a tag or digest; give the repository only and put the tag in "tag" (or --tag)`);
  }
  const tag = overrides.tag ?? c.tag;
  const tagField = overrides.tag !== undefined ? '--tag' : 'tag';
  if (!isValidTag(tag)) throw new ConfigError(file, tagField, `"${tag}" is not a valid tag (letters, digits, _ . -; at most 128; not starting with . or -)`);

  // A run from flags alone has no file: its relative paths are the cwd's.
  const base = file === '' ? process.cwd() : dirname(resolve(file));
  const context = overrides.context ?? resolve(base, c.context);
  const contextField = overrides.context !== undefined ? 'CONTEXT' : 'context';
  if (context === '/') throw new ConfigError(file, contextField, 'the build context is / (the whole filesystem); point it at the project folder');
  const dockerfile = overrides.dockerfile ?? dockerfileIn(file, 'dockerfile', context, c.dockerfile);
  const network: NetworkMode | undefined = overrides.network ?? c.network;
  const target = overrides.target ?? c.target;
  const fromFile: BuildInputs = {
    secrets: c.secrets.map((v, i) => fieldValue(file, `secrets[${i}]`, () => parseSecret(v, 'secret', base))),
    ssh: c.ssh.map((v, i) => fieldValue(file, `ssh[${i}]`, () => parseSsh(v, 'ssh', base))),
    addHosts: c.addHosts.map((v, i) => fieldValue(file, `addHosts[${i}]`, () => parseAddHost(v, 'addHost'))),
    buildContexts: Object.entries(c.buildContexts).map(([k, v]) => fieldValue(file, `buildContexts.${k}`, () => parseBuildContext(`${k}=${v}`, 'buildContext', base))),
    ulimits: c.ulimits.map((v, i) => fieldValue(file, `ulimits[${i}]`, () => parseUlimit(v, 'ulimit'))),
    ...(c.shmSize !== undefined ? { shmSize: fieldValue(file, 'shmSize', () => parseShmSize(c.shmSize!, 'shmSize')) } : {}),
    ...(c.provenance !== undefined ? { provenance: fieldValue(file, 'provenance', () => parseAttestationFlag(c.provenance!, 'provenance', 'provenance')) } : {}),
    ...(c.sbom !== undefined ? { sbom: fieldValue(file, 'sbom', () => parseAttestationFlag(c.sbom!, 'sbom', 'sbom')) } : {}),
    attest: c.attest.map((v, i) => fieldValue(file, `attest[${i}]`, () => parseAttest(v, 'attest'))),
    annotations: c.annotations.map((v, i) => fieldValue(file, `annotations[${i}]`, () => parseAnnotation(v, 'annotation'))),
  };
  const o = overrides.inputs ?? {};
  const shmSize = o.shmSize ?? fromFile.shmSize;
  const provenance = o.provenance ?? fromFile.provenance;
  const sbom = o.sbom ?? fromFile.sbom;
  const inputs: BuildInputs = {
    secrets: mergeBy([...fromFile.secrets, ...(o.secrets ?? [])], (s) => s.id),
    ssh: mergeBy([...fromFile.ssh, ...(o.ssh ?? [])], (s) => s.id),
    addHosts: mergeBy([...fromFile.addHosts, ...(o.addHosts ?? [])], (h) => h.split(':')[0]!),
    buildContexts: mergeBy([...fromFile.buildContexts, ...(o.buildContexts ?? [])], (b) => b.name),
    ulimits: mergeBy([...fromFile.ulimits, ...(o.ulimits ?? [])], (u) => u.split('=')[0]!),
    ...(shmSize !== undefined ? { shmSize } : {}),
    ...(provenance !== undefined ? { provenance } : {}),
    ...(sbom !== undefined ? { sbom } : {}),
    attest: [...fromFile.attest, ...(o.attest ?? [])],
    annotations: mergeBy([...fromFile.annotations, ...(o.annotations ?? [])], (a) => a.slice(0, a.indexOf('='))),
  };
  const fileTests = (c.test ?? []).map((t, i) => fieldValue(file, `test[${i}]`, () => toTest(t, `test[${i}]`)));
  const targets: PlatformTarget[] = [];
  c.platforms.forEach((p, i) => {
    let platform: Platform;
    try {
      platform = parsePlatform(p.platform);
    } catch (e) {
      if (e instanceof PlatformError) throw new ConfigError(file, `platforms[${i}].platform`, e.message);
      throw e;
    }
    if (!isValidTag(`${tag}-${p.suffix}`) || p.suffix === '') {
      throw new ConfigError(file, `platforms[${i}].suffix`, `"${p.suffix}" does not make a valid tag "${tag}-${p.suffix}" (letters, digits, _ . - only)`);
    }
    const dupP = targets.findIndex((t) => formatPlatform(t.platform) === formatPlatform(platform));
    if (dupP >= 0) {
      throw new ConfigError(file, `platforms[${i}].platform`, `duplicate platform ${formatPlatform(platform)} (also platforms[${dupP}]: "${targets[dupP]!.spec}")`);
    }
    const dupS = targets.findIndex((t) => t.suffix === p.suffix);
    if (dupS >= 0) throw new ConfigError(file, `platforms[${i}].suffix`, `duplicate suffix "${p.suffix}" (also platforms[${dupS}])`);
    const pTarget = overrides.target ?? p.target ?? target;
    targets.push({
      platform,
      spec: p.platform,
      suffix: p.suffix,
      ...(p.uname ? { uname: p.uname } : {}),
      buildArgs: p.buildArgs,
      dockerfile: overrides.dockerfile ?? (p.dockerfile !== undefined ? dockerfileIn(file, `platforms[${i}].dockerfile`, context, p.dockerfile) : dockerfile),
      ...(pTarget ? { target: pTarget } : {}),
      network: overrides.network ?? p.network ?? network ?? 'default',
      ...((): { node?: string } => {
        const n = overrides.nodes?.find((x) => formatPlatform(x.platform) === formatPlatform(platform))?.node ?? p.node;
        if (n === undefined || n === '' || n === 'local') return {};
        if (!/^([a-z]+:\/\/\S+|[A-Za-z0-9][A-Za-z0-9_.+-]*)$/.test(n)) throw new ConfigError(file, `platforms[${i}].node`, `"${n}" is neither an engine URL (unix://, tcp://, ssh://) nor a Docker context name`);
        return { node: n };
      })(),
      tests: overrides.tests ?? (p.test ? p.test.map((x, j) => fieldValue(file, `platforms[${i}].test[${j}]`, () => toTest(x, `platforms[${i}].test[${j}]`))) : fileTests),
    });
  });

  let selected = targets;
  if (overrides.platforms && overrides.platforms.length > 0) {
    // --platform picks from the matrix; a platform the file lacks is built as the file's
    // top-level settings say, under the suffix crossbuild derives (amd64, arm32, arm64, …).
    const wants = overrides.platforms.filter((w, i, all) => all.findIndex((x) => formatPlatform(x) === formatPlatform(w)) === i);
    selected = [];
    for (const want of wants) {
      const t = targets.find((x) => formatPlatform(x.platform) === formatPlatform(want));
      if (t) {
        selected.push(t);
        continue;
      }
      const suffix = platformSuffix(want);
      const taken = [...targets, ...selected].find((x) => x.suffix === suffix);
      if (taken) {
        throw new ConfigError(file, '--platform', `${formatPlatform(want)} is not in ${file || 'the matrix'} and its derived suffix "${suffix}" is ${formatPlatform(taken.platform)}'s; add ${formatPlatform(want)} to the file with a suffix of its own`);
      }
      if (!isValidTag(`${tag}-${suffix}`)) throw new ConfigError(file, '--platform', `${formatPlatform(want)}: its derived suffix "${suffix}" does not make a valid tag "${tag}-${suffix}"; add it to the file with a suffix of its own`);
      const node = overrides.nodes?.find((x) => formatPlatform(x.platform) === formatPlatform(want))?.node;
      selected.push({
        platform: want,
        spec: formatPlatform(want),
        suffix,
        buildArgs: {},
        dockerfile,
        ...(target ? { target } : {}),
        network: network ?? 'default',
        ...(node !== undefined && node !== '' && node !== 'local' ? { node } : {}),
        tests: overrides.tests ?? fileTests,
        added: true,
      });
    }
  }
  return {
    file,
    image,
    tag,
    context,
    dockerfile,
    buildArgs: c.buildArgs,
    inputs,
    cache: overrides.cache ?? c.cache ?? 'none',
    allow: [...c.allow, ...(overrides.allow ?? [])],
    ...(c.sign ? { sign: typeof c.sign === 'object' && c.sign.key !== undefined ? { key: c.sign.key.includes('://') ? c.sign.key : resolve(base, c.sign.key) } : {} } : {}),
    platforms: selected,
  };
}

/**
 * A run from flags alone, as `docker buildx build` takes one: the image from -t/--image, the
 * platforms from --platform (default: this host's, as buildx), each suffix derived
 * (platformSuffix), everything else from the flags. Errors name the flags.
 */
export function flagsConfig(overrides: ConfigOverrides): BuildConfig {
  if (overrides.image === undefined) {
    throw new UsageError('no platforms.json here and no image named', { hint: 'give -t REGISTRY/REPOSITORY:TAG (or --image), e.g. -t localhost:5000/app:1.0 --platform linux/amd64,linux/arm64; or write a platforms.json with `crossbuild init`' });
  }
  const platforms = overrides.platforms && overrides.platforms.length > 0 ? overrides.platforms : [hostPlatform()];
  platforms.forEach((p, i) => {
    if (platforms.findIndex((q) => formatPlatform(q) === formatPlatform(p)) < i) throw new UsageError(`--platform: ${formatPlatform(p)} is named twice`);
    const same = platforms.findIndex((q) => platformSuffix(q) === platformSuffix(p));
    if (same < i) throw new UsageError(`--platform: ${formatPlatform(platforms[same]!)} and ${formatPlatform(p)} would both be tagged -${platformSuffix(p)}`, { hint: 'give them suffixes of their own in a platforms.json (crossbuild init writes one)' });
  });
  const { platforms: _, ...rest } = overrides;
  return validateConfig({ image: overrides.image, platforms: platforms.map((p) => ({ platform: formatPlatform(p), suffix: platformSuffix(p) })) }, '', rest);
}

/**
 * The build context and every platform's Dockerfile exist: checked before anything slow runs (and
 * by the dry run), so a typo is one exit-2 error naming the file, not one build failure per
 * platform with BuildKit's temporary path.
 */
export function checkBuildFiles(cfg: BuildConfig): void {
  if (!existsSync(cfg.context) || !statSync(cfg.context).isDirectory()) throw new ConfigError(cfg.file, cfg.file === '' ? 'CONTEXT' : 'context', `the build context ${cfg.context} does not exist (or is not a folder)`);
  for (const t of cfg.platforms) {
    if (!existsSync(t.dockerfile) || !statSync(t.dockerfile).isFile()) {
      throw new ConfigError(cfg.file, cfg.file === '' ? '--file' : t.dockerfile === cfg.dockerfile ? 'dockerfile' : `platforms[].dockerfile of ${formatPlatform(t.platform)}`, `${t.dockerfile} does not exist`, { hint: 'give the Dockerfile relative to the context, or an absolute path' });
    }
  }
}

export function suffixedTag(cfg: BuildConfig, t: PlatformTarget): string {
  return `${cfg.tag}-${t.suffix}`;
}
