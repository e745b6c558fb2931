// The `crossbuild run` pipeline: preflight → binfmt → per platform (build → verify → push →
// verify what the registry holds) → manifest list → read back. A list is written only when every
// platform it names passed every step. Progress goes out as events (see progress.ts); listr2
// draws them on a terminal.
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Listr, ProcessOutput, type ListrTask } from 'listr2';
import { binfmtMounted, installHandlers, platformStatus, readHandlers } from '../binfmt/binfmt.js';
import { suffixedTag, type BuildConfig, type PlatformTarget } from '../config/config.js';
import { assertSupported, buildArgv, describeBuilder, looksLikeNetworkFailure, networkHint, type BuildOptions } from '../docker/build.js';
import { CacheImportWatcher, cacheExportRefused, cachePlan, type CachePlan, type CacheSettings } from '../docker/cache.js';
import { emulationAdvice, StepTracker, type BuildStep } from '../docker/steps.js';
import { assertHonoursPlatform, type Builder, type BuilderKind, type Docker, type EngineInfo } from '../docker/docker.js';
import { CrossbuildError, UsageError } from '../errors.js';
import { buildList } from '../oci/list.js';
import { ImageIndexSchema, isIndexMediaType, LIST_MEDIA_TYPE, type ListKind } from '../oci/types.js';
import { expectedUname, formatPlatform, isNative } from '../platform/platform.js';
import type { RegistryClient } from '../registry/client.js';
import { formatReference, withTag } from '../oci/reference.js';
import { registerSecret, scrub } from '../util/secrets.js';
import type { CheckResult } from '../verdict.js';
import { checkMetadata, checkRuntime } from '../verify/checks.js';
import { verifyImage } from '../verify/verify.js';
import type { BinaryStats } from '../verify/binaries.js';
import type { ProgressEvent } from './progress.js';

export interface RunOptions {
  readonly config: BuildConfig;
  readonly client: RegistryClient;
  readonly docker: Docker;
  readonly push: boolean;
  readonly type: ListKind;
  readonly concurrency: number;
  readonly noCache: boolean;
  /** Registry cache settings from flags; the mode comes from the config (flag > env > file). */
  readonly cache: Omit<CacheSettings, 'mode'>;
  readonly verifyTimeoutMs: number;
  readonly builder?: BuilderKind;
  readonly logDir: string;
  readonly extraBuildArgs: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  /** Names this run's local images (runTag); unique per run. */
  readonly runId: string;
  /** Set when SIGINT/SIGTERM arrived: nothing more starts, no list is written. */
  readonly interrupted?: () => string | undefined;
  /** 'default': listr2 draws on the terminal; 'silent': the caller renders onEvent. */
  readonly renderer: 'default' | 'silent';
  readonly onEvent?: (e: ProgressEvent) => void;
}

export type Stage = 'build' | 'verify' | 'push' | 'registry-verify';

export interface PlatformResult {
  readonly platform: string;
  readonly suffix: string;
  readonly ref: string;
  ok: boolean;
  failedAt?: Stage;
  error?: string;
  checks: CheckResult[];
  digest?: string;
  size?: number;
  mediaType?: string;
  buildSeconds?: number;
  /** How this platform's build cache was imported/exported ("none" without --cache). */
  cache?: string;
  /** Every step of the build, with its time and whether it ran emulated or came from the cache. */
  steps?: BuildStep[];
  /** What the registry verification read: files, ELF files, mismatches, excused. */
  files?: BinaryStats;
  readonly log: string;
}

export interface RunResult {
  readonly ok: boolean;
  readonly engine?: EngineInfo;
  readonly builder?: Builder;
  readonly platforms: PlatformResult[];
  list?: { ref: string; digest: string; size: number; mediaType: string };
  error?: string;
  /** Preflight found the input itself wrong (a build input the builder lacks): exit 2, not 1. */
  usageError?: UsageError;
  readonly warnings: string[];
  /** Things worth knowing that are not problems (a first run has no cache yet). */
  readonly notes: string[];
  /** The signal that stopped the run, when one did. */
  interrupted?: string;
  readonly logDir: string;
  readonly startedAt: string;
  finishedAt?: string;
}

class StageError extends CrossbuildError {
  constructor(readonly stage: Stage, message: string) {
    super(message);
  }
}

