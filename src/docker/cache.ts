// Build cache through the registry, so a fresh CI runner reuses what the last run built. Per
// platform: each platform's cache lives under its own suffix, so a cache written by one platform is
// never offered to another's build; one buildx solve of every platform keeps one multi-platform
// cache (`:buildcache`), as buildx users write it. The best mechanism each builder has (pure; tested without an
// engine):
//   buildx, a driver that can export a cache (docker-container, kubernetes, remote) →
//     --cache-from/--cache-to type=registry,ref=<cache repo>:buildcache-<suffix>,mode=max
//   buildx with the docker driver on the containerd image store → the same registry cache
//   buildx with the docker driver on the classic store → inline cache in the pushed image (--cache-to type=inline)
//   the engine's BuildKit → BUILDKIT_INLINE_CACHE=1 in the pushed image + --cache-from it
//   the classic builder → pull the previous suffixed image for the platform, --cache-from it
import { UsageError } from '../errors.js';
import { escapeControl } from '../util/text.js';
import type { CacheMode } from '../config/build-inputs.js';
import { dockerDriverOnClassicStore, type Builder } from './builder.js';

export interface CacheSettings {
  readonly mode: CacheMode;
  /** Repository for separate cache images (buildx registry cache); default: the image's own. */
  readonly ref?: string;
  /** buildx syntax passed through (type=gha,… / type=registry,ref=…), suffixed per platform. */
  readonly from: readonly string[];
  readonly to: readonly string[];
}

export interface CachePlan {
  /** What the plan and the report say, e.g. "inline cache in localhost:5000/app:v1-arm64". */
  readonly mechanism: string;
  /** Extra `docker build` arguments. */
  readonly args: readonly string[];
  readonly buildArgs: Readonly<Record<string, string>>;
  /** The classic builder's --cache-from must be a local image: pull this for the platform first. */
  readonly pull?: string;
}

export interface PlatformCacheTarget {
  /** Tag suffix of the platform (arm64, arm32); absent for one solve of every platform, whose cache is one multi-platform ref. */
  readonly suffix?: string;
  /** `<image>:<tag>-<suffix>`: what the last run pushed for this platform. */
  readonly suffixedRef: string;
  /** `<cache repo>` without tag. */
  readonly cacheRepo: string;
}

/**
 * Can this buildx builder export a cache to a registry? Every driver but docker can; the docker
 * driver can too on the containerd image store (measured on 28.5), and only inline on the classic one.
 */
export function exportsRegistryCache(b: Builder): boolean {
  if (b.kind !== 'buildx' || b.driver === undefined) return false;
  return b.driver !== 'docker' || (b.imageStore !== undefined && !dockerDriverOnClassicStore(b));
}

function fields(spec: string): [string, string][] {
  return spec.split(',').map((p) => {
    const i = p.indexOf('=');
    return i < 0 ? [p, ''] : [p.slice(0, i), p.slice(i + 1)];
  });
}

/**
 * A user's buildx cache spec, made per platform: `ref=repo:tag` → `ref=repo:tag-<suffix>`
 * (`ref=repo` → `ref=repo:buildcache-<suffix>`), `scope=x` → `scope=x-<suffix>`; a gha cache
 * without a scope gets `scope=buildkit-<suffix>` (buildkit is gha's default scope).
 */
export function suffixCacheSpec(spec: string, suffix: string): string {
  const f = fields(spec);
  const type = f.find(([k]) => k === 'type')?.[1];
  let touched = false;
  const out = f.map(([k, v]) => {
    if (k === 'ref') {
      touched = true;
      const slash = v.lastIndexOf('/');
      const colon = v.lastIndexOf(':');
      return [k, colon > slash ? `${v}-${suffix}` : `${v}:buildcache-${suffix}`];
    }
    if (k === 'scope') {
      touched = true;
      return [k, `${v}-${suffix}`];
    }
    return [k, v];
  });
  if (!touched && type === 'gha') out.push(['scope', `buildkit-${suffix}`]);
  if (!touched && !spec.includes('=')) return spec.includes(':') ? `${spec}-${suffix}` : `${spec}:buildcache-${suffix}`;
  return out.map(([k, v]) => (v === '' && !spec.includes(`${k}=`) ? k : `${k}=${v}`)).join(',');
}

