// The `crossbuild run` pipeline: preflight → binfmt → per platform (build → verify → push →
// verify what the registry holds) → manifest list → read back. A list is written only when every
// platform it names passed every step. Progress goes out as events (see progress.ts); listr2
// draws them on a terminal.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Listr, ProcessOutput, type ListrTask } from 'listr2';
import { binfmtMounted, installHandlers, platformStatus, readHandlers } from '../binfmt/binfmt.js';
import { suffixedTag, type BuildConfig, type PlatformTarget } from '../config/config.js';
import { assertBuildsPlatforms, assertSupported, buildArgv, describeBuilder, expectsAttestations, solveArgv } from '../docker/build.js';
import { emulationAdvice } from '../docker/steps.js';
import { assertHonoursPlatform, describeNode, nodeArgs, type Builder, type BuilderKind, type Docker, type EngineInfo } from '../docker/docker.js';
import { CrossbuildError, UsageError } from '../errors.js';
import { listKindFor, type ListEntry } from '../oci/list.js';
import { LIST_MEDIA_TYPE } from '../oci/types.js';
import { publishList } from '../registry/publish.js';
import { expectedUname, formatPlatform } from '../platform/platform.js';
import { formatReference, withTag } from '../oci/reference.js';
import { scrub } from '../util/secrets.js';
import { limiter } from '../util/limit.js';
import type { ProgressEvent } from './progress.js';
import type { PlatformResult, RunOptions, RunResult } from './types.js';
import { planPlatform, planSolve, type PlatformPlan } from './plan.js';
import { readBasesAhead } from './read-ahead.js';
import { Solve } from './solve.js';
import { listPredicate, platformPredicate, PREDICATE_TYPES, proofOf, signWithProofs, type ProofContext, type ToSign } from '../sign/proof.js';
import { prepareSecrets, runPlatform, serializer, throwIfInterrupted, type BuildContext, type PlatformHooks } from './platform.js';

export type { PlatformResult, RunOptions, RunResult, Stage } from './types.js';

async function chooseBuilder(docker: Docker, wanted: BuilderKind | undefined): Promise<Builder> {
  const builders = await docker.builders(wanted ?? 'buildx');
  const chosen = wanted ? builders.find((b) => b.kind === wanted) : builders[0];
  if (!chosen) throw new CrossbuildError(`builder ${wanted} is not available here (available: ${builders.map((b) => b.kind).join(', ')})`, { hint: 'omit --builder to pick the best one' });
  return chosen;
}

export interface RunPlan {
  /** The matrix file, or null for a run from flags alone. */
  readonly config: string | null;
  readonly image: string;
  readonly list: { ref: string; mediaType: string; platforms: string[] } | null;
  readonly engine: string;
  readonly builder: string;
  /** Whether the registry takes a push from us (asked with an upload started and cancelled). */
  readonly registry: string;
  /** The builder in words: version, driver, how it is driven. */
  readonly builderDetail: string;
  readonly concurrency: number;
  readonly warnings: string[];
  /** Build inputs by reference: secret ids and where they come from, never their values. */
  readonly inputs: { secrets: string[]; ssh: string[]; addHosts: string[]; buildContexts: string[]; shmSize: string | null; ulimits: string[] };
  readonly binfmt: { platform: string; now: string; change: string }[];
  readonly platforms: { platform: string; tag: string; suffixDerived: boolean; node: string; network: string; dockerfile: string; target: string | null; cache: string; command: string[]; expectUname: string; tests: string[] }[];
}

/** Does this Dockerfile have RUN steps (the only ones that get a network)? */
function hasRunSteps(dockerfile: string): boolean {
  try {
    return /^\s*RUN\b/im.test(readFileSync(dockerfile, 'utf8'));
  } catch {
    return true; // unreadable here: assume it does, the build will say more
  }
}

/**
 * RUN steps on the engine's default network when the engine has none (dockerd --bridge=none):
 * BuildKit cannot start even `RUN true` there ("network bridge not found"), so that is refused
 * before any build, once (exit 2); the classic builder runs them without a network, a warning.
 */
