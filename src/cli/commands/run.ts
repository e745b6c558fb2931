// `crossbuild run`: flags (and CROSSBUILD_* variables) → config → plan or pipeline → reports.
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkBuildFiles, flagsConfig, loadConfig, type ConfigOverrides } from '../../config/config.js';
import { checkBuildArgs, checkInputsExist, parseCacheMode, parseAddHost, parseAnnotation, parseAttest, parseAttestationFlag, parseBuildContext, parseNetwork, parseSecret, parseShmSize, parseSsh, parseUlimit, type BuildInputs } from '../../config/build-inputs.js';
import { Docker, dockerCli, settleRemovals, type BuilderKind } from '../../docker/docker.js';
import { familiarRepository, formatReference, isValidTag, parseReference, parseRepository } from '../../oci/reference.js';
import { CrossbuildError, UsageError } from '../../errors.js';
import type { ListKind } from '../../oci/types.js';
import { heartbeat, lineRenderer, type ProgressEvent, type Verbosity } from '../../pipeline/progress.js';
import { toMarkdown, toReport } from '../../pipeline/report.js';
import { planRun, runPipeline, type RunOptions, type RunResult } from '../../pipeline/run.js';
import { claimRun, sweepDeadRuns } from '../../pipeline/sweep.js';
import { parseTestFlag } from '../../config/tests.js';
import { Cosign } from '../../sign/cosign.js';
import { toJunit } from '../../gate/junit.js';
import { layerCacheOption } from '../../verify/layer-cache.js';
import { VERSION } from '../../version.js';
import { failed, OK, type Outcome } from '../failure.js';
import type { Platform } from '../../platform/platform.js';
import { escapeControl, printable } from '../../util/text.js';
import { annotate } from '../../util/annotations.js';
import { clientFromFlags, parseKeyValues, platformsFromFlags, printJson, watchInterrupts, writeReportFile, type RegistryFlags } from '../common.js';

interface RunFlags extends RegistryFlags {
  /** Absent: ./platforms.json when there is one, else a run from the flags alone. */
  config?: string;
  /** -f: every platform's Dockerfile, relative to the cwd as buildx takes it. */
  file?: string;
  progress?: 'auto' | 'tty' | 'plain' | 'quiet' | 'rawjson';
  image?: string;
  /** Repeatable: the first names the suffixed tags, every one gets the list. */
  tag?: string[];
  platform?: string[];
  type?: ListKind;
  push: boolean;
  /** false with --no-list: a leg, the list is `crossbuild merge`'s. */
  list: boolean;
  concurrency?: string;
  buildArg?: string[];
  label?: string[];
  target?: string;
  network?: string;
  secret?: string[];
  ssh?: string[];
  addHost?: string[];
  buildContext?: string[];
  shmSize?: string;
  ulimit?: string[];
  provenance?: string;
  sbom?: string;
  /** --test values; `false` with --no-test (commander's negation). */
  test?: string[] | false;
  junit?: string;
  sign?: boolean;
  key?: string;
  metadataFile?: string;
  iidfile?: string;
  attest?: string[];
  annotation?: string[];
  allow?: string[];
  node?: string[];
  /** `--cache <mode>` and `--no-cache` share commander's attribute: a mode, or false for --no-cache. */
  cache?: string | false;
  cacheRef?: string;
  cacheFrom?: string[];
  cacheTo?: string[];
  timeout: string;
  builder?: BuilderKind;
  logDir?: string;
  json?: boolean;
  report?: string;
  summary?: string;
  dryRun?: boolean;
  /** false with --no-layer-cache. */
  layerCache?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}


/** `--node PLATFORM=NODE`: which engine builds which platform. */
function parseNodes(values: readonly string[]): { platform: Platform; node: string }[] {
  return values.map((v) => {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1) throw new UsageError(`--node ${escapeControl(v)}: expected PLATFORM=NODE, e.g. linux/arm64=arm-builder or linux/arm64=ssh://ci@arm-host`);
    const [platform] = platformsFromFlags([v.slice(0, i)], '--node')!;
    return { platform: platform!, node: v.slice(i + 1) };
  });
}