/** A passthrough spec a non-buildx builder can take: a plain image reference only. */
function plainRef(spec: string, flag: string, b: Builder): string {
  const f = fields(spec);
  if (!spec.includes('=')) return spec;
  const type = f.find(([k]) => k === 'type')?.[1] ?? 'registry';
  const ref = f.find(([k]) => k === 'ref')?.[1];
  if (type === 'registry' && ref && f.every(([k]) => k === 'type' || k === 'ref')) return ref;
  throw new UsageError(`${flag} ${escapeControl(spec)}: only an image reference (or type=registry,ref=REF) works with ${b.kind === 'classic' ? 'the classic builder' : "the engine's BuildKit"}; other cache types need docker buildx`);
}

export function cachePlan(b: Builder & { readonly driver?: string }, s: CacheSettings, t: PlatformCacheTarget): CachePlan {
  if (s.to.length > 0 && b.kind !== 'buildx') throw new UsageError(`--cache-to needs docker buildx; the builder here is ${b.kind}`);
  const own = (x: string) => (t.suffix === undefined ? x : suffixCacheSpec(x, t.suffix));
  const userFrom = s.from.map(own);
  const userTo = s.to.map(own);
  const passthrough = (): string[] => [
    ...userFrom.flatMap((x) => ['--cache-from', b.kind === 'buildx' ? x : plainRef(x, '--cache-from', b)]),
    ...userTo.flatMap((x) => ['--cache-to', x]),
  ];
  if (s.mode === 'none') {
    return { mechanism: userFrom.length + userTo.length > 0 ? `as given: ${[...userFrom, ...userTo].join('; ')}` : 'none', args: passthrough(), buildArgs: {} };
  }
  if (b.kind === 'buildx' && exportsRegistryCache(b)) {
    const ref = `${t.cacheRepo}:buildcache${t.suffix === undefined ? '' : `-${t.suffix}`}`;
    return {
      mechanism: `registry cache ${ref} (mode=max)`,
      args: ['--cache-from', `type=registry,ref=${ref}`, '--cache-to', `type=registry,ref=${ref},mode=max`, ...passthrough()],
      buildArgs: {},
    };
  }
  if (b.kind === 'buildx') {
    return { mechanism: `inline cache in ${t.suffixedRef} (the docker driver on the ${b.imageStore ?? 'classic'} image store cannot export a separate cache)`, args: ['--cache-from', `type=registry,ref=${t.suffixedRef}`, '--cache-to', 'type=inline', ...passthrough()], buildArgs: {} };
  }
  if (b.kind === 'buildkit') {
    return { mechanism: `inline cache in ${t.suffixedRef}`, args: ['--cache-from', t.suffixedRef, ...passthrough()], buildArgs: { BUILDKIT_INLINE_CACHE: '1' } };
  }
  return { mechanism: `previous image ${t.suffixedRef}, pulled for the platform`, args: ['--cache-from', t.suffixedRef, ...passthrough()], buildArgs: {}, pull: t.suffixedRef };
}

/**
 * Notices a --cache-from source that is not there (first run, deleted tag): BuildKit names the
 * import as a vertex (`#6 importing cache manifest from REF`) and fails that vertex alone
 * (`#6 ERROR: REF: not found`), then builds on without it.
 */
export class CacheImportWatcher {
  private readonly imports = new Map<string, string>();
  /** The reference whose import failed, when this line says so. */
  feed(line: string): string | undefined {
    const start = /^#(\d+) importing cache manifest from (\S+)/.exec(line);
    if (start) {
      this.imports.set(start[1]!, start[2]!);
      return undefined;
    }
    const err = /^#(\d+) ERROR: /.exec(line);
    return err ? this.imports.get(err[1]!) : undefined;
  }
}

/** buildx's error when the registry will not take the cache export. */
export function cacheExportRefused(log: string): boolean {
  return /(exporting cache|error writing layer blob|failed to (export|push) cache|cache export).*(denied|unauthorized|forbidden|not supported|unsupported|MANIFEST_INVALID|refused|error)/i.test(log);
}