export function noBridgeProblem(cfg: BuildConfig, engineHasBridge: boolean | undefined, builder: BuilderKind, runs: (dockerfile: string) => boolean = hasRunSteps, driver?: string): { refuse?: UsageError; warning?: string } {
  // Only the engine's own BuildKit (and buildx's docker driver, which is it) uses the engine's networks.
  if (builder === 'buildx' && driver !== undefined && driver !== 'docker') return {};
  const onDefault = cfg.platforms.filter((t) => t.node === undefined && t.network === 'default' && runs(t.dockerfile));
  if (engineHasBridge !== false || onDefault.length === 0) return {};
  const names = onDefault.map((t) => formatPlatform(t.platform)).join(', ');
  const fix = 'use --network host (or "network": "host" in platforms.json), or --network none for RUN steps that need no network';
  if (builder === 'classic') return { warning: `the engine has no bridge network (dockerd --bridge=none): RUN steps of ${names} get no network with --network default; if the Dockerfile fetches anything, ${fix}` };
  return { refuse: new UsageError(`the engine has no bridge network (dockerd --bridge=none), so its BuildKit cannot run the RUN steps of ${names} on the default network (it fails with "network bridge not found", even for RUN true)`, { hint: fix }) };
}

/** `--dry-run`: what would happen, with no build, push or binfmt change. A build input the builder lacks is the same exit 2 as in a real run. */
export async function planRun(o: RunOptions): Promise<RunPlan> {
  const cfg = o.build.config;
  let engine = 'not reachable';
  let builder: Builder | undefined;
  const warnings: string[] = [];
  let engineInfo: EngineInfo | undefined;
  try {
    const e = await o.place.docker.engine();
    engineInfo = e;
    engine = `${e.serverVersion} (API ${e.apiVersion}${e.imageStore ? `, ${e.imageStore} image store` : ''})`;
    builder = await chooseBuilder(o.place.docker, o.build.builder);
    const net = noBridgeProblem(cfg, await o.place.docker.hasBridgeNetwork(), builder.kind, undefined, builder.driver);
    if (net.refuse) throw net.refuse;
    if (net.warning) warnings.push(net.warning);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    engine = `not reachable: ${(err as Error).message.split('\n')[0]}`;
  }
  if (builder) assertSupported(builder, cfg.inputs);
  if (builder && engineInfo) assertBuildsPlatforms(builder, cfg.platforms.filter((t) => t.node === undefined).map((t) => t.platform), engineInfo);
  // Nodes are asked as the run asks them, so the plan's builder, command and handlers are the run's.
  const nodes = await probeNodes(o);
  const plans = cfg.platforms.map((t) => platformPlan(o, t, builder, nodes));
  const solve = planSolve(o.build, plans, builder, o.lifecycle.push, o.place.runId);
  let registry = 'not checked (--no-push)';
  if (o.lifecycle.push) {
    registry = await o.place.client.checkPush(cfg.image.registry, cfg.image.repository).then(
      () => `${cfg.image.registry}: push to ${cfg.image.repository} allowed`,
      (e: unknown) => {
        const msg = `${cfg.image.registry}: ${(e as Error).message.split('\n')[0]}`;
        warnings.push(`the registry would refuse the run: ${msg}${e instanceof CrossbuildError && e.hint ? ` (${e.hint})` : ''}`);
        return `FAIL ${msg}`;
      },
    );
  }
  const handlers = (await binfmtMounted()) ? await readHandlers() : [];
  const i = cfg.inputs;
  return {
    config: cfg.file === '' ? null : cfg.file,
    image: formatReference(cfg.image),
    list: o.lifecycle.push && o.lifecycle.writeList !== false ? { ref: formatReference(withTag(cfg.image, cfg.tag)), mediaType: LIST_MEDIA_TYPE[o.build.type ?? (builder && expectsAttestations(builder, cfg.inputs) ? 'oci' : 'docker')], platforms: cfg.platforms.map((t) => formatPlatform(t.platform)) } : null,
    engine,
    builder: builder ? `${builder.kind} via ${builder.cli}` : 'unknown (no engine)',
    registry,
    builderDetail: builder ? describeBuilder(builder) : 'unknown (no engine)',
    concurrency: o.lifecycle.concurrency,
    warnings: [...warnings, ...[...nodes.values()].flatMap((n) => (n.error ? [n.error] : []))],
    inputs: {
      secrets: i.secrets.map((s) => (s.env !== undefined ? `${s.id} (from variable ${s.env})` : `${s.id} (from file ${s.src})`)),
      ssh: i.ssh.map((s) => (s.paths.length > 0 ? `${s.id}=${s.paths.join(',')}` : `${s.id} (agent at $SSH_AUTH_SOCK)`)),
      addHosts: [...i.addHosts],
      buildContexts: i.buildContexts.map((c) => `${c.name}=${c.value}`),
      shmSize: i.shmSize ?? null,
      ulimits: [...i.ulimits],
    },
    binfmt: plans.map((p) => {
      if (!p.needsHandler) {
        const why = p.target.node === undefined ? 'native' : p.target.node.startsWith('unix://') ? `native to node ${p.target.node}: no QEMU handler needed` : `built on node ${p.target.node}, whose kernel has its own handlers`;
        return { platform: p.platform, now: why, change: 'none' };
      }
      const st = platformStatus(p.target.platform, handlers);
      const change = st.state === 'ok' || st.state === 'native' ? 'none' : 'register a qemu handler with the F flag';
      return { platform: st.platform, now: `${st.state}: ${st.detail}`, change };
    }),
    platforms: plans.map((p) => {
      const t = p.target;
      const b = t.node ? nodes.get(t.node)?.builder : builder;
      const solved = solve?.plans.includes(p) === true;
      return {
        platform: p.platform,
        tag: p.ref,
        suffixDerived: cfg.file === '' || t.added === true,
        network: t.network,
        dockerfile: t.dockerfile,
        target: t.target ?? null,
        node: t.node ?? 'local',
        cache: solved ? solve!.cache : p.cache,
        command: solved ? [b!.cli, ...solveArgv(solve!.build)] : [b?.cli ?? 'docker', ...(t.node ? nodeArgs(t.node) : []), ...buildArgv(b?.kind ?? 'classic', p.build)],
        expectUname: t.uname ?? expectedUname(t.platform).machines.join(' or '),
        tests: o.lifecycle.noTest ? (t.tests.length > 0 ? ['skipped (--no-test)'] : []) : t.tests.map((x) => x.name),
      };
    }),
  };
}

