// platforms.json: the build matrix. Validated at load; every error names the file and the field.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import yaml from 'js-yaml';
import { z } from '../util/zod.js';
import { ConfigError } from '../errors.js';
import { configErrorFromZod } from './schema-error.js';
import { formatPlatform, parsePlatform, PlatformError, type Platform } from '../platform/platform.js';
import { isValidTag, parseReference, type ImageRef } from '../registry/reference.js';

export interface PlatformTarget {
  readonly platform: Platform;
  /** As written in the file, for messages. */
  readonly spec: string;
  readonly suffix: string;
  readonly uname?: string;
  readonly buildArgs: Readonly<Record<string, string>>;
}

export interface BuildConfig {
  readonly file: string;
  readonly image: ImageRef;
  readonly tag: string;
  /** Absolute paths, resolved against the config file's folder. */
  readonly context: string;
  readonly dockerfile: string;
  readonly buildArgs: Readonly<Record<string, string>>;
  readonly platforms: readonly PlatformTarget[];
}

const BuildArgs = z.record(z.string(), z.pipe(z.union([z.string(), z.number(), z.boolean()]), z.transform(String)));

const FileSchema = z.strictObject({
  $schema: z.optional(z.string()),
  image: z.string({ error: 'required: the image repository, e.g. "localhost:5000/app"' }),
  tag: z._default(z.string(), 'latest'),
  context: z._default(z.string(), '.'),
  dockerfile: z._default(z.string(), 'Dockerfile'),
  buildArgs: z._default(BuildArgs, {}),
  platforms: z
    .array(
      z.strictObject({
        platform: z.string({ error: 'required: os/arch[/variant], e.g. "linux/arm64"' }),
        suffix: z.string({ error: 'required: the tag suffix for this platform, e.g. "arm64"' }),
        uname: z.optional(z.string()),
        buildArgs: z._default(BuildArgs, {}),
      }),
      { error: 'required: a list of {"platform", "suffix"} objects' },
    )
    .check(z.minLength(1, { error: 'must list at least one platform' })),
});

/** JSON.parse's "position N" → line:column, so the user can find it. */
function jsonErrorLocation(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) {
    // Node 20 gives no position for some errors; the YAML parser (a JSON superset) locates most.
    try {
      yaml.load(text);
    } catch (e) {
      const mark = (e as { mark?: { line: number; column: number } }).mark;
      if (mark) return `${message.split('\n')[0]} at line ${mark.line + 1}, column ${mark.column + 1}`;
    }
    return message;
  }
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `${message.replace(/ in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)/, '')} at line ${line}, column ${col}`;
}

export interface ConfigOverrides {
  readonly image?: string;
  readonly tag?: string;
  /** Keep only these platforms of the matrix (or build these, when the file has none of them). */
  readonly platforms?: readonly Platform[];
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
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '', `not valid JSON: ${jsonErrorLocation(text, (e as Error).message)}`);
  }
  return validateConfig(raw, file, overrides);
}

export function validateConfig(raw: unknown, file: string, overrides: ConfigOverrides = {}): BuildConfig {
  const parsed = FileSchema.safeParse(raw);
  if (!parsed.success) {
    throw configErrorFromZod(file, parsed.error, (path) => (path.length === 0 ? 'image, tag, context, dockerfile, buildArgs, platforms' : 'platform, suffix, uname, buildArgs'));
  }
  const c = parsed.data;
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

  const base = dirname(resolve(file));
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
    targets.push({ platform, spec: p.platform, suffix: p.suffix, ...(p.uname ? { uname: p.uname } : {}), buildArgs: p.buildArgs });
  });

  let selected = targets;
  if (overrides.platforms && overrides.platforms.length > 0) {
    selected = overrides.platforms.map((want) => {
      const t = targets.find((x) => formatPlatform(x.platform) === formatPlatform(want));
      if (!t) {
        throw new ConfigError(file, '--platform', `${formatPlatform(want)} is not in the matrix (it has: ${targets.map((x) => formatPlatform(x.platform)).join(', ')})`);
      }
      return t;
    });
  }
  return {
    file,
    image,
    tag,
    context: resolve(base, c.context),
    dockerfile: resolve(base, c.context, c.dockerfile),
    buildArgs: c.buildArgs,
    platforms: selected,
  };
}

export function suffixedTag(cfg: BuildConfig, t: PlatformTarget): string {
  return `${cfg.tag}-${t.suffix}`;
}