function cacheFor(cfg: BuildConfig, t: PlatformTarget, o: Pick<RunOptions, 'cache'>, builder: Builder | undefined): CachePlan | undefined {
  if (!builder) return undefined;
  const settings: CacheSettings = { ...o.cache, mode: cfg.cache };
  if (settings.mode === 'none' && settings.from.length === 0 && settings.to.length === 0) return undefined;
  return cachePlan(builder, settings, {
    suffix: t.suffix,
    suffixedRef: formatReference(withTag(cfg.image, suffixedTag(cfg, t))),
    cacheRepo: o.cache.ref ?? formatReference(cfg.image),
  });
}

/**
 * The run's own local name for a platform's image: `<image>:<tag>-<suffix>-cb-<run id>`. Two runs
 * of one tag never build to, verify or push each other's image through it.
 */
export function runTag(cfg: BuildConfig, t: PlatformTarget, runId: string): string {
  const own = `${suffixedTag(cfg, t)}-cb-${runId}`;
  return formatReference(withTag(cfg.image, own.length <= 128 ? own : `cb-${runId}-${t.suffix}`.slice(0, 128)));
}

function buildOptionsFor(cfg: BuildConfig, t: PlatformTarget, o: Pick<RunOptions, 'noCache' | 'extraBuildArgs' | 'labels' | 'cache' | 'runId'>, builder: Builder | undefined): BuildOptions {
  const cache = cacheFor(cfg, t, o, builder);
  return {
    platform: t.platform,
    tag: runTag(cfg, t, o.runId),
    context: cfg.context,
    dockerfile: t.dockerfile,
    buildArgs: { ...cfg.buildArgs, ...t.buildArgs, ...o.extraBuildArgs },
    ...(o.labels ? { labels: o.labels } : {}),
    ...(t.target ? { target: t.target } : {}),
    noCache: o.noCache,
    network: t.network,
    inputs: cfg.inputs,
    ...(cache ? { cache } : {}),
  };
}

interface BuildOutcome {
  readonly steps: BuildStep[];
  readonly notes: string[];
  readonly warnings: string[];
}

async function buildOne(docker: Docker, builder: Builder, cfg: BuildConfig, t: PlatformTarget, o: RunOptions, ctx: BuildContext, logFile: string, report: (line: string) => void, onStep: (step: string) => void): Promise<BuildOutcome> {
  let opts = buildOptionsFor(cfg, t, o, builder);
  const where = formatPlatform(t.platform);
  const notes: string[] = [];
  const warnings: string[] = [];
  const out = createWriteStream(logFile, { flags: 'a' });
  if (opts.cache?.pull) {
    // The classic builder takes --cache-from from local images only: bring the last run's in.
    const pulled = await docker.pull(opts.cache.pull, t.platform);
    if (!pulled.ok) {
      notes.push(`${where}: no cache yet (${opts.cache.pull}: ${pulled.reason}); building without one`);
      const { cache: _dropped, ...rest } = opts;
      opts = rest;
    }
  }
  const run = async (o2: BuildOptions): Promise<{ exitCode: number | undefined; signal?: string; spawnError?: string; tail: string[]; networkFailure?: string; log: string[]; tracker: StepTracker }> => {
    const argv = buildArgv(builder.kind, o2, ctx.envSecretFiles);
    out.write(`$ ${builder.cli} ${argv.join(' ')}\n`);
    const tail: string[] = [];
    const all: string[] = [];
    let networkFailure: string | undefined;
    const tracker = new StepTracker(!isNative(t.platform));
    const imports = new CacheImportWatcher();
    const r = await docker.build(builder, argv, (raw) => {
      const line = scrub(raw);
      out.write(`${line}\n`);
      if (line.trim() === '') return;
      if (all.length < 5000) all.push(line);
      networkFailure ??= looksLikeNetworkFailure(line);
      const missing = imports.feed(line);
      if (missing && !notes.some((n) => n.startsWith(`${where}: no cache yet`))) notes.push(`${where}: no cache yet at ${missing} (first run, or the cache was deleted); building without one`);
      const step = tracker.feed(line, Date.now());
      if (step) onStep(step);
      tail.push(line);
      if (tail.length > 20) tail.shift();
      report(line);
    });
    return { ...r, tail, log: all, tracker, ...(networkFailure ? { networkFailure } : {}) };
  };
  let r = await run(opts);
  if (r.exitCode !== 0 && opts.cache?.args.includes('--cache-to') && cacheExportRefused(r.log.join('\n'))) {
    // A registry that will not store the cache costs the cache, not the run.
    warnings.push(`${where}: the registry refused the build cache (${r.tail.filter((l) => /cache/i.test(l)).pop()?.slice(0, 160) ?? 'export failed'}); built again without exporting it`);
    const args = opts.cache.args.filter((a, i, all) => a !== '--cache-to' && all[i - 1] !== '--cache-to');
    opts = { ...opts, cache: { ...opts.cache, args } };
    r = await run(opts);
  }
  await new Promise<void>((resolve) => out.end(resolve));
  if (r.exitCode !== 0) {
    const hint = r.networkFailure ? `; looks like a network failure ("${r.networkFailure}"): ${networkHint(t.network, ctx.engineHasBridge)}` : '';
    const how = r.spawnError ? `could not start (${r.spawnError === 'E2BIG' ? 'E2BIG: the argument list is too long — a build arg, label or path too large?' : r.spawnError})` : `failed (exit ${r.exitCode ?? r.signal ?? 'signal'})`;
    throw new StageError('build', `build of ${where} ${how}${hint}; log: ${logFile}\n${r.tail.slice(-12).join('\n')}`);
  }
  return { steps: r.tracker.steps(Date.now()), notes, warnings };
}

