// One platform's stages — build, check (config and `uname -m`), push, verify what the registry
// serves — as a plain function with the engine passed in, so the local run, build nodes and
// legs share them. The list is the caller's.
import { appendFileSync, chmodSync, createWriteStream, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildConfig, PlatformTarget } from '../config/config.js';
import { buildArgv, looksLikeNetworkFailure, networkHint, type BuildOptions } from '../docker/build.js';
import { CacheImportWatcher, cacheExportRefused, type CachePlan } from '../docker/cache.js';
import { StepTracker, type BuildStep } from '../docker/steps.js';
import type { Builder, Docker } from '../docker/docker.js';
import { CrossbuildError } from '../errors.js';
import { expectedUname, formatPlatform, isNative } from '../platform/platform.js';
import { suffixedTag } from '../config/config.js';
import type { ListEntry } from '../oci/list.js';
import { publishList } from '../registry/publish.js';
import type { Solve, SolvedPlatform } from './solve.js';
import { runTest, type TestResult } from '../gate/run.js';
import { registerSecret, scrub } from '../util/secrets.js';
import type { CheckResult } from '../verdict.js';
import { checkMetadata, checkRuntime, runtimeFromProbe } from '../verify/checks.js';
import { verifyPushed, type AttestationEntry } from '../verify/verify.js';
import type { BinaryStats } from '../verify/binaries.js';
import type { ProgressEvent } from './progress.js';
import type { PlatformPlan } from './plan.js';
import type { PlatformResult, RunLifecycle, RunOptions, Stage } from './types.js';

export class StageError extends CrossbuildError {
  constructor(readonly stage: Stage, message: string) {
    super(message);
  }
}

interface BuildOutcome {
  readonly steps: BuildStep[];
  readonly notes: string[];
  readonly warnings: string[];
}

/** A finished build's output: its end, the last lines, and what they said of the network and cache. */
export interface Streamed {
  readonly exitCode: number | undefined;
  readonly signal?: string;
  readonly spawnError?: string;
  readonly tail: string[];
  readonly log: string[];
  readonly networkFailure?: string;
}

/**
 * Run one build, its output scrubbed line by line into `out` (the log files) and to `onLine`; a
 * --cache-from that is not there yet is said once in `notes`.
 */
export async function streamBuild(docker: Docker, builder: Builder, argv: readonly string[], out: readonly NodeJS.WritableStream[], notes: string[], where: string, onLine: (line: string) => void): Promise<Streamed> {
  for (const o of out) o.write(`$ ${builder.cli} ${argv.join(' ')}\n`);
  const tail: string[] = [];
  const all: string[] = [];
  let networkFailure: string | undefined;
  const imports = new CacheImportWatcher();
  const r = await docker.build(builder, argv, (raw) => {
    const line = scrub(raw);
    for (const o of out) o.write(`${line}\n`);
    if (line.trim() === '') return;
    if (all.length < 5000) all.push(line);
    networkFailure ??= looksLikeNetworkFailure(line);
    const missing = imports.feed(line);
    if (missing && !notes.some((n) => n.startsWith(`${where}: no cache yet`))) notes.push(`${where}: no cache yet at ${missing} (first run, or the cache was deleted); building without one`);
    tail.push(line);
    if (tail.length > 20) tail.shift();
    onLine(line);
  });
  return { ...r, tail, log: all, ...(networkFailure ? { networkFailure } : {}) };
}

/** The same build without exporting its cache (a registry that refused it costs the cache, not the run). */
export function withoutCacheExport<T extends { cache?: CachePlan }>(o: T): T {
  if (!o.cache) return o;
  return { ...o, cache: { ...o.cache, args: o.cache.args.filter((a, i, all) => a !== '--cache-to' && all[i - 1] !== '--cache-to') } };
}

/** Did the build fail only because the registry would not take its cache? */
export function refusedCacheExport(r: Streamed, o: { cache?: CachePlan }): boolean {
  return r.exitCode !== 0 && (o.cache?.args.includes('--cache-to') ?? false) && cacheExportRefused(r.log.join('\n'));
}

/** The failure line of a build: how it ended, a network hint where it looks like one, the log and its last lines. */
export function buildFailure(what: string, r: Streamed, network: PlatformTarget['network'], engineHasBridge: boolean | undefined, logFile: string, detail = ''): string {
  const hint = r.networkFailure ? `; looks like a network failure ("${r.networkFailure}"): ${networkHint(network, engineHasBridge)}` : '';
  const how = r.spawnError ? `could not start (${r.spawnError === 'E2BIG' ? 'E2BIG: the argument list is too long — a build arg, label or path too large?' : r.spawnError})` : `failed (exit ${r.exitCode ?? r.signal ?? 'signal'})`;
  return `${what} ${how}${detail}${hint}; log: ${logFile}\n${r.tail.slice(-12).join('\n')}`;
}