/**
 * What `docker buildx build --metadata-file` writes for a pushed multi-platform image: the list's
 * digest, descriptor and names; and, crossbuild's own, the same per platform.
 */
export function buildxMetadata(r: RunResult): Record<string, unknown> {
  const platforms = Object.fromEntries(
    r.platforms.filter((p) => p.ok && p.digest).map((p) => [p.platform, { 'containerimage.digest': p.digest, 'image.name': p.ref, ...(p.mediaType && p.size !== undefined ? { 'containerimage.descriptor': { mediaType: p.mediaType, digest: p.digest, size: p.size } } : {}) }]),
  );
  if (!r.list) return { 'crossbuild.platforms': platforms };
  const repo = r.list.ref.slice(0, r.list.ref.lastIndexOf(':'));
  const names = (r.list.tags ?? [r.list.ref.slice(r.list.ref.lastIndexOf(':') + 1)]).map((t) => `${repo}:${t}`);
  return {
    'containerimage.digest': r.list.digest,
    'containerimage.descriptor': { mediaType: r.list.mediaType, digest: r.list.digest, size: r.list.size },
    'image.name': names.join(','),
    'crossbuild.platforms': platforms,
  };
}

/**
 * `-t` as buildx takes it: a tag, or a whole reference (`registry/app:v1`) whose repository then
 * is the image. Every reference must name the same repository: one list, many tags.
 */
