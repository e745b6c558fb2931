// `docker build` for each builder: what each can do (checked before anything runs, never a silent
// drop) and the argv (getCommand style). Pure: tested without an engine.
import { UsageError } from '../errors.js';
import { formatPlatform, type Platform } from '../platform/platform.js';
import type { BuildInputs, NetworkMode } from './build-inputs.js';
import type { CachePlan } from './cache.js';

export type BuilderKind = 'buildx' | 'buildkit' | 'classic';

export interface Builder {
  readonly kind: BuilderKind;
  /** The docker CLI binary that drives it. */
  readonly cli: string;
  readonly env: Readonly<Record<string, string>>;
  readonly clientVersion: string;
  /** `docker buildx version`'s version (v0.12.1), buildx only. */
  readonly buildxVersion?: string;
  /** The current buildx builder's driver (docker, docker-container, …), buildx only. */
  readonly driver?: string;
}

export interface BuildOptions {
  readonly platform: Platform;
  readonly tag: string;
  readonly context: string;
  readonly dockerfile: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly target?: string;
  readonly noCache?: boolean;
  readonly pull?: boolean;
  /** RUN steps' network; `default` passes none, so the engine's default applies. */
  readonly network: NetworkMode;
  readonly inputs: BuildInputs;
  /** Cache import/export for this platform (see cache.ts). */
  readonly cache?: CachePlan;
}

export function describeBuilder(b: Builder): string {
  if (b.kind === 'buildx') return `buildx ${b.buildxVersion ?? ''} (driver ${b.driver ?? 'unknown'}) via ${b.cli}`.replace(/\s+/g, ' ');
  if (b.kind === 'buildkit') return `the engine's BuildKit via ${b.cli} ${b.clientVersion} (DOCKER_BUILDKIT=1)`;
  return `the classic builder via ${b.cli}${b.clientVersion ? ` ${b.clientVersion}` : ''} (DOCKER_BUILDKIT=0)`;
}

function buildxAtLeast(b: Builder, minor: number): boolean {
  const m = /v?(\d+)\.(\d+)/.exec(b.buildxVersion ?? '');
  if (!m) return true; // unknown version: let buildx itself say no
  return Number(m[1]) > 0 || Number(m[2]) >= minor;
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
    }
    if (why) out.push(`${flag} ${why}; the builder here is ${describeBuilder(b)}`);
  }
  return out;
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
  argv.push('--platform', formatPlatform(o.platform), '-t', o.tag, '-f', o.dockerfile);
  if (o.pull !== false) argv.push('--pull');
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
  if (o.cache) argv.push(...o.cache.args);
  argv.push(o.context);
  return argv;
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
