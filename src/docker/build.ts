// `docker build` for each builder: what each can do (checked before anything runs, never a silent
// drop) and the argv (getCommand style). Pure: tested without an engine.
import { UsageError } from '../errors.js';
import { formatPlatform, type Platform } from '../platform/platform.js';
import { wantsAttestations, type BuildInputs, type NetworkMode } from '../config/build-inputs.js';
import { buildxAtLeast, describeBuilder, dockerDriverOnClassicStore, type Builder, type BuilderKind } from './builder.js';

export { describeBuilder, type Builder, type BuilderKind } from './builder.js';
import type { CachePlan } from './cache.js';

export interface BuildOptions {
  readonly platform: Platform;
  readonly tag: string;
  readonly context: string;
  readonly dockerfile: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly target?: string;
  readonly noCache?: boolean;
  /** RUN steps' network; `default` passes none, so the engine's default applies. */
  readonly network: NetworkMode;
  readonly inputs: BuildInputs;
  /** Cache import/export for this platform (see cache.ts). */
  readonly cache?: CachePlan;
}

/**
 * Build inputs this builder cannot honour, each with what would. Measured on engine 20.10: its
 * BuildKit takes --secret, --ssh and --add-host but silently ignores --shm-size and --ulimit; the
 * classic builder has no secrets, SSH or named contexts.
 */
export function unsupportedInputs(b: Builder, inputs: BuildInputs): string[] {
  const out: string[] = [];
  const used = (name: string, present: boolean) => present && name;
  const wants = [
    used('--secret', inputs.secrets.length > 0),
    used('--ssh', inputs.ssh.length > 0),
    used('--build-context', inputs.buildContexts.length > 0),
    used('--shm-size', inputs.shmSize !== undefined),
    used('--ulimit', inputs.ulimits.length > 0),
    used('--provenance/--sbom/--attest', wantsAttestations(inputs)),
    used('--annotation', inputs.annotations.length > 0),
  ].filter((x): x is string => typeof x === 'string');
  for (const flag of wants) {
    let why: string | undefined;
    if (b.kind === 'classic' && ['--secret', '--ssh', '--build-context'].includes(flag)) {
      why = 'needs BuildKit: install docker buildx (or use a docker CLI < 23 with an engine that has BuildKit, --builder buildkit)';
    } else if (b.kind === 'buildkit' && flag === '--build-context') {
      why = 'needs docker buildx ≥ 0.8';
    } else if (b.kind === 'buildkit' && (flag === '--shm-size' || flag === '--ulimit')) {
      why = "is ignored by the engine's built-in BuildKit: install docker buildx ≥ 0.9, or use --builder classic";
    } else if (b.kind === 'buildx' && flag === '--build-context' && !buildxAtLeast(b, 8)) {
      why = 'needs docker buildx ≥ 0.8';
    } else if (b.kind === 'buildx' && (flag === '--shm-size' || flag === '--ulimit') && !buildxAtLeast(b, 9)) {
      why = 'needs docker buildx ≥ 0.9';
    } else if (flag === '--provenance/--sbom/--attest' && b.kind !== 'buildx') {
      why = 'needs docker buildx ≥ 0.10 (attestations are a buildx feature)';
    } else if (flag === '--provenance/--sbom/--attest' && !buildxAtLeast(b, 10)) {
      why = 'needs docker buildx ≥ 0.10';
    } else if (flag === '--provenance/--sbom/--attest' && dockerDriverOnClassicStore(b)) {
      why = `cannot be kept by buildx's docker driver on the ${b.imageStore} image store: turn on the containerd image store ("features": {"containerd-snapshotter": true} in daemon.json) or use a docker-container builder (docker buildx create --use)`;
    } else if (flag === '--annotation' && (b.kind !== 'buildx' || !buildxAtLeast(b, 12))) {
      why = 'needs docker buildx ≥ 0.12';
    }
    if (why) out.push(`${flag} ${why}; the builder here is ${describeBuilder(b)}`);
  }
  return out;
}

