// One plan per platform, computed once and fed to the dry run and the real run alike: the build
// argv's options (with the cache plan), the run's own local name, the suffixed tag, the node, and
// whether this host's kernel needs a QEMU handler for it.
import { suffixedTag, type BuildConfig, type PlatformTarget } from '../config/config.js';
import { expectsAttestations, type BuildOptions, type SolveOptions } from '../docker/build.js';
import { wantsAttestations } from '../config/build-inputs.js';
import { buildxAtLeast, type Builder } from '../docker/builder.js';
import { cachePlan, type CachePlan, type CacheSettings } from '../docker/cache.js';
import { formatReference, withTag } from '../oci/reference.js';
import { formatPlatform, isNative } from '../platform/platform.js';
import type { BuildRequest } from './types.js';

export interface PlatformPlan {
  readonly target: PlatformTarget;
  /** os/arch[/variant], for messages and reports. */
  readonly platform: string;
  /** `<image>:<tag>-<suffix>`: what is pushed for this platform. */
  readonly ref: string;
  /** The run's own local name for the image (see runTag). */
  readonly runTag: string;
  /** The run's own local name for a test stage built for the platform (runTag's, `-test`). */
  readonly testTag: string;
  /** Everything `docker build` gets (undefined builder: no engine, the dry run's plain guess). */
  readonly build: BuildOptions;
  /** How the build cache is used, in words ("none" without one). */
  readonly cache: string;
  /** Does this host's kernel need a QEMU handler for it (the local engine, or a node on a local socket that does not run it natively)? */
  readonly needsHandler: boolean;
}

/** What is known of the engine that builds a platform: its OS and architecture, when it answered. */
export interface NodeFacts {
  readonly os: string;
  readonly arch: string;
}

/**
 * The run's own local name for a platform's image: `<image>:<tag>-<suffix>-cb-<run id>` (and
 * `…-cb-<run id>-test` for a test stage). Two runs of one tag never build to, verify or push each
 * other's image through it. A tag too long for it becomes `cb-<run id>[-test]-<suffix>`, cut at
 * 128. The sweep of a killed run knows these shapes (isRunName in sweep.ts).
 */
export function runTag(cfg: BuildConfig, t: PlatformTarget, runId: string, role: '' | '-test' = ''): string {
  const own = `${suffixedTag(cfg, t)}-cb-${runId}${role}`;
  return formatReference(withTag(cfg.image, own.length <= 128 ? own : `cb-${runId}${role}-${t.suffix}`.slice(0, 128)));
}

/**
 * This kernel runs the containers of the local engine and of nodes on a local socket; a platform
 * native to the engine that builds it needs no handler, and a remote node's kernel is its own.
 */
export function needsHandler(t: PlatformTarget, node: NodeFacts | undefined): boolean {
  if (t.node !== undefined && !t.node.startsWith('unix://')) return false;
  if (t.node !== undefined && node) return !(node.os === t.platform.os && node.arch === t.platform.architecture);
  return !isNative(t.platform);
}

function cacheFor(cfg: BuildConfig, t: PlatformTarget | undefined, o: Pick<BuildRequest, 'cache'>, builder: Builder | undefined): CachePlan | undefined {
  if (!builder) return undefined;
  const settings: CacheSettings = { ...o.cache, mode: cfg.cache };
  if (settings.mode === 'none' && settings.from.length === 0 && settings.to.length === 0) return undefined;
  return cachePlan(builder, settings, {
    ...(t ? { suffix: t.suffix } : {}),
    suffixedRef: formatReference(withTag(cfg.image, t ? suffixedTag(cfg, t) : cfg.tag)),
    cacheRepo: o.cache.ref ?? formatReference(cfg.image),
  });
}

/** One buildx solve for several local platforms, pushed by digest (see solveArgv). */
export interface SolvePlan {
  /** The platforms it builds, in the matrix's order. */
  readonly plans: readonly PlatformPlan[];
  readonly build: SolveOptions;
  /** How its build cache is used, in words. */
  readonly cache: string;
  /** The run it belongs to (names its temporary folders, which a later run sweeps if this one is killed). */
  readonly runId: string;
}

/** What must be equal for platforms to share one solve: all of the build but its platform. */
function solveKey(b: BuildOptions): string {
  return JSON.stringify([b.context, b.dockerfile, b.target ?? null, b.buildArgs ?? {}, b.labels ?? {}, b.network, b.noCache ?? false]);
}

/**
 * The local platforms buildx builds in one solve, pushed by crossbuild by digest (measured on
 * Docker 28.5 + buildx 0.29: one solve of three platforms beats three solves with --load + docker
 * push, see bench/RESULTS.md). Where it is measured: buildx ≥ 0.13 (two exports of one solve)
 * with its docker driver on the containerd image store; when pushing; for the largest set of
 * platforms that differ in nothing but the platform. `CROSSBUILD_BUILDX_OUTPUT=load` keeps one
 * build per platform with --load + docker push.
 */
export function planSolve(o: BuildRequest, plans: readonly PlatformPlan[], builder: Builder | undefined, push: boolean, runId: string, env: NodeJS.ProcessEnv = process.env): SolvePlan | undefined {
  if (!builder || builder.kind !== 'buildx' || !buildxAtLeast(builder, 13) || builder.driver !== 'docker' || builder.imageStore !== 'containerd' || !push) return undefined;
  if ((env.CROSSBUILD_BUILDX_OUTPUT ?? '') === 'load') return undefined;
  const groups = new Map<string, PlatformPlan[]>();
  for (const p of plans) {
    if (p.target.node !== undefined) continue;
    const k = solveKey(p.build);
    groups.set(k, [...(groups.get(k) ?? []), p]);
  }
  const best = [...groups.values()].sort((a, b) => b.length - a.length)[0];
  if (!best) return undefined;
  const cfg = o.config;
  const cache = cacheFor(cfg, undefined, o, builder);
  const { platform: _p, tag: _t, cache: _c, ...shared } = best[0]!.build;
  const own = `${cfg.tag}-cb-${runId}`;
  const tag = formatReference(withTag(cfg.image, own.length <= 128 ? own : `cb-${runId}`));
  return {
    plans: best,
    build: { ...shared, platforms: best.map((p) => p.target.platform), tag, ...(cache ? { cache } : {}), ...(!wantsAttestations(cfg.inputs) && expectsAttestations(builder, cfg.inputs, env) ? { defaultProvenance: true } : {}) },
    cache: cache?.mechanism ?? 'none',
    runId,
  };
}

export function planPlatform(o: BuildRequest, t: PlatformTarget, runId: string, builder: Builder | undefined, node?: NodeFacts): PlatformPlan {
  const cfg = o.config;
  const cache = cacheFor(cfg, t, o, builder);
  const tag = runTag(cfg, t, runId);
  return {
    target: t,
    platform: formatPlatform(t.platform),
    ref: formatReference(withTag(cfg.image, suffixedTag(cfg, t))),
    runTag: tag,
    testTag: runTag(cfg, t, runId, '-test'),
    build: {
      platform: t.platform,
      tag,
      context: cfg.context,
      dockerfile: t.dockerfile,
      buildArgs: { ...cfg.buildArgs, ...t.buildArgs, ...o.extraBuildArgs },
      ...(o.labels ? { labels: o.labels } : {}),
      ...(t.target ? { target: t.target } : {}),
      noCache: o.noCache,
      network: t.network,
      inputs: cfg.inputs,
      ...(cache ? { cache } : {}),
    },
    cache: cache?.mechanism ?? 'none',
    needsHandler: needsHandler(t, node),
  };
}
