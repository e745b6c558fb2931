// One buildx solve for every local platform that differs in nothing but its platform: kept in the
// engine under the run's own name and pushed by digest from its OCI layout (no tag moves), the
// digest read from --metadata-file. Each platform then goes on alone: config, `uname -m` of exactly that digest, tests, the registry
// proof, and only then its suffixed tag (platform.ts). A solve that one platform's RUN breaks
// blames that platform; the others are built again alone, so they are still reported as before.
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBuildMetadata, solveArgv, type SolveOptions } from '../docker/build.js';
import { PUSH_RETRY_BUDGET_MS, type Builder, type Docker } from '../docker/docker.js';
import { StepTracker, type BuildStep } from '../docker/steps.js';
import { AuthError, RegistryError } from '../errors.js';
import { formatReference, type ImageRef } from '../oci/reference.js';
import { expectedUname, formatPlatform, isNative, normalizeLenient, samePlatform } from '../platform/platform.js';
import { ExportWatcher, unameProbe, type ProbeAnswer } from '../docker/probe.js';
import type { RegistryClient } from '../registry/client.js';
import { layoutImages, layoutTop, pushLayout, type LayoutImage } from '../registry/layout.js';
import { retry } from '../util/retry.js';
import { scrub } from '../util/secrets.js';
import type { PlatformPlan, SolvePlan } from './plan.js';
import { buildFailure, refusedCacheExport, StageError, streamBuild, withoutCacheExport, type BuildContext, type Streamed } from './platform.js';
import { LAYOUT_PREFIX } from './sweep.js';

/** What the solve gave one platform. */
export type SolvedPlatform =
  /** Built and pushed: the index the solve pushed (every platform's image and attestations). */
  | {
      readonly kind: 'built';
      readonly index: string;
      readonly seconds: number;
      readonly steps: BuildStep[];
      /** This platform's image as the solve wrote it (config read from the layout on disk). */
      readonly image: LayoutImage;
      /** The push of the whole result by digest, under way while the platform is checked locally. */
      readonly pushed: Promise<void>;
    }
  /** Another platform broke the solve: build this one alone. */
  | { readonly kind: 'alone'; readonly why: string }
  /** This platform broke it (or nothing could be blamed): its failure line. */
  | { readonly kind: 'failed'; readonly error: string };

interface SolveResult {
  readonly streamed: Streamed;
  readonly digest?: string;
  readonly images?: readonly LayoutImage[];
  readonly pushed?: Promise<void>;
  readonly seconds: number;
  /** Platforms whose own step failed. */
  readonly blamed: ReadonlySet<string>;
  /** The index the engine holds under the run's own name, as the build said it wrote it. */
  readonly local?: string;
}

/** `#12 [linux/arm64 2/3] RUN …`: a step that belongs to one platform of the solve. */
const VERTEX = /^#(\d+) \[([^\] ]+)[ \]]/;
const VERTEX_ERROR = /^#(\d+) ERROR: /;
/** Any line of a step (`#12 0.254 output`, `#12 DONE 1.2s`). */
const VERTEX_LINE = /^#(\d+) /;

/**
 * The platforms of a solve that its `uname -m` probe asks: those with an image in it without
 * ONBUILD triggers (the probe's FROM would run them), and with no QEMU_CPU to set (arm/v5, arm/v6
 * need `docker run -e`).
 */
export function probeCandidates(plans: readonly Pick<PlatformPlan, 'platform' | 'target'>[], images: readonly LayoutImage[]): string[] {
  return plans
    .filter((p) => Object.keys(expectedUname(p.target.platform, p.target.uname).env).length === 0)
    .filter((p) => images.some((i) => samePlatform(normalizeLenient(i.platform), p.target.platform) && !i.onBuild))
    .map((p) => p.platform);
}

export class Solve {
  private run?: Promise<SolveResult>;
  private readonly trackers = new Map<string, StepTracker>();
  private readonly listeners = new Map<string, (line: string, runningStep: string) => void>();
  private readonly running = new Map<string, string>();
  /** Each platform's last lines: its own steps' and those of no platform. */
  private readonly tails = new Map<string, string[]>();