/**
 * Will this build's image come with attestation manifests? buildx ≥ 0.10 attaches min provenance
 * by default wherever it can keep it (not the docker driver on the classic store), unless turned
 * off (--provenance false, BUILDX_NO_DEFAULT_ATTESTATIONS); explicit ones are kept as asked.
 */
export function expectsAttestations(b: Builder, inputs: BuildInputs, env: NodeJS.ProcessEnv = process.env): boolean {
  if (b.kind !== 'buildx' || dockerDriverOnClassicStore(b) || !buildxAtLeast(b, 10)) return false;
  if (wantsAttestations(inputs)) return true;
  const off = inputs.provenance !== undefined || (env.BUILDX_NO_DEFAULT_ATTESTATIONS ?? '') !== '';
  return !off;
}

/**
 * The classic builder on the containerd image store ignores --platform (measured on 28.5: an
 * arm64 build came out amd64, config and binaries): refuse it for any platform not the engine's.
 */
export function assertBuildsPlatforms(b: Builder, platforms: readonly Platform[], engine: { os: string; arch: string }): void {
  if (b.kind !== 'classic' || b.imageStore !== 'containerd') return;
  const foreign = platforms.filter((p) => p.os !== engine.os || p.architecture !== engine.arch);
  if (foreign.length === 0) return;
  throw new UsageError(`the classic builder ignores --platform on the containerd image store (it builds ${engine.os}/${engine.arch}): it cannot build ${foreign.map(formatPlatform).join(', ')}; use docker buildx (omit --builder classic), or the classic (overlay2) store`);
}

export function assertSupported(b: Builder, inputs: BuildInputs): void {
  const problems = unsupportedInputs(b, inputs);
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
}

/**
 * argv for `docker build` with this builder. Secrets appear by id and source only; `envFiles`
 * maps the id of an env secret to a private file holding it, for CLIs whose --secret takes files
 * only (the pre-23 CLI that drives the engine's BuildKit).
 */
export function buildArgv(kind: BuilderKind, o: BuildOptions, envFiles: ReadonlyMap<string, string> = new Map()): string[] {
  const argv = kind === 'buildx' ? ['buildx', 'build', '--load'] : ['build'];
  // The classic builder keeps the container of a failed or cancelled step unless told (BuildKit keeps none).
  if (kind === 'classic') argv.push('--force-rm');
  argv.push('--platform', formatPlatform(o.platform), '-t', o.tag);
  return [...argv, ...sharedArgv(kind, o, envFiles)];
}

/** One buildx solve for several platforms: what it builds and where its result goes. */
export interface SolveOptions extends Omit<BuildOptions, 'platform' | 'tag'> {
  readonly platforms: readonly Platform[];
  /** The run's own local name for the multi-platform result (the engine's image store). */
  readonly tag: string;
  /** Where the OCI image layout of the result goes, for crossbuild to push by digest; absent in the dry run's picture. */
  readonly layoutDir?: string;
  /** Where buildx writes the digest of what it built (`--metadata-file`). */
  readonly metadataFile?: string;
  /**
   * Ask for buildx's default provenance by name: it attaches it to a solve of several platforms
   * but not of one (measured, buildx 0.29 with these two exports), where `--load` gets it.
   */
  readonly defaultProvenance?: boolean;
}

/**
 * argv for one `docker buildx build` of every platform at once, exported twice in the same solve:
 * into the engine's image store under the run's own name (for `uname -m` and the tests), and as an
 * OCI image layout that crossbuild pushes by digest (buildx's docker driver has no
 * push-by-digest), so no tag moves before the proofs. The digest is read from --metadata-file,
 * as build-push-action reads it.
 */
export function solveArgv(o: SolveOptions, envFiles: ReadonlyMap<string, string> = new Map()): string[] {
  const argv = ['buildx', 'build', '--platform', o.platforms.map(formatPlatform).join(','), '--output', `type=image,name=${o.tag}`, '--output', `type=oci,dest=${o.layoutDir ?? '<layout dir>'},tar=false`];
  if (o.metadataFile !== undefined) argv.push('--metadata-file', o.metadataFile);
  if (o.defaultProvenance === true && o.inputs.provenance === undefined) argv.push('--provenance=mode=min');
  return [...argv, ...sharedArgv('buildx', o, envFiles)];
}