async function buildOne(docker: Docker, builder: Builder, plan: PlatformPlan, ctx: BuildContext, logFile: string, report: (line: string) => void, onStep: (step: string) => void): Promise<BuildOutcome> {
  const t = plan.target;
  let opts = plan.build;
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
  let tracker = new StepTracker(!isNative(t.platform));
  const run = (o2: BuildOptions) => {
    tracker = new StepTracker(!isNative(t.platform));
    return streamBuild(docker, builder, buildArgv(builder.kind, o2, ctx.envSecretFiles), [out], notes, where, (line) => {
      const step = tracker.feed(line, Date.now());
      if (step) onStep(step);
      report(line);
    });
  };
  let r = await run(opts);
  if (refusedCacheExport(r, opts)) {
    warnings.push(`${where}: the registry refused the build cache (${r.tail.filter((l) => /cache/i.test(l)).pop()?.slice(0, 160) ?? 'export failed'}); built again without exporting it`);
    opts = withoutCacheExport(opts);
    r = await run(opts);
  }
  await new Promise<void>((resolve) => out.end(resolve));
  if (r.exitCode !== 0) throw new StageError('build', buildFailure(`build of ${where}`, r, t.network, ctx.engineHasBridge, logFile));
  return { steps: tracker.steps(Date.now()), notes, warnings };
}

/** What every platform's build shares, found out once in preflight. */
export interface BuildContext {
  engineHasBridge?: boolean;
  /** id → private file holding an env secret, for CLIs whose --secret takes files only. */
  envSecretFiles: Map<string, string>;
}

/**
 * Secrets are passed by reference; their values are registered for scrubbing so a RUN step that
 * prints one cannot leak it into logs or reports. The pre-23 CLI takes file secrets only: env
 * secrets become files in a private folder (0700/0600) that is removed when the run ends.
 */