  constructor(
    readonly plan: SolvePlan,
    private readonly docker: Docker,
    private readonly builder: Builder,
    private readonly registry: { readonly client: RegistryClient; readonly image: ImageRef },
    private readonly ctx: BuildContext,
    /** Each platform's log file: every line of the solve goes to each. */
    private readonly logs: ReadonlyMap<string, string>,
    private readonly logDir: string,
    private readonly say: { note(n: string): void; warning(w: string): void; step(platform: string, step: string): void; pushing(platform: string, message: string): void },
  ) {
    for (const p of plan.plans) {
      this.trackers.set(p.platform, new StepTracker(!isNative(p.target.platform)));
      this.tails.set(p.platform, []);
    }
  }

  private probe?: Promise<Map<string, ProbeAnswer>>;
  private probed?: Set<string>;

  /**
   * `uname -m` of one platform of the result, from one probe of every platform (the first caller
   * starts it). Undefined where it was not asked (see below, or CROSSBUILD_UNAME_PROBE=off):
   * `docker run` asks then, as for any other build.
   */
  async uname(platform: string, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ProbeAnswer | undefined> {
    const r = await this.run;
    const local = r?.local;
    if (r?.digest === undefined || local === undefined || env.CROSSBUILD_UNAME_PROBE === 'off') return undefined;
    this.probed ??= new Set(probeCandidates(this.plan.plans, r.images!));
    // The others do not wait for it.
    if (!this.probed.has(platform)) return undefined;
    this.probe ??= unameProbe(this.docker, this.builder, { image: this.localName, digest: local, platforms: [...this.probed], timeoutMs });
    return (await this.probe).get(platform);
  }

  /** The run's own local name of the result (every platform of it). */
  get localName(): string {
    return this.plan.build.tag;
  }

  /** The platforms it builds, as `os/arch[/variant]`. */
  get platforms(): string[] {
    return this.plan.plans.map((p) => p.platform);
  }

  /** One platform's share of the solve; the first caller starts it, the others wait for it. */
  async forPlatform(platform: string, onLine: (line: string, runningStep: string) => void): Promise<SolvedPlatform> {
    this.listeners.set(platform, onLine);
    this.run ??= this.start();
    const r = await this.run;
    this.listeners.delete(platform);
    if (r.digest !== undefined) {
      const target = this.plan.plans.find((p) => p.platform === platform)!.target.platform;
      const image = r.images!.find((i) => samePlatform(normalizeLenient(i.platform), target));
      if (image) return { kind: 'built', index: r.digest, seconds: r.seconds, steps: this.trackers.get(platform)!.steps(Date.now()), image, pushed: r.pushed! };
      return { kind: 'failed', error: `build of ${platform}: the solve's result ${r.digest} holds no ${platform} image (it holds ${r.images!.map((i) => formatPlatform(normalizeLenient(i.platform))).join(', ') || 'none'})` };
    }
    const log = this.logs.get(platform)!;
    const solve = ` in one buildx solve of ${this.platforms.join(', ')}`;
    if (r.blamed.has(platform)) return { kind: 'failed', error: buildFailure(`build of ${platform}`, { ...r.streamed, tail: this.tails.get(platform)! }, this.plan.build.network, this.ctx.engineHasBridge, log, solve) };
    if (r.blamed.size > 0 && r.streamed.spawnError === undefined) return { kind: 'alone', why: `the solve of ${this.platforms.join(', ')} failed on ${[...r.blamed].join(', ')}: ${platform} is built alone` };
    return { kind: 'failed', error: buildFailure(`build of ${platform}`, r.streamed, this.plan.build.network, this.ctx.engineHasBridge, log, solve) };
  }

  private async start(): Promise<SolveResult> {
    const started = Date.now();
    const metadataFile = join(this.logDir, `solve-${process.pid}-${started}.json`);
    // The layout holds compressed layers only until they are pushed.
    const layoutDir = mkdtempSync(join(tmpdir(), `${LAYOUT_PREFIX}${this.plan.runId}-`));
    const outs = [...new Set(this.logs.values())].map((f) => createWriteStream(f, { flags: 'a' }));
    const notes: string[] = [];
    const where = this.platforms.join(', ');
    const vertexOf = new Map<string, string>();
    const blamed = new Set<string>();
    const known = new Set(this.platforms);
    let exports = new ExportWatcher();
    const attempt = (o: SolveOptions) => {
      exports = new ExportWatcher();
      return streamBuild(this.docker, this.builder, solveArgv({ ...o, metadataFile, layoutDir }, this.ctx.envSecretFiles), outs, notes, where, (line) => {
        exports.feed(line);
        const v = VERTEX.exec(line);
        const owner = v && known.has(v[2]!) ? v[2]! : undefined;
        if (v && owner) vertexOf.set(v[1]!, owner);
        const err = VERTEX_ERROR.exec(line);
        if (err && vertexOf.has(err[1]!)) blamed.add(vertexOf.get(err[1]!)!);
        const any = VERTEX_LINE.exec(line);
        const lineOwner = any ? vertexOf.get(any[1]!) : undefined;
        for (const [p, tail] of this.tails) {
          if (lineOwner !== undefined && lineOwner !== p) continue;
          tail.push(line);
          if (tail.length > 20) tail.shift();
        }
        for (const [p, tracker] of this.trackers) {
          // A step of another platform is not this one's.
          if (v && owner !== undefined && owner !== p) continue;
          const step = tracker.feed(line, Date.now());
          if (step) {
            this.running.set(p, step);
            this.say.step(p, step);
          }
        }
        for (const [p, listen] of this.listeners) if (!owner || owner === p) listen(line, this.running.get(p) ?? '');
      });
    };
    let opts = this.plan.build;
    let r = await attempt(opts);
    if (refusedCacheExport(r, opts)) {
      this.say.warning(`${where}: the registry refused the build cache (${r.tail.filter((l) => /cache/i.test(l)).pop()?.slice(0, 160) ?? 'export failed'}); built again without exporting it`);
      opts = withoutCacheExport(opts);
      blamed.clear();
      r = await attempt(opts);
    }
    await Promise.all(outs.map((o) => new Promise<void>((resolve) => o.end(resolve))));
    for (const n of notes) this.say.note(n);
    let digest: string | undefined;
    if (r.exitCode === 0) {
      try {
        digest = parseBuildMetadata(readFileSync(metadataFile, 'utf8'))?.digest;
      } catch {
        // said below
      }
      if (digest === undefined) r = { ...r, exitCode: -1, tail: [...r.tail, `buildx wrote no image digest to ${metadataFile}`] };
    }
    let images: LayoutImage[] | undefined;
    let pushed: Promise<void> | undefined;
    if (digest !== undefined) {
      try {
        const top = await layoutTop(layoutDir);
        if (top.digest !== digest) throw new Error(`the layout holds ${top.digest}, buildx said it built ${digest}`);
        images = await layoutImages(layoutDir, top);
      } catch (e) {
        r = { ...r, exitCode: -1, tail: [...r.tail, `the solve's OCI layout is not what buildx said it built: ${scrub((e as Error).message)}`] };
        digest = undefined;
      }
    }
    if (digest !== undefined) {
      // Pushed by digest while each platform is checked from the engine's copy; awaited before its proof.
      const ref = `${formatReference({ registry: this.registry.image.registry, repository: this.registry.image.repository })}@${digest}`;
      // Retried as `docker push` is (3 attempts, 2 s then 4 s, 30 s in all) around the client's own retries.
      pushed = retry(() => pushLayout(this.registry.client, this.registry.image, layoutDir), {
        policy: { attempts: 3, baseMs: 2000, maxDelayMs: 10_000, budgetMs: PUSH_RETRY_BUDGET_MS },
        what: `push of ${ref}`,
        decide: (e) => (e instanceof RegistryError && e.retriable && !(e instanceof AuthError) ? { reason: e.message.split('\n')[0]!.slice(0, 200) } : undefined),
        onRetry: (n) => {
          for (const p of this.platforms) this.say.pushing(p, `${ref} again (attempt ${n.attempt} of ${n.attempts}) in ${(n.delayMs / 1000).toFixed(1)}s: ${n.reason}`);
        },
      }).then(
        () => undefined,
        (e: unknown) => {
          throw new StageError('push', `push of the solve's result ${digest} by digest failed: ${scrub((e as Error).message)}`);
        },
      );
      pushed.catch(() => undefined).finally(() => rmSync(layoutDir, { recursive: true, force: true }));
    } else rmSync(layoutDir, { recursive: true, force: true });
    rmSync(metadataFile, { force: true });
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    const local = exports.exported(this.localName);
    return { streamed: r, seconds, blamed, ...(digest !== undefined ? { digest, images: images!, pushed: pushed! } : {}), ...(local ? { local } : {}) };
  }
}

