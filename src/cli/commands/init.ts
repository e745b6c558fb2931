// `crossbuild init`: a commented platforms.json from the flags given, which `crossbuild run`
// then reads (the file takes // comments). What it writes is loaded back before it is kept.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../../config/config.js';
import { parseJsonc } from '../../config/jsonc.js';
import { UsageError } from '../../errors.js';
import { formatPlatform, parsePlatform, platformSuffix, type Platform } from '../../platform/platform.js';
import { escapeControl } from '../../util/text.js';
import { platformsFromFlags } from '../common.js';
import { splitTags } from './run.js';
import { OK, type Outcome } from '../failure.js';

interface InitFlags {
  tag?: string;
  image?: string;
  platform?: string[];
  file?: string;
  config: string;
  force?: boolean;
}

/** The three a Raspberry Pi, a Jetson and a laptop need; what the README builds. */
export const DEFAULT_PLATFORMS = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];

/** crossbuild's own schema file, found upwards from this module (src/ in tests, dist/ when installed). */
function schemaFile(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const f = join(dir, 'schema', 'platforms.schema.json');
    if (existsSync(f)) return f;
    dir = dirname(dir);
  }
  return undefined;
}

/** JSON text of a value, for the file. */
const j = (v: unknown) => JSON.stringify(v);

export function initText(o: { image: string; tag: string; context: string; dockerfile: string; platforms: readonly Platform[]; schema?: string }): string {
  const w = Math.max(...o.platforms.map((p) => formatPlatform(p).length));
  const rows = o.platforms.map((p, i) => `    { "platform": ${j(formatPlatform(p))},${' '.repeat(w - formatPlatform(p).length)} "suffix": ${j(platformSuffix(p))} }${i < o.platforms.length - 1 ? ',' : ''}`);
  return `// crossbuild's build matrix: one image, one manifest list, one entry per platform.
// \`crossbuild run --dry-run\` shows what a run does; the schema below documents every field.
{
  ${o.schema ? `"$schema": ${j(o.schema)},\n  ` : ''}// The repository: the list is pushed as IMAGE:TAG, each platform as IMAGE:TAG-SUFFIX.
  "image": ${j(o.image)},
  "tag": ${j(o.tag)},
  // Relative to this file.
  "context": ${j(o.context)},
  "dockerfile": ${j(o.dockerfile)},
  // More, as docker buildx build takes them (see the schema):
  // "buildArgs": { "VERSION": "1.0" },
  // "network": "host",                      RUN steps' network: default, none or host
  // "cache": "registry",                    build cache in the registry, per platform
  // "provenance": "mode=max",               buildx attestations
  // "sign": { "key": "cosign.key" },        cosign signatures with crossbuild's proof attached
  // "test": [{ "name": "starts", "run": ["true"] }],   every platform must pass before it is pushed
  "platforms": [
${rows.join('\n')}
  ]
}
`;
}

export async function initCommand(flags: InitFlags, contextArg?: string): Promise<Outcome> {
  const out = resolve(flags.config);
  if (existsSync(out) && !flags.force) throw new UsageError(`${flags.config} exists; give --force to overwrite it, or -c FILE to write another`);
  const tagged = splitTags(flags.tag ? [flags.tag] : []);
  const image = flags.image ?? tagged.image;
  if (!image) throw new UsageError('init needs the image: -t REGISTRY/REPOSITORY:TAG (or --image REPO), e.g. -t localhost:5000/app:1.0');
  const platforms = platformsFromFlags(flags.platform) ?? DEFAULT_PLATFORMS.map((p) => parsePlatform(p));
  const base = dirname(out);
  const context = resolve(contextArg ?? '.');
  const rel = (p: string) => relative(base, p) || '.';
  const schema = schemaFile();
  const text = initText({
    image,
    tag: tagged.tags[0] ?? 'latest',
    context: rel(context),
    dockerfile: relative(context, flags.file ? resolve(flags.file) : join(context, 'Dockerfile')),
    platforms,
    ...(schema ? { schema: rel(schema) } : {}),
  });
  // What init writes, run reads: checked first, so a bad flag is an error now, not at the first run.
  validateConfig(parseJsonc(text), out);
  // 'wx': never over a file that appeared since the check above (unless --force).
  writeFileSync(out, text, { flag: flags.force ? 'w' : 'wx' });
  process.stderr.write(`wrote ${escapeControl(flags.config)}: ${image}:${tagged.tags[0] ?? 'latest'} for ${platforms.map(formatPlatform).join(', ')}; \`crossbuild run --dry-run\` shows the plan\n`);
  return OK;
}