export async function prepareSecrets(builder: Builder, cfg: BuildConfig, ctx: BuildContext): Promise<string | undefined> {
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

interface InRegistry {
  readonly checks: CheckResult[];
  /** The platform's image (inside the pushed index, when buildx pushed one). */
  readonly image: { mediaType: string; digest: string; size: number };
  readonly attestations: AttestationEntry[];
  readonly files?: BinaryStats;
  readonly configDigest?: string;
}

/** What the registry now holds for the pushed digest, checked by the same verifier as `crossbuild verify --static`. */
async function verifyInRegistry(o: RunOptions, t: PlatformTarget, digest: string): Promise<InRegistry> {
  const report = await verifyPushed(o.place.client, o.build.config.image, digest, t.platform, { staticOnly: true, timeoutMs: o.lifecycle.verifyTimeoutMs, allow: o.build.config.allow, ...(o.place.layerCache ? { layerCache: o.place.layerCache } : {}) });
  if (!report.image) {
    throw new StageError('registry-verify', `pushed ${formatPlatform(t.platform)} (${digest}) holds no ${formatPlatform(t.platform)} image: ${report.checks.map((c) => c.evidence).join('; ')}`);
  }
  return {
    checks: report.checks.map((c) => ({ ...c, evidence: `registry ${c.evidence}` })),
    image: report.image,
    attestations: report.attestations,
    ...(report.files ? { files: report.files } : {}),
    ...(report.configDigest ? { configDigest: report.configDigest } : {}),
  };
}

/** Run a platform's tests one after another, each said as it starts and ends, all in its log. */
async function runTests(env: PlatformEnv, plan: PlatformPlan, imageId: string, logFile: string, hooks: PlatformHooks): Promise<TestResult[]> {
  const { docker, builder, buildCtx, o } = env;
  const t = plan.target;
  const exp = expectedUname(t.platform, t.uname);
  // An HTTP test publishes a port on the bridge, or shares the host's network where there is none.
  const engineHasBridge = t.tests.some((x) => x.kind === 'http') ? (t.node === undefined ? (buildCtx.engineHasBridge ?? (await docker.hasBridgeNetwork())) : await docker.hasBridgeNetwork()) : buildCtx.engineHasBridge;
  const results: TestResult[] = [];
  for (const test of t.tests) {
    throwIfInterrupted(o.lifecycle);
    hooks.event('testing', test.name);
    const result = await runTest(test, {
      docker,
      image: imageId,
      platform: t.platform,
      machines: exp.machines,
      qemuEnv: exp.env,
      pull: false,
      engineHasBridge,
      // A stage built for the platform, not pushed: its own name, removed after.
      buildTarget: async (target) => {
        const argvOpts: BuildOptions = withoutCacheExport({ ...plan.build, target, tag: plan.testTag });
        const argv = buildArgv(builder.kind, argvOpts, buildCtx.envSecretFiles);
        const lines: string[] = [];
        const out = createWriteStream(logFile, { flags: 'a' });
        out.write(`$ ${builder.cli} ${argv.join(' ')}\n`);
        const b = await docker.build(builder, argv, (raw) => {
          const line = scrub(raw);
          out.write(`${line}\n`);
          lines.push(line);
          if (lines.length > 40) lines.shift();
        });
        await new Promise<void>((resolve) => out.end(resolve));
        await docker.untag(plan.testTag);
        return { ok: b.exitCode === 0, tail: lines.join('\n') };
      },
    });
    appendFileSync(logFile, `--- test ${result.name}: ${result.verdict}${result.reason ? ` (${result.reason})` : ''} in ${result.seconds}s\n${result.output ? `${result.output}\n` : ''}`);
    results.push(result);
    hooks.event('tested', `${result.name}: ${result.verdict === 'pass' ? 'passed' : `FAILED, ${result.reason ?? ''}`} (${result.seconds}s)`);
    if (result.verdict === 'fail') break;
  }
  return results;
}

/** A one-at-a-time lock. */
export function serializer(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** Nothing new starts once SIGINT/SIGTERM arrived. */
export function throwIfInterrupted(o: Pick<RunLifecycle, 'interrupted'>): void {
  const why = o.interrupted?.();
  if (why) throw new CrossbuildError(`interrupted by ${why}`);
}

/** What one platform's stages need: the options, and the engine and builder to use. */
export interface PlatformEnv {
  readonly o: RunOptions;
  readonly docker: Docker;
  readonly builder: Builder;
  readonly buildCtx: BuildContext;
  /** The classic builder's builds take turns on one engine. */
  readonly classicTurn: <T>(fn: () => Promise<T>) => Promise<T>;
  /** The one buildx solve this platform is built in, when it is. */
  readonly solve?: Solve;
}

/** How a platform reports: progress states, build output, title, notes and warnings. */
export interface PlatformHooks {
  step(state: ProgressEvent['state'], message?: string): void;
  output(line: string, runningStep: string): void;
  event(state: ProgressEvent['state'], message: string): void;
  title(title: string): void;
  note(note: string): void;
  warning(warning: string): void;
}

/** The local checks' verdict: a failed config or `uname -m` stops the platform here. */
function requireLocalChecks(r: PlatformResult, checks: readonly CheckResult[]): void {
  r.checks.push(...checks);
  const failed = checks.filter((c) => c.verdict === 'fail');
  if (failed.length > 0) throw new StageError('verify', `${r.platform} failed verification: ${failed.map((c) => `${c.check}: ${c.evidence}`).join('; ')}`);
}

/** The test gate: every test of the platform passes before anything of it is published. */
async function gateTests(env: PlatformEnv, plan: PlatformPlan, image: string, r: PlatformResult, hooks: PlatformHooks, mark: (s: Stage) => void): Promise<void> {
  const t = plan.target;
  if (t.tests.length === 0 || env.o.lifecycle.noTest) return;
  mark('test');
  throwIfInterrupted(env.o.lifecycle);
  hooks.step('testing', `${t.tests.length} test${t.tests.length > 1 ? 's' : ''}`);
  r.tests = await runTests(env, plan, image, r.log, hooks);
  const bad = r.tests.filter((x) => x.verdict === 'fail');
  if (bad.length > 0) {
    const b = bad[0]!;
    throw new StageError('test', `${r.platform}: test "${b.name}" failed: ${b.reason ?? 'failed'}${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}${b.output ? `\n${b.output.split('\n').slice(-12).join('\n')}` : ''}`);
  }
}

/** What the registry proof found, kept in the result; a failed proof stops the platform. */
function keepRegistryProof(r: PlatformResult, inReg: InRegistry): void {
  r.digest = inReg.image.digest;
  r.attestations = inReg.attestations;
  r.checks.push(...inReg.checks);
  r.mediaType = inReg.image.mediaType;
  r.size = inReg.image.size;
  if (inReg.files) r.files = inReg.files;
  const regFailed = inReg.checks.filter((c) => c.verdict === 'fail');
  if (regFailed.length > 0) throw new StageError('registry-verify', `${r.platform} in the registry: ${regFailed.map((c) => c.evidence).join('; ')}`);
}

/** A platform done: its title and last event name the image, what `uname -m` said, its attestations. */
function announce(r: PlatformResult, runtime: CheckResult, hooks: PlatformHooks): void {
  r.ok = true;
  const n = r.attestations?.length ?? 0;
  const att = n > 0 ? `, ${n} attestation${n > 1 ? 's' : ''}` : '';
  hooks.title(`${r.platform} → ${r.ref}@${r.digest!.slice(0, 19)}… (${runtime.evidence}${att})`);
  hooks.event('done', `${r.digest!} (${runtime.evidence}${att})`);
}

/**
 * A platform the solve built and pushed by digest: its config and `uname -m` of exactly that
 * digest, its tests, the registry proof, and only then its suffixed tag (an index of the image
 * and its attestations when it has any, as `docker push` of a buildx image writes it).
 */
async function proveSolved(env: PlatformEnv, plan: PlatformPlan, r: PlatformResult, hooks: PlatformHooks, solved: Extract<SolvedPlatform, { kind: 'built' }>, mark: (s: Stage) => void): Promise<void> {
  const { o, docker } = env;
  const t = plan.target;
  const cfg = o.build.config;
  const { registry, repository } = cfg.image;
  const client = o.place.client;
  const index = solved.index;
  const entry = solved.image;
  mark('verify');
  throwIfInterrupted(o.lifecycle);
  hooks.step('verifying', `built in ${r.buildSeconds}s (one buildx solve ${index.slice(0, 19)}…)`);
  // The engine holds the same solve's result under the run's own name: the platform picks the image.
  const local = env.solve!.localName;
  const meta = checkMetadata(t.platform, entry.config, 'image config');
  const uname = { ...(t.uname ? { uname: t.uname } : {}), timeoutMs: o.lifecycle.verifyTimeoutMs };
  const probed = await env.solve!.uname(plan.platform, uname.timeoutMs);
  // A probe stopped by a signal answers nothing: no `docker run` in its place.
  throwIfInterrupted(o.lifecycle);
  if (probed?.kind === 'unknown') hooks.step('verifying', `uname -m by docker run (the probe: ${probed.why.slice(0, 160)})`);
  const runtime = runtimeFromProbe(probed, t.platform, uname) ?? (await checkRuntime(docker, local, t.platform, uname));
  requireLocalChecks(r, [meta, runtime]);
  await gateTests(env, plan, local, r, hooks, mark);
  // Its bytes reach the registry by digest (pushed while the checks above ran); then the proof.
  mark('push');
  await solved.pushed;
  mark('registry-verify');
  throwIfInterrupted(o.lifecycle);
  hooks.step('verifying-registry', entry.digest);
  const proofStarted = Date.now();
  const inReg = await verifyInRegistry(o, t, index);
  r.proofSeconds = Math.round((Date.now() - proofStarted) / 100) / 10;
  if (inReg.image.digest !== entry.digest) throw new StageError('registry-verify', `${r.platform}: the registry's ${index} holds ${inReg.image.digest}, not ${entry.digest}`);
  keepRegistryProof(r, inReg);

  // Proven and tested: now its tag moves.
  mark('push');
  throwIfInterrupted(o.lifecycle);
  hooks.step('pushing', r.ref);
  const tag = suffixedTag(cfg, t);
  // The suffixed name stays in the engine, as after `docker push`: on the solve's result (every
  // platform of it, this one picked with --platform). Named beside the registry's tag, not after:
  // the image is proven, and a local name that outlives a failed tag write is what `docker build
  // -t` + a failed `docker push` leave too.
  const named = docker.tag(local, r.ref).catch(() => undefined);
  if (inReg.attestations.length > 0) {
    const image: ListEntry = { mediaType: inReg.image.mediaType, digest: entry.digest, size: inReg.image.size, platform: entry.platform };
    const own = await publishList(client, cfg.image, tag, 'oci', [image, ...inReg.attestations]);
    r.pushedDigest = own.digest;
  } else {
    const m = await client.getManifest(registry, repository, entry.digest);
    await client.putManifest(registry, repository, tag, m.bytes, m.mediaType);
  }
  await named;
  announce(r, runtime, hooks);
}

/** Build, check, push and verify one platform; fills `r`, throws (after filling it) on failure. */
export async function runPlatform(env: PlatformEnv, plan: PlatformPlan, r: PlatformResult, hooks: PlatformHooks): Promise<void> {
  const { o, docker, builder, buildCtx, classicTurn } = env;
  const t = plan.target;
  const own = plan.runTag;
  // Only a build of its own names the image `own`; a platform of the solve never has that name.
  let ownNamed = false;
  let stage: Stage = 'build';
  const step = hooks.step;
  const stopIfInterrupted = () => throwIfInterrupted(o.lifecycle);
  try {
    stopIfInterrupted();
    step('building', `log: ${r.log}`);
    const started = Date.now();
    r.cache = plan.cache;
    let runningStep = '';
    const build = () =>
      buildOne(
        docker,
        builder,
        plan,
        buildCtx,
        r.log,
        (line) => hooks.output(line, runningStep),
        (s) => {
          runningStep = s;
          hooks.event('step', s);
        },
      );
    if (env.solve) {
      const solved = await env.solve.forPlatform(plan.platform, (line, s) => hooks.output(line, s));
      if (solved.kind === 'failed') throw new StageError('build', solved.error);
      if (solved.kind === 'built') {
        r.cache = env.solve.plan.cache;
        r.buildSeconds = solved.seconds;
        r.steps = solved.steps;
        await proveSolved(env, plan, r, hooks, solved, (s) => (stage = s));
        return;
      }
      hooks.note(solved.why);
      hooks.event('note', solved.why);
    }
    ownNamed = true;
    const outcome = await (builder.kind === 'classic' ? classicTurn(build) : build());
    r.buildSeconds = Math.round((Date.now() - started) / 100) / 10;
    r.steps = outcome.steps;
    for (const n of outcome.notes) {
      hooks.note(n);
      hooks.event('note', n);
    }
    for (const w of outcome.warnings) {
      hooks.warning(w);
      hooks.event('warning', w);
    }

    stage = 'verify';
    stopIfInterrupted();
    step('verifying', `built in ${r.buildSeconds}s`);
    // From here on the image is this run's by ID: the run tag names it, nothing else is trusted.
    const inspect = await docker.inspect(own);
    const meta = checkMetadata(t.platform, inspect, 'image config');
    const runtime = await checkRuntime(docker, inspect.id, t.platform, { ...(t.uname ? { uname: t.uname } : {}), timeoutMs: o.lifecycle.verifyTimeoutMs });
    requireLocalChecks(r, [meta, runtime]);
    await gateTests(env, plan, inspect.id, r, hooks, (s) => (stage = s));

    if (!o.lifecycle.push) {
      await docker.tag(inspect.id, r.ref);
      r.ok = true;
      hooks.title(`${r.platform}: built and verified (${[meta, runtime].map((c) => c.evidence).join('; ')})`);
      hooks.event('done', 'built and verified (not pushed)');
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
      await docker.tag(inspect.id, r.ref);
      pushed = await docker.push(r.ref, {
        onRetry: (n, reason, delayMs) => step('pushing', `${r.ref} again (attempt ${n} of 3) in ${(delayMs / 1000).toFixed(1)}s: ${reason}`),
      });
      stage = 'registry-verify';
      step('verifying-registry', pushed.digest);
      const proofStarted = Date.now();
      inReg = await verifyInRegistry(o, t, pushed.digest);
      r.proofSeconds = Math.round((Date.now() - proofStarted) / 100) / 10;
      if (inReg.configDigest === inspect.id || pushed.digest === inspect.id) break;
      if (attempt === 3) throw new StageError('push', `${r.ref} was re-tagged by someone else while this run pushed it (3 times): pushed ${pushed.digest} is not this run's image ${inspect.id}`);
      stage = 'push';
      step('pushing', `${r.ref} again: another run moved the tag (pushed config ${inReg.configDigest ?? '?'}, this run's image ${inspect.id})`);
    }
    if (pushed.digest !== inReg.image.digest) r.pushedDigest = pushed.digest;
    keepRegistryProof(r, inReg);
    announce(r, runtime, hooks);
  } catch (e) {
    r.ok = false;
    r.failedAt = e instanceof StageError ? e.stage : stage;
    const why = o.lifecycle.interrupted?.();
    r.error = why ? `interrupted by ${why}` : e instanceof Error ? scrub(e.message) : String(e);
    hooks.event('failed', `${r.failedAt}: ${r.error.split('\n')[0]}`);
    throw e instanceof Error ? e : new Error(String(e));
  } finally {
    // The run's own name goes; the suffixed name stays on the image, as users expect. (Not
    // asked when there is none: a CLI start, ~0.3 s, between the last platform and the list.)
    if (ownNamed) await docker.untag(own);
  }
}