function proofContext(version: string, state: { engine?: EngineInfo; builder?: Builder }): ProofContext {
  return {
    crossbuild: version,
    builder: state.builder ? { kind: state.builder.kind, version: state.builder.buildxVersion ?? (state.builder.clientVersion || null) } : null,
    engine: state.engine ? { version: state.engine.serverVersion, imageStore: state.engine.imageStore ?? null } : null,
  };
}

/** The plan of one platform, with the builder of the engine that builds it. */
function platformPlan(o: RunOptions, t: PlatformTarget, local: Builder | undefined, nodes: ReadonlyMap<string, NodeState>): PlatformPlan {
  const node = t.node === undefined ? undefined : nodes.get(t.node);
  return planPlatform(o.build, t, o.place.runId, t.node === undefined ? local : node?.builder, node?.engine);
}

/** Every build node the matrix names, asked in parallel. */
async function probeNodes(o: RunOptions): Promise<Map<string, NodeState>> {
  const wanted = [...new Set(o.build.config.platforms.map((t) => t.node).filter((n): n is string => n !== undefined))];
  return new Map(await Promise.all(wanted.map(async (name) => [name, await probeNode(o, name)] as const)));
}

interface NodeState {
  readonly docker: Docker;
  readonly engine?: EngineInfo;
  readonly builder?: Builder;
  readonly cpus?: number;
  readonly error?: string;
  readonly turn: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly slots: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** Ask a build node for its engine, OS/arch, CPUs and builder; an unreachable one says how it was reached. */
async function probeNode(o: RunOptions, name: string): Promise<NodeState> {
  const docker = o.place.docker.on(nodeArgs(name));
  try {
    const engine = await docker.engine();
    assertHonoursPlatform(engine);
    const builder = await chooseBuilder(docker, o.build.builder);
    assertSupported(builder, o.build.config.inputs);
    assertBuildsPlatforms(builder, o.build.config.platforms.filter((t) => t.node === name).map((t) => t.platform), engine);
    const cpus = await docker.cpus();
    return { docker, engine, builder, ...(cpus ? { cpus } : {}), turn: serializer(), slots: limiter(2 * (cpus ?? 1)) };
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`node ${name} (${describeNode(name)}): ${e.message}`);
    const why = (e as Error).message.split('\n')[0];
    return { docker, error: `node ${name} (${describeNode(name)}) is unreachable: ${why}`, turn: serializer(), slots: limiter(1) };
  }
}