/** Everything after the platform and the output: the Dockerfile, inputs, cache and context. */
function sharedArgv(kind: BuilderKind, o: Omit<BuildOptions, 'platform' | 'tag'>, envFiles: ReadonlyMap<string, string>): string[] {
  const argv = ['-f', o.dockerfile, '--pull'];
  if (o.noCache) argv.push('--no-cache');
  if (o.network !== 'default') argv.push('--network', o.network);
  if (kind !== 'classic') argv.push('--progress=plain');
  if (o.target) argv.push('--target', o.target);
  for (const [k, v] of Object.entries({ ...o.buildArgs, ...o.cache?.buildArgs })) argv.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.labels ?? {})) argv.push('--label', `${k}=${v}`);
  for (const s of o.inputs.secrets) {
    const file = s.env !== undefined ? envFiles.get(s.id) : s.src;
    argv.push('--secret', file !== undefined ? `id=${s.id},src=${file}` : `id=${s.id},env=${s.env}`);
  }
  for (const s of o.inputs.ssh) argv.push('--ssh', s.paths.length > 0 ? `${s.id}=${s.paths.join(',')}` : s.id);
  for (const h of o.inputs.addHosts) argv.push('--add-host', h);
  for (const c of o.inputs.buildContexts) argv.push('--build-context', `${c.name}=${c.value}`);
  if (o.inputs.shmSize !== undefined) argv.push('--shm-size', o.inputs.shmSize);
  for (const u of o.inputs.ulimits) argv.push('--ulimit', u);
  if (kind === 'buildx') {
    // Attestation inputs as buildx takes them; elsewhere only "off" can reach here (and means nothing).
    if (o.inputs.provenance !== undefined) argv.push(`--provenance=${o.inputs.provenance}`);
    if (o.inputs.sbom !== undefined) argv.push(`--sbom=${o.inputs.sbom}`);
    for (const a of o.inputs.attest) argv.push('--attest', a);
    for (const a of o.inputs.annotations) argv.push('--annotation', a);
  }
  if (o.cache) argv.push(...o.cache.args);
  argv.push(o.context);
  return argv;
}

/** `--metadata-file` as buildx writes it: the digest it pushed (an index for several platforms). */
export function parseBuildMetadata(json: string): { digest: string } | undefined {
  try {
    const j = JSON.parse(json) as Record<string, unknown>;
    const d = j['containerimage.digest'];
    return typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d) ? { digest: d } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Did this build fail for want of a network? The engine's own message when it has no bridge, and
 * the usual resolver and connection errors of apt, pip, npm, curl and wget.
 */
const NETWORK_FAILURE = [
  /network bridge not found/i,
  /Temporary failure (in name resolution|resolving)/i,
  /Could not resolve( host)?[: ]/i,
  /Name or service not known/i,
  /getaddrinfo (EAI_AGAIN|ENOTFOUND)/i,
  /\bE(AI_AGAIN|NOTFOUND|CONNREFUSED|NETUNREACH|HOSTUNREACH)\b/,
  /Network is unreachable/i,
  /No route to host/i,
  /Connection refused/i,
  /Failed to establish a new connection/i,
  /Could not connect to/i,
  /bad address '/i,
  /unable to (resolve|access) /i,
];

export function looksLikeNetworkFailure(log: string): string | undefined {
  for (const re of NETWORK_FAILURE) {
    const m = re.exec(log);
    if (m) return m[0];
  }
  return undefined;
}

/** The failure line's hint: which network the build had and how to change it. */
export function networkHint(network: NetworkMode, engineHasBridge: boolean | undefined): string {
  const had =
    network === 'default'
      ? `the engine's default network${engineHasBridge === false ? ', and this engine has no bridge network (dockerd --bridge=none), so RUN steps had none' : ''}`
      : `--network ${network}`;
  const fix = network === 'host' ? 'check that the host itself reaches what the build needs' : 'build with --network host (or "network": "host" in platforms.json)';
  return `the build's RUN steps had ${had}: ${fix}`;
}