/** What every platform's build shares, found out once in preflight. */
interface BuildContext {
  engineHasBridge?: boolean;
  /** id → private file holding an env secret, for CLIs whose --secret takes files only. */
  envSecretFiles: Map<string, string>;
}

/**
 * Secrets are passed by reference; their values are registered for scrubbing so a RUN step that
 * prints one cannot leak it into logs or reports. The pre-23 CLI takes file secrets only: env
 * secrets become files in a private folder (0700/0600) that is removed when the run ends.
 */
async function prepareSecrets(builder: Builder, cfg: BuildConfig, ctx: BuildContext): Promise<string | undefined> {
  for (const s of cfg.inputs.secrets) {
    if (s.env !== undefined) registerSecret(process.env[s.env]);
    else if (statSync(s.src).size <= 64 * 1024) registerSecret(readFileSync(s.src, 'utf8').trim());
  }
  const envSecrets = cfg.inputs.secrets.filter((s) => s.env !== undefined);
  if (builder.kind !== 'buildkit' || envSecrets.length === 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'crossbuild-secrets-'));
  chmodSync(dir, 0o700);
  for (const s of envSecrets) {
    const file = join(dir, s.id);
    writeFileSync(file, process.env[s.env!] ?? '', { mode: 0o600 });
    ctx.envSecretFiles.set(s.id, file);
  }
  return dir;
}

/** What the registry now holds for the pushed digest, checked by the same verifier as `crossbuild verify --static`. */
async function verifyInRegistry(o: RunOptions, t: PlatformTarget, digest: string): Promise<{ checks: CheckResult[]; mediaType: string; size: number; files?: BinaryStats; configDigest?: string }> {
  // One GET of the digest: the verifier reads it and reports its media type and size.
  const report = await verifyImage(o.client, o.config.image, digest, t.platform, { staticOnly: true, timeoutMs: o.verifyTimeoutMs, allow: o.config.allow });
  if (report.mediaType === undefined || report.size === undefined || isIndexMediaType(report.mediaType)) {
    throw new StageError('registry-verify', `pushed ${formatPlatform(t.platform)} (${digest}) is not a single image: ${report.checks.map((c) => c.evidence).join('; ')}`);
  }
  return { checks: report.checks.map((c) => ({ ...c, evidence: `registry ${c.evidence}` })), mediaType: report.mediaType, size: report.size, ...(report.files ? { files: report.files } : {}), ...(report.configDigest ? { configDigest: report.configDigest } : {}) };
}