export async function runPipeline(o: RunOptions): Promise<RunResult> {
  // The classic builder resolves FROM through the engine's local tags, which concurrent
  // `--pull`s of one base for different platforms overwrite (seen: an arm/v7 build got the amd64
  // base). Its builds take turns; verification and pushes still overlap. BuildKit and buildx
  // resolve by digest and run fully concurrently.
  const classicTurn = serializer();
  const localSlots = limiter(o.lifecycle.concurrency);
  const emit = (scope: string, state: ProgressEvent['state'], message = '') => o.show.onEvent?.({ at: new Date(), scope, state, message });
  mkdirSync(o.show.logDir, { recursive: true });
  const cfg = o.build.config;
  const plans: PlatformPlan[] = [];
  const results: PlatformResult[] = cfg.platforms.map((t) => ({
    platform: formatPlatform(t.platform),
    suffix: t.suffix,
    ref: formatReference(withTag(cfg.image, suffixedTag(cfg, t))),
    ok: false,
    checks: [],
    log: join(o.show.logDir, `${t.suffix}.log`),
    ...(t.node ? { node: t.node } : {}),
  }));
  const state: { engine?: EngineInfo; builder?: Builder } = {};
  /** Build nodes by name: the engine, its builder, or why it cannot be used. */
  const nodes = new Map<string, NodeState>();
  const buildCtx: BuildContext = { envSecretFiles: new Map() };
  let secretsDir: string | undefined;
  /** The one buildx solve of the local platforms, when they share one (see planSolve). */
  let solve: Solve | undefined;
  // Base layers read into the layer cache while the builds run; stopped when the run ends.
  const readingAhead = new AbortController();
  const result: RunResult = { ok: false, platforms: results, warnings: [], notes: [], logDir: o.show.logDir, startedAt: new Date().toISOString(), ...(o.lifecycle.noTest && cfg.platforms.some((t) => t.tests.length > 0) ? { testsSkipped: true } : {}) };

  const stopIfInterrupted = () => throwIfInterrupted(o.lifecycle);
  // One platform's work on its engine, its outcome in `r`.
  const platformTaskWork = (t: PlatformTarget, r: PlatformResult) => async (task: { output: string; title: string }) => {
    const hooks: PlatformHooks = {
      step: (s, message = '') => {
        task.output = message || s;
        emit(r.platform, s, message);
      },
      output: (line, runningStep) => {
        if (o.show.renderer === 'default') task.output = `${runningStep ? `${runningStep.slice(0, 70)} | ` : ''}${line.slice(0, 90)}`;
        emit(r.platform, 'output', line);
      },
      event: (state, message) => emit(r.platform, state, message),
      title: (title) => {
        task.title = title;
      },
      note: (n) => result.notes.push(n),
      warning: (w) => result.warnings.push(w),
    };
    const plan = plans[cfg.platforms.indexOf(t)]!;
    if (t.node === undefined) {
      const inSolve = solve?.plan.plans.includes(plan) === true ? { solve: solve! } : {};
      await localSlots(() => runPlatform({ o, docker: o.place.docker, builder: state.builder!, buildCtx, classicTurn, ...inSolve }, plan, r, hooks));
      return;
    }
    const n = nodes.get(t.node)!;
    if (n.error) {
      r.failedAt = 'build';
      r.error = n.error;
      hooks.event('failed', `build: ${n.error}`);
      throw new CrossbuildError(n.error);
    }
    // A node takes as many builds at once as its CPUs allow (twice, as locally: emulation is mostly single-threaded).
    try {
      await n.slots(() => runPlatform({ o, docker: n.docker, builder: n.builder!, buildCtx, classicTurn: n.turn }, plan, r, hooks));
    } catch (e) {
      // Whatever failed there, say where: the node and how it was reached.
      if (r.error && !r.error.startsWith('interrupted')) r.error = `on node ${t.node} (${describeNode(t.node)}): ${r.error}`;
      throw e;
    }
  };

  const platformTask = (t: PlatformTarget, r: PlatformResult): ListrTask => ({
    title: `${r.platform} → ${r.ref}${t.node ? ` on ${t.node}` : ''}`,
    task: async (_ctx, task) => {
      const started = Date.now();
      try {
        await platformTaskWork(t, r)(task);
      } finally {
        r.seconds = Math.round((Date.now() - started) / 100) / 10;
      }
    },
  });

  /** Every platform's image signed with its proof attached (and `more`: the list), after every proof passed. */
  const signPlatforms = async (more: ToSign[]): Promise<void> => {
    const s = o.lifecycle.sign!;
    emit('sign', 'started', `${results.length} image${results.length > 1 ? 's' : ''}${more.length ? ' and the list' : ''}`);
    await s.cosign.prepare();
    const ctx = proofContext(s.version, state);
    const items: ToSign[] = results.map((r) => ({
      ref: `${formatReference(cfg.image)}@${r.digest!}`,
      type: PREDICATE_TYPES.platform,
      predicate: platformPredicate(proofOf(r), ctx),
      name: r.suffix,
    }));
    await signWithProofs(s.cosign, s.access, [...items, ...more], { client: o.place.client, image: cfg.image });
    for (const r of results) r.signed = PREDICATE_TYPES.platform;
    emit('sign', 'done', `${results.map((r) => r.platform).join(', ')}${more.length ? ' and the list' : ''} signed and attested`);
  };

  const listRef = formatReference(withTag(cfg.image, cfg.tag));
  const tasks = new Listr(
    [
      {
        title: 'Preflight: Docker engine and builder',
        task: async (_ctx, task) => {
          emit('preflight', 'started');
          // Every question of preflight is asked at once; the answers are judged in this order.
          const settled = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));
          const take = <T>(x: { value: T } | { error: unknown }): T => {
            if ('error' in x) throw x.error;
            return x.value;
          };
          const asked = {
            engine: settled(o.place.docker.engine()),
            builder: settled(chooseBuilder(o.place.docker, o.build.builder)),
            bridge: settled(cfg.platforms.some((t) => t.network === 'default') ? o.place.docker.hasBridgeNetwork() : Promise.resolve(undefined)),
            push: settled(o.lifecycle.push ? o.place.client.checkPush(cfg.image.registry, cfg.image.repository) : Promise.resolve()),
            nodes: settled(probeNodes(o)),
          };
          state.engine = take(await asked.engine);
          state.builder = take(await asked.builder);
          assertHonoursPlatform(state.engine);
          assertSupported(state.builder, cfg.inputs);
          assertBuildsPlatforms(state.builder, cfg.platforms.filter((t) => t.node === undefined).map((t) => t.platform), state.engine);
          if (cfg.platforms.some((t) => t.network === 'default')) {
            buildCtx.engineHasBridge = take(await asked.bridge);
            const net = noBridgeProblem(cfg, buildCtx.engineHasBridge, state.builder.kind, undefined, state.builder.driver);
            if (net.refuse) throw net.refuse;
            const w = net.warning;
            if (w) {
              result.warnings.push(w);
              emit('preflight', 'warning', w);
            }
          }
          // A key that will not open (a wrong COSIGN_PASSWORD) is said now, not after every build.
          if (o.lifecycle.sign) await o.lifecycle.sign.cosign.localSigner();
          // The registry answers and takes our push before minutes of builds, not after them.
          if (o.lifecycle.push) {
            take(await asked.push);
            emit('preflight', 'started', `registry ${cfg.image.registry}: push to ${cfg.image.repository} allowed`);
          }
          secretsDir = await prepareSecrets(state.builder, cfg, buildCtx);
          // Every build node answers (or its platforms fail, naming it), in parallel.
          for (const [name, n] of take(await asked.nodes)) nodes.set(name, n);
          // One plan per platform, from here on the only source of its build, names and handler.
          plans.push(...cfg.platforms.map((t) => platformPlan(o, t, state.builder, nodes)));
          // Only a pushed image gets the registry proof that reads its layers.
          if (o.lifecycle.push && o.place.layerCache) readBasesAhead(o.place.client, plans, o.place.layerCache, readingAhead.signal).catch(() => undefined);
          const sp = planSolve(o.build, plans, state.builder, o.lifecycle.push, o.place.runId);
          if (sp) {
            const logs = new Map(sp.plans.map((p) => [p.platform, results[plans.indexOf(p)]!.log] as const));
            solve = new Solve(sp, o.place.docker, state.builder, { client: o.place.client, image: cfg.image }, buildCtx, logs, o.show.logDir, {
              note: (n) => {
                result.notes.push(n);
                emit('build', 'note', n);
              },
              warning: (w) => {
                result.warnings.push(w);
                emit('build', 'warning', w);
              },
              step: (platform, s) => emit(platform, 'step', s),
              pushing: (platform, message) => emit(platform, 'pushing', message),
            });
            emit('preflight', 'started', `${solve.platforms.join(', ')}: one buildx solve, pushed by digest (${sp.cache === 'none' ? 'no cache' : sp.cache})`);
          }
          for (const [name, n] of nodes) {
            if (n.error) emit('preflight', 'warning', n.error);
            else emit('preflight', 'started', `node ${name} (${describeNode(name)}): engine ${n.engine!.serverVersion} ${n.engine!.os}/${n.engine!.arch}, ${n.cpus ?? '?'} CPUs, builder ${n.builder!.kind}`);
          }
          const store = state.engine.imageStore ? `, ${state.engine.imageStore === 'containerd' ? 'containerd' : state.engine.imageStore} image store` : '';
          task.title = `Preflight: engine ${state.engine.serverVersion} (API ${state.engine.apiVersion}${store}), builder ${state.builder.kind} via ${state.builder.cli}${nodes.size ? `; ${nodes.size} node${nodes.size > 1 ? 's' : ''}` : ''}`;
          emit('preflight', 'done', `engine ${state.engine.serverVersion}${store}, builder ${state.builder.kind} via ${state.builder.cli}${state.builder.kind === 'buildx' ? ` (${state.builder.buildxVersion}, driver ${state.builder.driver ?? 'unknown'})` : ''}`);
        },
      },
      {
        title: 'binfmt_misc: QEMU handlers for emulated platforms',
        task: async (_ctx, task) => {
          const foreign = plans.filter((p) => p.needsHandler).map((p) => p.target.platform);
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
        title: `Build, verify${o.lifecycle.push ? ', push' : ''} ${cfg.platforms.length} platform${cfg.platforms.length === 1 ? '' : 's'} (logs in ${o.show.logDir})`,
        task: (_ctx, task) =>
          task.newListr(
            cfg.platforms.map((t, i) => platformTask(t, results[i]!)),
            // Nodes build at the same time as the local engine: each engine has its own limit.
            { concurrent: cfg.platforms.some((t) => t.node !== undefined) ? cfg.platforms.length : o.lifecycle.concurrency, exitOnError: false, rendererOptions: { collapseSubtasks: false } },
          ),
      },
      {
        // With a list, the platforms are signed together with it (below); a leg (--no-list) signs its platforms here.
        title: 'Sign each platform and attach its proof (cosign)',
        skip: () => (!o.lifecycle.sign || o.lifecycle.writeList !== false ? true : !o.lifecycle.push ? 'not pushing (--no-push)' : false),
        task: async (_ctx, task) => {
          stopIfInterrupted();
          if (results.some((r) => !r.ok)) throw new CrossbuildError(`not signing: ${results.filter((r) => !r.ok).map((r) => r.platform).join(', ')} failed`);
          await signPlatforms([]);
          task.title = `Signed ${results.length} image${results.length > 1 ? 's' : ''}, each with its proof (${PREDICATE_TYPES.platform})`;
        },
      },
      {
        title: `Manifest list ${listRef}`,
        skip: () => (!o.lifecycle.push ? 'not pushing (--no-push)' : o.lifecycle.writeList === false ? 'no list (--no-list): crossbuild merge writes it' : false),
        task: async (_ctx, task) => {
          stopIfInterrupted();
          const failed = results.filter((r) => !r.ok);
          if (failed.length > 0) {
            emit('list', 'skipped', `not written: ${failed.map((r) => r.platform).join(', ')} failed`);
            throw new CrossbuildError(`not writing the list: ${failed.map((r) => `${r.platform} failed at ${r.failedAt ?? 'build'}`).join(', ')}`);
          }
          emit('list', 'started', listRef);
          const kind = listKindFor(o.build.type, results);
          const entries = results.flatMap((r, i): ListEntry[] => {
            const p = cfg.platforms[i]!.platform;
            const image: ListEntry = { mediaType: r.mediaType!, digest: r.digest!, size: r.size!, platform: { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) } };
            return [image, ...(r.attestations ?? [])];
          });
          let signedList: string | undefined;
          const list = await publishList(o.place.client, cfg.image, cfg.tag, kind, entries, {
            // Signed by digest before its tag moves: a list is never published unsigned when --sign was asked.
            ...(o.lifecycle.sign
              ? {
                  beforeTag: async (digest: string) => {
                    const s = o.lifecycle.sign!;
                    await signPlatforms([{ ref: `${formatReference(cfg.image)}@${digest}`, type: PREDICATE_TYPES.list, predicate: listPredicate(results.map((r) => ({ platform: r.platform, digest: r.digest!, verdict: 'pass' })), proofContext(s.version, state)), name: 'list' }]);
                    signedList = PREDICATE_TYPES.list;
                  },
                }
              : {}),
          });
          if (list.tagMovedTo) {
            const w = `${listRef} was moved to ${list.tagMovedTo} by another writer right after this run wrote ${list.digest} (stored, by digest)`;
            result.warnings.push(w);
            emit('list', 'warning', w);
          }
          if (list.dropped.length > 0) {
            const n = `--type docker: ${list.dropped.length} attestation manifest${list.dropped.length > 1 ? 's' : ''} (provenance/SBOM) left out of ${listRef}: a Docker manifest list cannot carry them (use --type oci to keep them)`;
            result.notes.push(n);
            emit('list', 'note', n);
          }
          // Every other -t gets the same list (the same bytes, so the same digest), each read back.
          for (const extra of o.build.extraTags ?? []) await publishList(o.place.client, cfg.image, extra, kind, entries);
          result.list = { ref: listRef, digest: list.digest, size: list.size, mediaType: list.mediaType, ...(signedList ? { signed: signedList } : {}), ...(o.build.extraTags?.length ? { tags: [cfg.tag, ...o.build.extraTags] } : {}) };
          task.title = `Manifest list ${listRef}: ${list.digest} (${list.size} bytes)`;
          emit('list', 'done', `${list.digest} ${list.size}`);
        },
      },
    ],
    {
      exitOnError: true,
      renderer: o.show.renderer,
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
    else if (e instanceof CrossbuildError) result.failure = e;
    const why = o.lifecycle.interrupted?.();
    if (why) result.error = `interrupted by ${why}`;
  } finally {
    readingAhead.abort();
    if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
    // The solve's own local name goes (every platform's image under it), as a run tag does.
    if (solve) await o.place.docker.untag(solve.localName);
  }
  // Said once: the usual cure when emulation is where a platform's time went.
  const advice = results.map((r) => (r.steps && r.buildSeconds !== undefined ? emulationAdvice(r.platform, r.buildSeconds, r.steps) : undefined)).find((a) => a !== undefined);
  if (advice) {
    result.warnings.push(advice);
    emit('build', 'warning', advice);
  }
  const platformsOk = results.every((r) => r.ok);
  const ok = !result.error && platformsOk && (!o.lifecycle.push || o.lifecycle.writeList === false || result.list !== undefined);
  if (!ok && !result.error && !platformsOk) result.error = `failed: ${results.filter((r) => !r.ok).map((r) => r.platform).join(', ')}`;
  result.finishedAt = new Date().toISOString();
  result.seconds = Math.round((Date.parse(result.finishedAt) - Date.parse(result.startedAt)) / 100) / 10;
  Object.assign(result, { ok, engine: state.engine, builder: state.builder });
  return result;
}