export function splitTags(values: readonly string[]): { image?: string; tags: string[] } {
  let image: string | undefined;
  const tags: string[] = [];
  for (const v of values) {
    if (/[/:@]/.test(v)) {
      const ref = parseReference(v, '--tag');
      if (ref.digest) throw new UsageError(`--tag ${escapeControl(v)}: a tag, not a digest`);
      const repo = formatReference({ registry: ref.registry, repository: ref.repository });
      if (image !== undefined && image !== repo) throw new UsageError(`--tag ${escapeControl(v)}: every -t must name one repository (${image} and ${repo}); one list is written under several tags`);
      image = repo;
      tags.push(ref.tag ?? 'latest');
    } else {
      if (!isValidTag(v)) throw new UsageError(`--tag ${escapeControl(v)}: not a valid tag (letters, digits, _ . -; at most 128; not starting with . or -)`);
      tags.push(v);
    }
  }
  return { ...(image !== undefined ? { image } : {}), tags: [...new Set(tags)] };
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${v}: expected a whole number ≥ 1`);
  return n;
}


export async function runCommand(flags: RunFlags, contextArg?: string): Promise<Outcome> {
  if (flags.quiet && flags.verbose) throw new UsageError('--quiet and --verbose exclude each other');
  if (flags.quiet && flags.progress !== undefined && flags.progress !== 'quiet') throw new UsageError(`--quiet and --progress ${flags.progress} exclude each other`);
  const progress = flags.quiet ? 'quiet' : (flags.progress ?? 'auto');
  const quiet = progress === 'quiet';
  const platforms = platformsFromFlags(flags.platform);
  const cwd = process.cwd();
  const inputs: Partial<BuildInputs> = {
    secrets: (flags.secret ?? []).map((v) => parseSecret(v, '--secret', cwd)),
    ssh: (flags.ssh ?? []).map((v) => parseSsh(v, '--ssh', cwd)),
    addHosts: (flags.addHost ?? []).map((v) => parseAddHost(v, '--add-host')),
    buildContexts: (flags.buildContext ?? []).map((v) => parseBuildContext(v, '--build-context', cwd)),
    ulimits: (flags.ulimit ?? []).map((v) => parseUlimit(v, '--ulimit')),
    ...(flags.shmSize !== undefined ? { shmSize: parseShmSize(flags.shmSize, '--shm-size') } : {}),
    ...(flags.provenance !== undefined ? { provenance: parseAttestationFlag(flags.provenance, '--provenance', 'provenance') } : {}),
    ...(flags.sbom !== undefined ? { sbom: parseAttestationFlag(flags.sbom, '--sbom', 'sbom') } : {}),
    attest: (flags.attest ?? []).map((v) => parseAttest(v, '--attest')),
    annotations: (flags.annotation ?? []).map((v) => parseAnnotation(v, '--annotation')),
  };
  // --no-cache takes commander's `cache` attribute, so the mode then comes from the environment.
  const cacheMode = typeof flags.cache === 'string' ? flags.cache : process.env.CROSSBUILD_CACHE || undefined;
  const tagged = splitTags(flags.tag ?? []);
  const overrides: ConfigOverrides = {
    ...(flags.image !== undefined ? { image: flags.image } : {}),
    ...(tagged.image !== undefined && flags.image === undefined ? { image: tagged.image } : {}),
    ...(tagged.tags[0] !== undefined ? { tag: tagged.tags[0] } : {}),
    ...(platforms ? { platforms } : {}),
    ...(flags.network !== undefined ? { network: parseNetwork(flags.network, '--network') } : {}),
    ...(flags.target ? { target: flags.target } : {}),
    ...(cacheMode !== undefined ? { cache: parseCacheMode(cacheMode, '--cache') } : {}),
    ...(flags.allow ? { allow: flags.allow } : {}),
    ...(flags.node ? { nodes: parseNodes(flags.node) } : {}),
    ...(Array.isArray(flags.test) ? { tests: flags.test.map((v) => parseTestFlag(v)) } : {}),
    inputs,
    ...(contextArg !== undefined ? { context: resolve(cwd, contextArg) } : {}),
    ...(flags.file !== undefined ? { dockerfile: resolve(cwd, flags.file) } : {}),
  };
  // -c FILE, else ./platforms.json when there is one, else the flags alone (as docker buildx build).
  const configFile = flags.config ?? (existsSync('platforms.json') ? 'platforms.json' : undefined);
  const config = configFile !== undefined ? loadConfig(configFile, overrides) : flagsConfig(overrides);
  // A missing secret file, variable or SSH socket, context or Dockerfile is the user's to fix: exit 2 before anything runs.
  checkInputsExist(config.inputs);
  checkBuildFiles(config);
  const extraBuildArgs = parseKeyValues(flags.buildArg, '--build-arg');
  checkBuildArgs(extraBuildArgs, '--build-arg');
  // Emulated builds are mostly single-threaded: a little oversubscription keeps every core busy
  // to the end (3 platforms on 2 cores: 3 at once beats 2 then 1).
  const concurrency = flags.concurrency ? positiveInt(flags.concurrency, '--concurrency') : Math.min(config.platforms.length, 2 * Math.max(1, availableParallelism()));
  const timeoutSec = positiveInt(flags.timeout, '--timeout');
  // SIGINT/SIGTERM end every registry request and wait at once (and the builds, pushes and containers, below).
  const stop = new AbortController();
  const client = clientFromFlags(flags, config.image.registry, stop.signal);
  const logDir = flags.logDir ?? join(tmpdir(), 'crossbuild-logs', new Date().toISOString().replace(/[:.]/g, '-'));
  // A terminal that reports no width (some CI wrappers) gets plain lines, not one character a line.
  // --progress as buildx takes it: tty asks for the live view (a terminal still needs a width), auto also skips it in CI.
  const drawable = process.stderr.isTTY === true && (process.stderr.columns ?? 0) >= 40 && !flags.json && !flags.verbose;
  const interactive = progress === 'tty' ? drawable : progress === 'auto' && drawable && !process.env.CI;
  const verbosity: Verbosity = quiet ? 'quiet' : flags.verbose ? 'verbose' : 'normal';
  const beat = interactive || flags.json || quiet || progress === 'rawjson' || flags.dryRun ? undefined : heartbeat((l) => process.stderr.write(l));
  const plain = progress === 'rawjson' ? (e: ProgressEvent) => process.stderr.write(`${JSON.stringify(e)}\n`) : lineRenderer((l) => process.stderr.write(l), verbosity);
  // --username credentials reach `docker push` through a private config of this run's, never ~/.docker.
  const runId = randomBytes(4).toString('hex');
  const privateConfig = flags.dryRun ? undefined : client.credentials.writePrivateDockerConfig(runId);
  const docker = new Docker(dockerCli(), privateConfig ? { DOCKER_CONFIG: privateConfig } : {}, [], runId);
  // This run is alive (a later one sweeps what it leaves if it is killed); sweep what dead runs left.
  const release = flags.dryRun ? undefined : claimRun(runId, docker.endpoint(), familiarRepository(config.image));
  if (!flags.dryRun) for (const n of await sweepDeadRuns(docker).catch(() => [])) process.stderr.write(`note: ${n}\n`);
  const interrupts = watchInterrupts((sig) => {
    process.stderr.write(`crossbuild: ${sig}: stopping builds and removing this run's containers\n`);
    stop.abort();
    void docker.abort();
  });
  // --sign (or platforms.json sign): cosign with the run's credentials, the key made usable once.
  const wantSign = flags.sign === true || flags.key !== undefined || config.sign !== undefined;
  const cosign = wantSign && !flags.dryRun ? new Cosign(flags.key !== undefined ? { ref: flags.key } : config.sign?.key !== undefined ? { ref: config.sign.key } : {}, { ...(privateConfig ? { DOCKER_CONFIG: privateConfig } : {}) }) : undefined;
  const options: RunOptions = {
    build: {
      config,
      extraBuildArgs,
      labels: parseKeyValues(flags.label, '--label'),
      noCache: flags.cache === false,
      cache: {
        ...(flags.cacheRef ? { ref: formatReference(parseRepository(flags.cacheRef, '--cache-ref')) } : {}),
        from: flags.cacheFrom ?? [],
        to: flags.cacheTo ?? [],
      },
      ...(flags.builder ? { builder: flags.builder } : {}),
      ...(flags.type ? { type: flags.type } : {}),
      ...(tagged.tags.length > 1 ? { extraTags: tagged.tags.slice(1) } : {}),
    },
    place: { docker, client, runId, ...layerCacheOption(flags.layerCache === false || flags.dryRun === true) },
    lifecycle: {
      // --push is what run does (accepted for buildx habits); --no-push turns it off.
      push: flags.push !== false,
      writeList: flags.list !== false,
      noTest: flags.test === false,
      ...(cosign ? { sign: { cosign, access: { registry: config.image.registry, plainHttp: flags.plainHttp === true, insecure: flags.insecure === true }, version: VERSION } } : {}),
      concurrency,
      verifyTimeoutMs: timeoutSec * 1000,
      interrupted: interrupts.by,
    },
    show: {
      renderer: interactive ? 'default' : 'silent',
      logDir,
      ...(interactive || flags.json
        ? {}
        : {
            onEvent: (e: ProgressEvent) => {
              plain(e);
              beat?.onEvent(e);
            },
          }),
    },
  };
  try {
    if (flags.dryRun) {
      const plan = await planRun(options);
      if (flags.json) {
        printJson(plan);
        return OK;
      }
      const lines = [`Plan (dry run: nothing is built, pushed or registered)`, `  config:      ${plan.config ?? 'the flags alone (no platforms.json)'}`, `  engine:      ${plan.engine}`, `  builder:     ${plan.builder}`, `  registry:    ${plan.registry}`, `  concurrency: ${plan.concurrency}`];
      for (const w of plan.warnings) lines.push(`  warning:     ${w}`);
      const i = plan.inputs;
      const inputLines: [string, readonly string[]][] = [['secrets', i.secrets], ['ssh', i.ssh], ['add-hosts', i.addHosts], ['build contexts', i.buildContexts], ['shm-size', i.shmSize ? [i.shmSize] : []], ['ulimits', i.ulimits]];
      for (const [name, values] of inputLines) if (values.length > 0) lines.push(`  ${`${name}:`.padEnd(12)} ${values.join(', ')}`);
      lines.push('  binfmt:');
      for (const b of plan.binfmt) lines.push(`    ${b.platform}: ${b.now}${b.change === 'none' ? '' : ` → ${b.change}`}`);
      lines.push('  platforms:');
      for (const p of plan.platforms) {
        lines.push(`    ${p.platform} → ${p.tag}${p.suffixDerived ? ' (suffix derived)' : ''} (uname -m: ${p.expectUname})`, `      ${p.node !== 'local' ? `node: ${p.node}, ` : ''}network: ${p.network}${p.target ? `, target: ${p.target}` : ''}${p.cache !== 'none' ? `, cache: ${p.cache}` : ''}`, `      ${p.command.join(' ')}`);
        for (const t of p.tests) lines.push(`      test: ${t}`);
      }
      lines.push(plan.list ? `  manifest list: ${plan.list.ref} (${plan.list.mediaType}) of ${plan.list.platforms.join(', ')}` : (options.lifecycle.writeList === false ? '  manifest list: none (--no-list: crossbuild merge writes it)' : '  manifest list: none (--no-push)'));
      process.stdout.write(`${printable(lines.join('\n'), { multiline: true })}\n`);
      return OK;
    }
    const result = await runPipeline(options);
    const interruptedBy = interrupts.by();
    if (interruptedBy) {
      result.interrupted = interruptedBy;
      await docker.abort(); // containers started after the signal, if any
    }
    if (result.usageError) throw result.usageError;
    const report = toReport(result, VERSION);
    if (flags.report) writeReportFile(flags.report, `${JSON.stringify(report, null, 2)}\n`);
    // buildx's --metadata-file shape, so build-push-action consumers (and `crossbuild verify --metadata`) read it.
    if (flags.metadataFile) writeReportFile(flags.metadataFile, `${JSON.stringify(buildxMetadata(result), null, 2)}\n`);
    if (flags.iidfile && result.list) writeReportFile(flags.iidfile, result.list.digest);
    if (flags.junit) writeReportFile(flags.junit, toJunit(result.platforms.flatMap((p) => p.tests ?? []), 'crossbuild run'));
    if (flags.summary) writeReportFile(flags.summary, toMarkdown(report));
    if (flags.json) {
      printJson(report);
    } else {
      if (!quiet) {
        const w = Math.max(...result.platforms.map((p) => p.platform.length));
        for (const p of result.platforms) {
          // A platform the run never reached (preflight failed) is not a failure of its own.
          const status = p.ok ? 'ok  ' : p.failedAt ? 'FAIL' : '-   ';
          const detail = p.ok ? `${p.digest ?? 'not pushed'}  ${p.checks.map((c) => c.evidence).join('; ')}` : p.failedAt ? `${p.failedAt}: ${p.error?.split('\n')[0] ?? ''}` : 'not built: the run stopped before it';
          process.stderr.write(`${status} ${p.platform.padEnd(w)}  ${printable(detail)}${p.seconds !== undefined ? `  (${p.seconds}s)` : ''}\n`);
        }
        if (result.seconds !== undefined) process.stderr.write(`${result.ok ? 'done' : 'failed'} in ${result.seconds}s\n`);
      }
      if (interactive) {
        for (const n of result.notes) process.stderr.write(`note: ${n}\n`);
        for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      }
      process.stderr.write(`build logs: ${result.logDir}\n`);
      if (result.list) process.stdout.write(`Digest: ${result.list.digest} ${result.list.size}\n`);
    }
    annotate([
      ...result.platforms.filter((p) => !p.ok).map((p) => ({ kind: 'error' as const, title: `crossbuild run ${p.platform}: ${p.failedAt ?? 'failed'}`, message: p.error ?? 'failed' })),
      ...result.warnings.map((w) => ({ kind: 'warning' as const, title: 'crossbuild run', message: w })),
    ]);
    if (!result.ok) {
      if (!flags.json) {
        for (const p of result.platforms.filter((x) => !x.ok && x.error)) process.stderr.write(`\n${p.platform}: ${printable(p.error!, { multiline: true })}\n`);
      }
      const platformFailed = result.platforms.some((p) => !p.ok && p.failedAt !== undefined);
      const signal = interrupts.by();
      if (signal) return { kind: 'interrupted', signal, done: `this run's containers removed; ${result.list ? `the list was written` : 'no manifest list was written'}` };
      // The run's own error keeps its hint (docker login, the port); platforms' failures say no list was written.
      return failed(result.failure && !platformFailed ? result.failure : new CrossbuildError(result.error ?? 'run failed', { hint: platformFailed ? 'no manifest list was written' : undefined }));
    }
    return OK;
  } finally {
    beat?.stop();
    // The verification containers, removed in the background: waited for while a signal still
    // reaches the run's own handler (which removes what is left).
    await settleRemovals();
    interrupts.dispose();
    if (privateConfig) rmSync(privateConfig, { recursive: true, force: true });
    cosign?.close();
    release?.();
    await client.close();
  }
}