/** A one-at-a-time lock. */
function serializer(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

async function chooseBuilder(docker: Docker, wanted: BuilderKind | undefined): Promise<Builder> {
  const builders = await docker.builders();
  const chosen = wanted ? builders.find((b) => b.kind === wanted) : builders[0];
  if (!chosen) throw new CrossbuildError(`builder ${wanted} is not available here (available: ${builders.map((b) => b.kind).join(', ')})`, { hint: 'omit --builder to pick the best one' });
  return chosen;
}

export interface RunPlan {
  readonly image: string;
  readonly list: { ref: string; mediaType: string; platforms: string[] } | null;
  readonly engine: string;
  readonly builder: string;
  /** The builder in words: version, driver, how it is driven. */
  readonly builderDetail: string;
  readonly concurrency: number;
  readonly warnings: string[];
  /** Build inputs by reference: secret ids and where they come from, never their values. */
  readonly inputs: { secrets: string[]; ssh: string[]; addHosts: string[]; buildContexts: string[]; shmSize: string | null; ulimits: string[] };
  readonly binfmt: { platform: string; now: string; change: string }[];
  readonly platforms: { platform: string; tag: string; network: string; dockerfile: string; target: string | null; cache: string; command: string[]; expectUname: string }[];
}

/** The warning preflight gives once when RUN steps would get the engine's default network and it has none. */
export function noBridgeWarning(cfg: BuildConfig, engineHasBridge: boolean | undefined): string | undefined {
  const onDefault = cfg.platforms.filter((t) => t.network === 'default');
  if (engineHasBridge !== false || onDefault.length === 0) return undefined;
  return `the engine has no bridge network (dockerd --bridge=none): RUN steps of ${onDefault.map((t) => formatPlatform(t.platform)).join(', ')} get no network with --network default; if the Dockerfile fetches anything, use --network host (or "network": "host" in platforms.json)`;
}

/** `--dry-run`: what would happen, with no build, push or binfmt change. A build input the builder lacks is the same exit 2 as in a real run. */
export async function planRun(o: RunOptions): Promise<RunPlan> {
  const cfg = o.config;
  let engine = 'not reachable';
  let builder: Builder | undefined;
  const warnings: string[] = [];
  try {
    const e = await o.docker.engine();
    engine = `${e.serverVersion} (API ${e.apiVersion})`;
    builder = await chooseBuilder(o.docker, o.builder);
    const w = noBridgeWarning(cfg, await o.docker.hasBridgeNetwork());
    if (w) warnings.push(w);
  } catch (err) {
    engine = `not reachable: ${(err as Error).message.split('\n')[0]}`;
  }
  if (builder) assertSupported(builder, cfg.inputs);
  const handlers = (await binfmtMounted()) ? await readHandlers() : [];
  const i = cfg.inputs;
  return {
    image: formatReference(cfg.image),
    list: o.push ? { ref: formatReference(withTag(cfg.image, cfg.tag)), mediaType: LIST_MEDIA_TYPE[o.type], platforms: cfg.platforms.map((t) => formatPlatform(t.platform)) } : null,
    engine,
    builder: builder ? `${builder.kind} via ${builder.cli}` : 'unknown (no engine)',
    builderDetail: builder ? describeBuilder(builder) : 'unknown (no engine)',
    concurrency: o.concurrency,
    warnings,
    inputs: {
      secrets: i.secrets.map((s) => (s.env !== undefined ? `${s.id} (from variable ${s.env})` : `${s.id} (from file ${s.src})`)),
      ssh: i.ssh.map((s) => (s.paths.length > 0 ? `${s.id}=${s.paths.join(',')}` : `${s.id} (agent at $SSH_AUTH_SOCK)`)),
      addHosts: [...i.addHosts],
      buildContexts: i.buildContexts.map((c) => `${c.name}=${c.value}`),
      shmSize: i.shmSize ?? null,
      ulimits: [...i.ulimits],
    },
    binfmt: cfg.platforms.map((t) => {
      const st = platformStatus(t.platform, handlers);
      const change = st.state === 'ok' || st.state === 'native' ? 'none' : 'register a qemu handler with the F flag';
      return { platform: st.platform, now: `${st.state}: ${st.detail}`, change };
    }),
    platforms: cfg.platforms.map((t) => ({
      platform: formatPlatform(t.platform),
      tag: formatReference(withTag(cfg.image, suffixedTag(cfg, t))),
      network: t.network,
      dockerfile: t.dockerfile,
      target: t.target ?? null,
      cache: cacheFor(cfg, t, o, builder)?.mechanism ?? 'none',
      command: [builder?.cli ?? 'docker', ...buildArgv(builder?.kind ?? 'classic', buildOptionsFor(cfg, t, o, builder))],
      expectUname: t.uname ?? expectedUname(t.platform).machines.join(' or '),
    })),
  };
}

export async function runPipeline(o: RunOptions): Promise<RunResult> {
  // The classic builder resolves FROM through the engine's local tags, which concurrent
  // `--pull`s of one base for different platforms overwrite (seen: an arm/v7 build got the amd64
  // base). Its builds take turns; verification and pushes still overlap. BuildKit and buildx
  // resolve by digest and run fully concurrently.
  const classicTurn = serializer();
  const emit = (scope: string, state: ProgressEvent['state'], message = '') => o.onEvent?.({ at: new Date(), scope, state, message });
  mkdirSync(o.logDir, { recursive: true });
  const cfg = o.config;
  const results: PlatformResult[] = cfg.platforms.map((t) => ({
    platform: formatPlatform(t.platform),
    suffix: t.suffix,
    ref: formatReference(withTag(cfg.image, suffixedTag(cfg, t))),
    ok: false,
    checks: [],
    log: join(o.logDir, `${t.suffix}.log`),
  }));
  const state: { engine?: EngineInfo; builder?: Builder } = {};
  const buildCtx: BuildContext = { envSecretFiles: new Map() };
  let secretsDir: string | undefined;
  const result: RunResult = { ok: false, platforms: results, warnings: [], notes: [], logDir: o.logDir, startedAt: new Date().toISOString() };

  const stopIfInterrupted = () => {
    const why = o.interrupted?.();
    if (why) throw new CrossbuildError(`interrupted by ${why}`);
  };
  const platformTask = (t: PlatformTarget, r: PlatformResult): ListrTask => ({
    title: `${r.platform} → ${r.ref}`,
    task: async (_ctx, task) => {
      const builder = state.builder!;
      const own = runTag(cfg, t, o.runId);
      let stage: Stage = 'build';
      const step = (s: ProgressEvent['state'], message = '') => {
        task.output = message || s;
        emit(r.platform, s, message);
      };
      try {
        stopIfInterrupted();
        step('building', `log: ${r.log}`);
        const started = Date.now();
        r.cache = cacheFor(cfg, t, o, builder)?.mechanism ?? 'none';
        let runningStep = '';
        const build = () =>
          buildOne(
            o.docker,
            builder,
            cfg,
            t,
            o,
            buildCtx,
            r.log,
            (line) => {
              if (o.renderer === 'default') task.output = `${runningStep ? `${runningStep.slice(0, 70)} | ` : ''}${line.slice(0, 90)}`;
              emit(r.platform, 'output', line);
            },
            (s) => {
              runningStep = s;
              emit(r.platform, 'step', s);
            },
          );
        const outcome = await (builder.kind === 'classic' ? classicTurn(build) : build());
        r.buildSeconds = Math.round((Date.now() - started) / 100) / 10;
        r.steps = outcome.steps;
        for (const n of outcome.notes) {
          result.notes.push(n);
          emit(r.platform, 'note', n);
        }
        for (const w of outcome.warnings) {
          result.warnings.push(w);
          emit(r.platform, 'warning', w);
        }

        stage = 'verify';
        stopIfInterrupted();
        step('verifying', `built in ${r.buildSeconds}s`);
        // From here on the image is this run's by ID: the run tag names it, nothing else is trusted.
        const inspect = await o.docker.inspect(own);
        const meta = checkMetadata(t.platform, inspect, 'image config');
        const runtime = await checkRuntime(o.docker, inspect.id, t.platform, { ...(t.uname ? { uname: t.uname } : {}), timeoutMs: o.verifyTimeoutMs });
        r.checks.push(meta, runtime);
        const failed = [meta, runtime].filter((c) => c.verdict === 'fail');
        if (failed.length > 0) throw new StageError('verify', `${r.platform} failed verification: ${failed.map((c) => `${c.check}: ${c.evidence}`).join('; ')}`);

        if (!o.push) {
          await o.docker.tag(inspect.id, r.ref);
          r.ok = true;
          task.title = `${r.platform}: built and verified (${[meta, runtime].map((c) => c.evidence).join('; ')})`;
          emit(r.platform, 'done', 'built and verified (not pushed)');
          return;
        }
        stage = 'push';
        stopIfInterrupted();
        step('pushing', r.ref);
        // `docker push` takes a name, and another run may move the suffixed name between our tag
        // and its push: the registry's config digest must be this run's image, else push again.
        let pushed: { digest: string; size: number } | undefined;
        let inReg: Awaited<ReturnType<typeof verifyInRegistry>> | undefined;
        for (let attempt = 1; ; attempt++) {
          await o.docker.tag(inspect.id, r.ref);
          pushed = await o.docker.push(r.ref, {
            onRetry: (n, reason, delayMs) => step('pushing', `${r.ref} again (attempt ${n} of 3) in ${delayMs / 1000}s: ${reason}`),
          });
          stage = 'registry-verify';
          step('verifying-registry', pushed.digest);
          inReg = await verifyInRegistry(o, t, pushed.digest);
          if (inReg.configDigest === inspect.id || pushed.digest === inspect.id) break;
          if (attempt === 3) throw new StageError('push', `${r.ref} was re-tagged by someone else while this run pushed it (3 times): pushed ${pushed.digest} is not this run's image ${inspect.id}`);
          stage = 'push';
          step('pushing', `${r.ref} again: another run moved the tag (pushed config ${inReg.configDigest ?? '?'}, this run's image ${inspect.id})`);
        }
        r.digest = pushed.digest;
        r.checks.push(...inReg.checks);
        r.mediaType = inReg.mediaType;
        r.size = inReg.size;
        if (inReg.files) r.files = inReg.files;
        const regFailed = inReg.checks.filter((c) => c.verdict === 'fail');
        if (regFailed.length > 0) throw new StageError('registry-verify', `${r.platform} in the registry: ${regFailed.map((c) => c.evidence).join('; ')}`);
        r.ok = true;
        task.title = `${r.platform} → ${r.ref}@${pushed.digest.slice(0, 19)}… (${runtime.evidence})`;
        emit(r.platform, 'done', `${pushed.digest} (${runtime.evidence})`);
      } catch (e) {
        r.ok = false;
        r.failedAt = e instanceof StageError ? e.stage : stage;
        const why = o.interrupted?.();
        r.error = why ? `interrupted by ${why}` : e instanceof Error ? scrub(e.message) : String(e);
        emit(r.platform, 'failed', `${r.failedAt}: ${r.error.split('\n')[0]}`);
        throw e instanceof Error ? e : new Error(String(e));
      } finally {
        // The run's own name goes; the suffixed name stays on the image, as users expect.
        await o.docker.untag(own);
      }
    },
  });

  const listRef = formatReference(withTag(cfg.image, cfg.tag));
  const tasks = new Listr(
    [
      {
        title: 'Preflight: Docker engine and builder',
        task: async (_ctx, task) => {
          emit('preflight', 'started');
          state.engine = await o.docker.engine();
          state.builder = await chooseBuilder(o.docker, o.builder);
          assertHonoursPlatform(state.engine);
          assertSupported(state.builder, cfg.inputs);
          if (cfg.platforms.some((t) => t.network === 'default')) {
            buildCtx.engineHasBridge = await o.docker.hasBridgeNetwork();
            const w = noBridgeWarning(cfg, buildCtx.engineHasBridge);
            if (w) {
              result.warnings.push(w);
              emit('preflight', 'warning', w);
            }
          }
          secretsDir = await prepareSecrets(state.builder, cfg, buildCtx);
          task.title = `Preflight: engine ${state.engine.serverVersion} (API ${state.engine.apiVersion}), builder ${state.builder.kind} via ${state.builder.cli}`;
          emit('preflight', 'done', `engine ${state.engine.serverVersion}, builder ${state.builder.kind} via ${state.builder.cli}`);
        },
      },
      {
        title: 'binfmt_misc: QEMU handlers for emulated platforms',
        task: async (_ctx, task) => {
          const foreign = cfg.platforms.map((t) => t.platform).filter((p) => !isNative(p));
          if (foreign.length === 0) {
            task.title = 'binfmt_misc: every platform is native';
            emit('binfmt', 'done', 'every platform is native');
            return;
          }
          const res = await installHandlers(foreign);
          task.title = `binfmt_misc: ${res.map((r) => `${r.platform} ${r.action}`).join(', ')}`;
          emit('binfmt', 'done', res.map((r) => `${r.platform} ${r.action}`).join(', '));
        },
      },
      {
        title: `Build, verify${o.push ? ', push' : ''} ${cfg.platforms.length} platform${cfg.platforms.length === 1 ? '' : 's'} (logs in ${o.logDir})`,
        task: (_ctx, task) =>
          task.newListr(
            cfg.platforms.map((t, i) => platformTask(t, results[i]!)),
            { concurrent: o.concurrency, exitOnError: false, rendererOptions: { collapseSubtasks: false } },
          ),
      },
      {
        title: `Manifest list ${listRef}`,
        skip: () => !o.push && 'not pushing (--no-push)',
        task: async (_ctx, task) => {
          stopIfInterrupted();
          const failed = results.filter((r) => !r.ok);
          if (failed.length > 0) {
            emit('list', 'skipped', `not written: ${failed.map((r) => r.platform).join(', ')} failed`);
            throw new CrossbuildError(`not writing the list: ${failed.map((r) => `${r.platform} failed at ${r.failedAt ?? 'build'}`).join(', ')}`);
          }
          emit('list', 'started', listRef);
          const list = buildList(
            o.type,
            results.map((r, i) => {
              const p = cfg.platforms[i]!.platform;
              return { mediaType: r.mediaType!, digest: r.digest!, size: r.size!, platform: { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) } };
            }),
          );
          const { registry, repository } = cfg.image;
          const digest = await o.client.putManifest(registry, repository, cfg.tag, list.bytes, list.mediaType);
          result.list = { ref: listRef, digest, size: list.size, mediaType: list.mediaType };
          task.title = `Manifest list ${listRef}: ${digest} (${list.size} bytes)`;

          // Read back: the tag must serve exactly what we wrote, entry by entry.
          const back = await o.client.getManifest(registry, repository, cfg.tag);
          if (back.digest !== digest) throw new CrossbuildError(`read back: ${listRef} serves ${back.digest}, not the list just written (${digest})`);
          const idx = ImageIndexSchema.parse(JSON.parse(back.bytes.toString('utf8')));
          await Promise.all(
            results.map(async (r) => {
              const entry = idx.manifests.find((m) => m.digest === r.digest);
              if (!entry?.platform || formatPlatform(entry.platform) !== r.platform) {
                throw new CrossbuildError(`read back: ${listRef} has no entry ${r.platform} → ${r.digest}`);
              }
              const head = await o.client.headManifest(registry, repository, r.digest!);
              if (!head || head.digest !== r.digest) throw new CrossbuildError(`read back: ${r.platform} entry ${r.digest} does not resolve in ${repository}`);
            }),
          );
          emit('list', 'done', `${digest} ${list.size}`);
        },
      },
    ],
    {
      exitOnError: true,
      renderer: o.renderer,
      rendererOptions: { collapseSubtasks: false, processOutput: new ProcessOutput(process.stderr, process.stderr) },
      collectErrors: 'minimal',
      // crossbuild handles SIGINT/SIGTERM itself (stop, clean up, report); listr2's own handler would process.exit(127).
      registerSignalListeners: false,
    } as ConstructorParameters<typeof Listr>[1],
  );

  try {
    await tasks.run();
  } catch (e) {
    result.error = e instanceof Error ? scrub(e.message) : String(e);
    if (e instanceof UsageError) result.usageError = e;
    const why = o.interrupted?.();
    if (why) result.error = `interrupted by ${why}`;
  } finally {
    if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
  }
  // Said once: the usual cure when emulation is where a platform's time went.
  const advice = results.map((r) => (r.steps && r.buildSeconds !== undefined ? emulationAdvice(r.platform, r.buildSeconds, r.steps) : undefined)).find((a) => a !== undefined);
  if (advice) {
    result.warnings.push(advice);
    emit('build', 'warning', advice);
  }
  const platformsOk = results.every((r) => r.ok);
  const ok = !result.error && platformsOk && (!o.push || result.list !== undefined);
  if (!ok && !result.error && !platformsOk) result.error = `failed: ${results.filter((r) => !r.ok).map((r) => r.platform).join(', ')}`;
  result.finishedAt = new Date().toISOString();
  Object.assign(result, { ok, engine: state.engine, builder: state.builder });
  return result;
}

