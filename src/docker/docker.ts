// The Docker CLI, one module: argv builders (getCommand style), output parsers (pure, tested
// against captured output) and runners that carry command, exit code and stderr on failure.
import { execa, type Options, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { CommandError, CrossbuildError } from '../errors.js';
import { retry, type RetryPolicy } from '../util/retry.js';
import { formatPlatform, type Platform } from '../platform/platform.js';
import { buildxVersionOf, type Builder } from './builder.js';

export { buildArgv, type Builder, type BuilderKind, type BuildOptions } from './build.js';

/**
 * A build node: an engine URL (unix://, tcp:// with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, ssh://)
 * is reached with `--host`, anything else is a Docker context name (`--context`).
 */
export function nodeArgs(node: string): string[] {
  return /^(unix|tcp|ssh|npipe|fd):\/\//.test(node) ? ['--host', node] : ['--context', node];
}

/** How a node is reached, for messages: "arm-box (context)" or the URL. */
export function describeNode(node: string): string {
  return /^[a-z]+:\/\//.test(node) ? node : `context ${node}`;
}

/** The docker CLI crossbuild runs: $CROSSBUILD_DOCKER, else `docker` on PATH. */
export function dockerCli(env: NodeJS.ProcessEnv = process.env): string {
  return env.CROSSBUILD_DOCKER ?? 'docker';
}

export interface EngineInfo {
  readonly cli: string;
  readonly clientVersion: string;
  readonly serverVersion: string;
  readonly apiVersion: string;
  readonly os: string;
  readonly arch: string;
  /** "containerd" with the containerd image store, else the graph driver (overlay2, …). */
  readonly imageStore?: string;
}

/**
 * `docker info --format '{{json .}}'`: which image store holds local images. The containerd store
 * lists `driver-type io.containerd.snapshotter.v1` in DriverStatus; the classic one is a graph
 * driver such as overlay2.
 */
export function parseImageStore(infoJson: string): string | undefined {
  try {
    const j = JSON.parse(infoJson) as { Driver?: string; DriverStatus?: [string, string][] | null };
    if ((j.DriverStatus ?? []).some(([k, v]) => k === 'driver-type' && v.startsWith('io.containerd.snapshotter'))) return 'containerd';
    return j.Driver || undefined;
  } catch {
    return undefined;
  }
}

/**
 * `docker info --format '{{json .}}'`'s ClientInfo: the CLI's version (CLIs ≥ 23 say it there)
 * and buildx's, when the CLI has that plugin — answers that otherwise cost a `docker version` and
 * a `docker buildx version` (~0.4 s: the plugin is a large binary to start).
 */
export function parseClientInfo(infoJson: string): { clientVersion?: string; buildxVersion?: string; buildxPath?: string } {
  try {
    const j = JSON.parse(infoJson) as { ClientInfo?: { Version?: string; Plugins?: { Name?: string; Version?: string; Path?: string; Err?: string }[] | null } | null };
    const c = j.ClientInfo ?? {};
    const bx = (c.Plugins ?? []).find((p) => p.Name === 'buildx' && !p.Err && p.Version);
    return { ...(c.Version ? { clientVersion: c.Version } : {}), ...(bx ? { buildxVersion: parseBuildxVersion(bx.Version!) ?? bx.Version! } : {}), ...(bx?.Path ? { buildxPath: bx.Path } : {}) };
  } catch {
    return {};
  }
}

/**
 * A `buildx …` command run as the plugin binary itself (`docker-buildx build …`, buildx's
 * standalone mode), at the path the CLI's `docker info` gave: the same binary, config, builders
 * and engine (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG as the CLI reads them), without the
 * CLI's start and plugin check in front of every build — 0.2–0.35 s a command, measured on Docker
 * 28.5. An engine chosen by `--host` goes as DOCKER_HOST; one chosen by `--context`, or
 * CROSSBUILD_BUILDX_DIRECT=off, keeps the CLI.
 */
export function buildxDirect(b: Builder, globalArgs: readonly string[], argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { file: string; args: string[]; env: Record<string, string> } | undefined {
  if (b.kind !== 'buildx' || !b.plugin || argv[0] !== 'buildx' || env.CROSSBUILD_BUILDX_DIRECT === 'off') return undefined;
  // Before 0.23 standalone buildx ignored DOCKER_TLS_VERIFY / DOCKER_CERT_PATH (a TLS engine,
  // docker:dind in CI): those versions keep the CLI, which reads them.
  const v = buildxVersionOf(b);
  if (!v || (v.major === 0 && v.minor < 23)) return undefined;
  // Standalone, even when crossbuild itself was started by a docker CLI plugin.
  const own = { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: '' };
  if (globalArgs.length === 0) return { file: b.plugin, args: argv.slice(1), env: own };
  if (globalArgs.length === 2 && globalArgs[0] === '--host') return { file: b.plugin, args: argv.slice(1), env: { ...own, DOCKER_HOST: globalArgs[1]! } };
  return undefined;
}

/**
 * Is this docker CLI a script in front of docker (a wrapper with its own flags, environment or
 * sudo)? Then every command goes through it, buildx too, unless CROSSBUILD_BUILDX_DIRECT=on.
 * Unreadable or not found: taken as one.
 */
export function isWrapper(cli: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const dirs = cli.includes('/') ? [''] : (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    const file = dir ? join(dir, cli) : cli;
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const head = Buffer.alloc(2);
      readSync(fd, head, 0, 2, 0);
      return head.toString('latin1') === '#!';
    } catch {
      continue;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return true;
}

/** `--platform` on build needs engine API 1.38+ (engine 18.06+). */
export function honoursPlatform(engine: EngineInfo): boolean {
  const [maj, min] = engine.apiVersion.split('.').map(Number);
  return (maj ?? 0) > 1 || (maj === 1 && (min ?? 0) >= 38);
}

export function assertHonoursPlatform(engine: EngineInfo): void {
  if (!honoursPlatform(engine)) {
    throw new CrossbuildError(`engine API ${engine.apiVersion} does not honour --platform on build (needs 1.38+)`, { hint: 'upgrade the engine to 18.06 or later' });
  }
}

/** A finished docker command. */
interface Ran {
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly all: string;
  readonly timedOut: boolean;
  readonly signal?: string;
  /** A spawn error's code (ENOENT, E2BIG) when the command never ran. */
  readonly code?: string;
}

export interface ContainerRunOptions {
  readonly image: string;
  readonly platform: Platform;
  /** Absent: the image's own entrypoint (a service under test). */
  readonly entrypoint?: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly name: string;
  readonly network?: 'none' | 'host' | 'bridge';
  /** Container ports to publish on 127.0.0.1, each to a free host port (bridge networks only). */
  readonly publish?: readonly number[];
  /** Local images (run) or pulled by digest (verify). */
  readonly pull?: 'never' | 'missing';
  /** Labels for finding the container again (the run that owns it). */
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * argv for a throwaway verification container: no network, entrypoint overridden, named for
 * cleanup. Not `--rm`: with it the CLI waits until the engine has removed the container (~0.3 s
 * on the containerd store, ~0.8 s for three at once) before it hands back what `uname -m`
 * printed; the caller removes it by name instead, off the critical path. `detached`: a service.
 */
export function runArgv(o: ContainerRunOptions, detached = false): string[] {
  const argv = ['run', ...(detached ? ['-d'] : []), '--name', o.name, '--network', o.network ?? 'none', '--platform', formatPlatform(o.platform), '--pull', o.pull ?? 'never'];
  if (o.entrypoint !== undefined) argv.push('--entrypoint', o.entrypoint);
  for (const p of o.publish ?? []) argv.push('-p', `127.0.0.1::${p}`);
  for (const [k, v] of Object.entries(o.labels ?? {})) argv.push('--label', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.env ?? {})) argv.push('-e', `${k}=${v}`);
  argv.push(o.image, ...o.args);
  return argv;
}

/** `docker buildx version` prints "github.com/docker/buildx v0.12.1 542e5d8". */
export function parseBuildxVersion(text: string): string | undefined {
  return /\bv?(\d+\.\d+\.\d+[^\s]*)/.exec(text)?.[1];
}

/** `docker buildx inspect` prints "Driver:        docker-container" for the current builder. */
export function parseBuildxDriver(text: string): string | undefined {
  return /^Driver:\s+(\S+)/m.exec(text)?.[1];
}

/**
 * Where buildx keeps its builders: $BUILDX_CONFIG, else `buildx` in the docker CLI's config folder
 * ($DOCKER_CONFIG, else ~/.docker).
 */
export function buildxConfigDir(env: NodeJS.ProcessEnv): string {
  return env.BUILDX_CONFIG || join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'buildx');
}

/**
 * Can buildx's current builder only be a context's own, the `docker` driver? So when no builder
 * was ever made with `buildx create` (its `instances` folder is empty or absent) and BUILDX_BUILDER
 * names none: every builder buildx could then pick — `current`, a default, a context's name — is
 * a context's, and its driver is `docker`. Anything else is asked of `buildx inspect`.
 */
export function onlyContextBuilders(env: NodeJS.ProcessEnv): boolean {
  if (env.BUILDX_BUILDER) return false;
  try {
    return readdirSync(join(buildxConfigDir(env), 'instances')).filter((n) => !n.startsWith('.')).length === 0;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** `docker push` prints "<tag>: digest: sha256:… size: N" when done. */
export function parsePushOutput(text: string): { digest: string; size: number } | undefined {
  const m = /digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(text);
  return m ? { digest: m[1]!, size: Number(m[2]) } : undefined;
}

/**
 * The line of `docker push` output that says a failure may pass (network, 5xx, 429, timeouts, and
 * a manifest refused for a blob the push itself had just sent: the registry is behind its own
 * writes, see RegistryClient.putManifest); undefined when it will not.
 */
export function transientPushFailure(output: string): string | undefined {
  const line = output
    .split('\n')
    .reverse()
    .find((l) => /connection refused|connection reset|broken pipe|EOF|i\/o timeout|TLS handshake timeout|timeout exceeded|no such host|Service Unavailable|Bad Gateway|Gateway Timeout|Internal Server Error|TOOMANYREQUESTS|toomanyrequests|Too Many Requests|received unexpected HTTP status: (5\d\d|429)|status code (5\d\d|429)|\b(50[0234]|429)\b|blob unknown to registry/i.test(l));
  if (!line) return undefined;
  if (/denied|unauthorized|authentication required|manifest invalid|name unknown/i.test(output)) return undefined;
  return line.trim().slice(0, 200);
}

/** The label on every container a run starts, so a later run can sweep what a killed one left. */
export const RUN_LABEL = 'crossbuild.run';

/** How long crossbuild's own `docker push` retries may take in all. */
export const PUSH_RETRY_BUDGET_MS = 30_000;

/** A failed `docker push`, with its output for the retry decision. */
class PushFailure extends Error {
  constructor(
    readonly output: string,
    readonly error: CommandError,
  ) {
    super(error.message);
  }
}

export interface ImageInspect {
  readonly id: string;
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
}

/** Parse `docker image inspect --format '{{json .}}'`. */
export function parseImageInspect(json: string): ImageInspect {
  const j = JSON.parse(json) as {
    Id: string;
    Os: string;
    Architecture: string;
    Variant?: string;
    Config?: { Entrypoint?: string[] | null; Cmd?: string[] | null } | null;
  };
  return {
    id: j.Id,
    os: j.Os,
    architecture: j.Architecture,
    ...(j.Variant ? { variant: j.Variant } : {}),
    entrypoint: j.Config?.Entrypoint ?? [],
    cmd: j.Config?.Cmd ?? [],
  };
}

/** Parse `docker version --format '{{json .}}'`. */
export function parseVersion(json: string, cli: string): EngineInfo {
  const j = JSON.parse(json) as { Client?: { Version?: string }; Server?: { Version?: string; ApiVersion?: string; Os?: string; Arch?: string } | null };
  return {
    cli,
    clientVersion: j.Client?.Version ?? 'unknown',
    serverVersion: j.Server?.Version ?? '',
    apiVersion: j.Server?.ApiVersion ?? '',
    os: j.Server?.Os ?? '',
    arch: j.Server?.Arch ?? '',
  };
}

/**
 * Removals of throwaway containers still under way, on any engine handle of this process. An
 * image is untagged only once they are done (the engine refuses to remove an image a container
 * still uses), and a command ends only once they are: see settleRemovals().
 */
const removals = new Set<Promise<unknown>>();

/** Wait for every throwaway container this process started to be gone. */
export async function settleRemovals(): Promise<void> {
  while (removals.size > 0) await Promise.all([...removals]);
}

export class Docker {
  /** Commands and containers in flight, so an interrupted run can stop and remove them all. */
  private readonly running = new Set<ResultPromise>();
  private readonly containers = new Set<string>();
  /** Of those, the ones whose removal runs in the background (see runOnce). */
  private readonly removing = new Set<string>();
  private aborted = false;
  /** Fires on abort(): waits between push attempts end at once. */
  private readonly stopped = new AbortController();

  /**
   * `env` reaches every docker command (a private DOCKER_CONFIG for --username credentials);
   * `globalArgs` select the engine (`--host URL` or `--context NAME` for a build node).
   */
  constructor(
    readonly cli = dockerCli(),
    readonly env: Readonly<Record<string, string>> = {},
    readonly globalArgs: readonly string[] = [],
    /** The run that owns what this engine handle starts: its containers carry `crossbuild.run=<id>`. */
    readonly runId?: string,
  ) {}

  /** Start a docker command, tracked until it ends (a buildx one through the builder's plugin, where it can: see buildxDirect). */
  private spawn(argv: readonly string[], opts: Options & { cli?: string; builder?: Builder } = {}): ResultPromise {
    const { cli, env, builder, ...rest } = opts;
    const direct = builder ? buildxDirect(builder, this.globalArgs, argv) : undefined;
    const [file, args, own] = direct ? [direct.file, direct.args, direct.env] : [cli ?? this.cli, [...this.globalArgs, ...argv], {}];
    const sub = execa(file, args, { reject: false, ...rest, env: { ...this.env, ...(env as Record<string, string> | undefined), ...own } });
    this.running.add(sub);
    const forget = () => this.running.delete(sub);
    sub.then(forget, forget);
    return sub;
  }

  /** Run a docker command to its end; its output as text. Never rejects. */
  private async exec(argv: readonly string[], opts: Options & { cli?: string; builder?: Builder } = {}): Promise<Ran> {
    const r = await this.spawn(argv, opts);
    return {
      exitCode: r.exitCode,
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
      all: String(r.all ?? ''),
      timedOut: r.timedOut === true,
      ...(r.signal ? { signal: r.signal } : {}),
      ...((r as { code?: string }).code ? { code: (r as { code?: string }).code! } : {}),
    };
  }

  /**
   * Stop everything this run started: builds and pushes get SIGTERM, verification containers are
   * killed and removed by name (a QEMU process inside may not heed a signal). Idempotent.
   */
  async abort(): Promise<void> {
    this.aborted = true;
    this.stopped.abort();
    for (const sub of this.running) sub.kill('SIGTERM');
    // Those already being removed are waited for, not asked twice (the engine would answer the
    // second request "removal already in progress", and the first could take that for done).
    const names = [...this.containers].filter((n) => !this.removing.has(n));
    if (names.length > 0) await this.forceRemove(names);
    await settleRemovals();
  }

  /**
   * `docker rm -f -v`: the containers and their anonymous volumes (an image's VOLUME), as `--rm`
   * would. Not among the commands abort() stops: it is what abort() itself runs.
   */
  private forceRemove(names: readonly string[]): Promise<unknown> {
    return execa(this.cli, [...this.globalArgs, 'rm', '-f', '-v', ...names], { reject: false, timeout: 30_000, env: { ...this.env } });
  }

  /** Does the engine have a `bridge` network (the default of RUN steps and containers)? */
  async hasBridgeNetwork(): Promise<boolean | undefined> {
    const r = await this.exec(['network', 'ls', '--format', '{{.Name}}'], { timeout: 20_000 });
    if (r.exitCode !== 0) return undefined;
    return r.stdout.split('\n').some((n) => n.trim() === 'bridge');
  }

  /** The engine's CPU count (`docker info`), for how many builds it takes at once. */
  async cpus(): Promise<number | undefined> {
    const r = await this.exec(['info', '--format', '{{.NCPU}}'], { timeout: 20_000 });
    const n = Number(r.stdout.trim());
    return r.exitCode === 0 && Number.isInteger(n) && n > 0 ? n : undefined;
  }

  /** The same CLI and environment on another engine. */
  on(globalArgs: readonly string[]): Docker {
    return new Docker(this.cli, this.env, globalArgs, this.runId);
  }

  /** `docker info`'s DockerRootDir, where images and build cache live. */
  async rootDir(): Promise<string | undefined> {
    const r = await this.exec(['info', '--format', '{{.DockerRootDir}}'], { timeout: 20_000 });
    return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
  }

  /**
   * Run a build with the builder's CLI and environment, streaming its output line by line (whole
   * lines, so a scrubber sees each secret whole). Resolves with the exit code; never rejects for a
   * failed build.
   */
  async build(builder: Builder, argv: readonly string[], onLine: (line: string) => void): Promise<{ exitCode: number | undefined; signal?: string; spawnError?: string }> {
    const sub = this.spawn(argv, { cli: builder.cli, builder, env: { ...builder.env }, all: true, buffer: false, timeout: 6 * 60 * 60_000 });
    let partial = '';
    sub.all?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    });
    const r = await sub;
    if (partial) onLine(partial);
    // A spawn that never started (E2BIG: arguments too long; ENOENT: no such CLI): the caller says why.
    const code = (r as { code?: string }).code;
    return { exitCode: r.exitCode, ...(r.signal ? { signal: r.signal } : {}), ...(code && r.exitCode === undefined ? { spawnError: code } : {}) };
  }

  /**
   * A short build whose whole output is wanted (the `uname -m` probe): its input on stdin, a time
   * limit (SIGTERM, on which buildx cancels the solve; SIGKILL 5 s later). abort() stops it too.
   */
  async buildOnce(builder: Builder, argv: readonly string[], input: string, timeoutMs: number): Promise<Ran> {
    return this.exec(argv, { cli: builder.cli, builder, env: { ...builder.env }, input, all: true, timeout: timeoutMs, forceKillAfterDelay: 5_000 });
  }

  async engine(): Promise<EngineInfo> {
    // Both asked at once: each is a CLI start (~0.1 s) on the way to the first build.
    const store = this.imageStore();
    const r = await execa(this.cli, [...this.globalArgs, 'version', '--format', '{{json .}}'], { reject: false, timeout: 20_000, env: { ...this.env } });
    const text = r.stdout.trim();
    const info = text.startsWith('{') ? parseVersion(text, this.cli) : undefined;
    if (!info || !info.serverVersion || r.exitCode !== 0) {
      throw new CrossbuildError(`the Docker engine is not reachable (${this.cli}: ${(r.stderr || r.message || '').split('\n')[0]})`, {
        hint: 'start it: sudo dockerd --bridge=none --iptables=false & (or bash ci/provision.sh)',
      });
    }
    const imageStore = await store;
    return imageStore ? { ...info, imageStore } : info;
  }

  private info?: Promise<string | undefined>;

  /** `docker info` as JSON, asked once for the engine and its builders alike. */
  private infoJson(): Promise<string | undefined> {
    this.info ??= this.exec(['info', '--format', '{{json .}}'], { timeout: 20_000 }).then((r) => (r.exitCode === 0 ? r.stdout.trim() : undefined));
    return this.info;
  }

  /** The engine's image store. */
  private async imageStore(): Promise<string | undefined> {
    const j = await this.infoJson();
    return j === undefined ? undefined : parseImageStore(j);
  }

  /**
   * Which builders this host can use, best first. With `upTo`, the search stops at the first
   * builder of that kind (buildx by default: the best there is), sparing a second CLI's probes.
   */
  async builders(upTo?: Builder['kind']): Promise<Builder[]> {
    const clis = await candidateClis(this.cli);
    const out: Builder[] = [];
    // Without a builder of buildx's own making, the driver is `docker` and the plugin (a ~0.3–0.45 s
    // start) is not asked; else it is asked while `docker info` runs, the slowest answer.
    const implied = onlyContextBuilders({ ...process.env, ...this.env }) ? { stdout: 'Driver: docker' } : undefined;
    const inspect = (cli: string) => implied ?? execa(cli, [...this.globalArgs, 'buildx', 'inspect'], { reject: false, timeout: 20_000, env: { ...this.env } });
    const first = inspect(this.cli);
    const imageStore = await this.imageStore();
    for (const cli of clis) {
      if (upTo !== undefined && out.some((b) => b.kind === upTo)) break;
      let plugin: string | undefined;
      // This CLI's `docker info` already said its version and buildx's (CLIs ≥ 23).
      const known = cli === this.cli ? parseClientInfo((await this.infoJson()) ?? '') : {};
      let clientVersion: string;
      let buildxVersion: string | undefined;
      let driverOut: string;
      if (known.clientVersion !== undefined) {
        clientVersion = known.clientVersion;
        buildxVersion = known.buildxVersion;
        plugin = process.env.CROSSBUILD_BUILDX_DIRECT === 'on' || !isWrapper(cli) ? known.buildxPath : undefined;
        driverOut = buildxVersion !== undefined ? (await first).stdout : '';
      } else {
        // The three questions to a CLI at once (an inspect without buildx just fails).
        const [v, bx, ins] = await Promise.all([
          execa(cli, [...this.globalArgs, 'version', '--format', '{{.Client.Version}}'], { reject: false, timeout: 20_000, env: { ...this.env } }),
          execa(cli, ['buildx', 'version'], { reject: false, timeout: 20_000 }),
          cli === this.cli ? first : inspect(cli),
        ]);
        clientVersion = v.stdout.trim();
        if (v.exitCode !== 0 && !clientVersion) continue;
        buildxVersion = bx.exitCode === 0 ? (parseBuildxVersion(bx.stdout) ?? 'unknown') : undefined;
        driverOut = ins.stdout;
      }
      if (buildxVersion !== undefined) {
        const driver = parseBuildxDriver(driverOut);
        out.push({ kind: 'buildx', cli, env: {}, clientVersion, buildxVersion, ...(driver ? { driver } : {}), ...(imageStore ? { imageStore } : {}), ...(plugin ? { plugin } : {}) });
      }
      // Before 23.0 the CLI drives the engine's built-in BuildKit itself; later CLIs need buildx for it.
      const major = Number.parseInt(clientVersion, 10);
      if (buildxVersion === undefined && Number.isFinite(major) && major < 23) out.push({ kind: 'buildkit', cli, env: { DOCKER_BUILDKIT: '1' }, clientVersion, ...(imageStore ? { imageStore } : {}) });
    }
    out.push({ kind: 'classic', cli: this.cli, env: { DOCKER_BUILDKIT: '0' }, clientVersion: '', ...(imageStore ? { imageStore } : {}) });
    return out;
  }

  /** Pull one platform of a reference; false (with the reason) when it is not there. */
  async pull(ref: string, platform: Platform): Promise<{ ok: boolean; reason: string }> {
    const r = await this.exec(['pull', '--quiet', '--platform', formatPlatform(platform), ref], { timeout: 30 * 60_000 });
    return { ok: r.exitCode === 0, reason: r.exitCode === 0 ? '' : (r.stderr.trim().split('\n').pop() ?? `exit ${r.exitCode}`) };
  }

  /** `docker tag` (one image, another name for it). */
  async tag(source: string, target: string): Promise<void> {
    const argv = ['tag', source, target];
    const r = await this.exec(argv, { timeout: 30_000 });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, r.stderr, `docker tag ${source} ${target} failed`);
  }

  /**
   * Which engine this handle reaches, as the CLI picks it: --host/--context, else DOCKER_HOST,
   * else DOCKER_CONTEXT, else the CLI's current context. What a killed run left is swept only
   * through the engine it ran on.
   */
  endpoint(): string {
    if (this.globalArgs.length > 0) return this.globalArgs.join(' ');
    const env = { ...process.env, ...this.env };
    return env.DOCKER_HOST ? `--host ${env.DOCKER_HOST}` : env.DOCKER_CONTEXT ? `--context ${env.DOCKER_CONTEXT}` : 'current context';
  }

  /**
   * `repo:tag` of the local images whose name matches one of `patterns` (Docker's reference filter:
   * `*` within one path component), or of every image without them; for sweeping a killed run's
   * names. Filtered, because the containerd store lists all of its images slowly (20 s for 2,900 on
   * Docker 28.5, 50 ms filtered). Throws when the engine does not answer.
   */
  async imageNames(patterns?: readonly string[]): Promise<string[]> {
    const argv = ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', ...(patterns ?? []).flatMap((p) => ['--filter', `reference=${p}`])];
    const r = await this.exec(argv, { timeout: 60_000 });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, r.stderr, 'docker image ls failed');
    return r.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
  }

  /** Remove the containers with this label value, whatever their state; throws when the engine does not answer. */
  async removeLabelled(label: string, value: string): Promise<number> {
    const argv = ['ps', '-aq', '--filter', `label=${label}=${value}`];
    const r = await this.exec(argv, { timeout: 30_000 });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, r.stderr, 'docker ps failed');
    const ids = r.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await this.exec(['rm', '-f', '-v', ...ids], { timeout: 60_000 });
    return ids.length;
  }

  /** Remove a name; the image goes too only when no other name holds it. Quiet when already gone. */
  async untag(ref: string): Promise<void> {
    const argv = ['image', 'rm', '--no-prune', ref];
    const r = await this.exec(argv, { timeout: 60_000 });
    // A throwaway container not yet removed keeps its image: once it is gone, again.
    if (r.exitCode !== 0 && /container/i.test(r.stderr)) {
      await settleRemovals();
      await this.exec(argv, { timeout: 60_000 });
    }
  }

  async inspect(ref: string): Promise<ImageInspect> {
    const argv = ['image', 'inspect', '--format', '{{json .}}', ref];
    const r = await this.exec(argv, { timeout: 30_000 });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, String(r.stderr), `docker image inspect ${ref} failed`);
    return parseImageInspect(r.stdout);
  }

  /**
   * `docker push`, again after a transient failure (connection refused or reset, a 5xx or 429, a
   * timeout): up to `attempts` in all, 2 s then 4 s apart, each retry told to `onRetry`. Layers
   * already pushed are not sent twice (the engine asks the registry first).
   */
  async push(ref: string, opts: { attempts?: number; onRetry?: (attempt: number, reason: string, delayMs: number) => void } = {}): Promise<{ digest: string; size: number }> {
    const argv = ['push', ref];
    let tries = 0;
    // dockerd retries each layer itself: our attempts are few and bounded in time (a persistent
    // fault is named within the budget, not after 3 × dockerd's own minute of retries).
    const policy: RetryPolicy = { attempts: opts.attempts ?? 3, baseMs: 2000, maxDelayMs: 10_000, budgetMs: PUSH_RETRY_BUDGET_MS };
    return retry(
      async () => {
        tries++;
        const r = await this.exec(argv, { all: true, timeout: 30 * 60_000 });
        if (r.exitCode === 0) {
          const parsed = parsePushOutput(r.stdout);
          if (!parsed) throw new CrossbuildError(`docker push ${ref} printed no digest`);
          return parsed;
        }
        throw new PushFailure(r.all || r.stderr, new CommandError([this.cli, ...argv], r.exitCode, r.all || r.stderr, `docker push ${ref} failed`));
      },
      {
        policy,
        signal: this.stopped.signal,
        what: `docker push ${ref}`,
        decide: (e) => {
          const reason = e instanceof PushFailure ? transientPushFailure(e.output) : undefined;
          return reason ? { reason } : undefined;
        },
        onRetry: (n) => opts.onRetry?.(n.attempt, n.reason, n.delayMs),
      },
    ).catch((e: unknown) => {
      if (e instanceof PushFailure) {
        const err = e.error;
        throw tries > 1 ? new CommandError(err.command, err.commandExitCode, err.stderr, `docker push ${ref} failed (after ${tries} attempts)`) : err;
      }
      throw e;
    });
  }

  /**
   * Start a container in the background, tracked like every other (removed on abort). The caller
   * removes it when done; a failed start says Docker's own words.
   */
  async start(o: Omit<ContainerRunOptions, 'name'>): Promise<Service> {
    const name = `crossbuild-test-${randomBytes(6).toString('hex')}`;
    this.containers.add(name);
    const argv = runArgv({ ...o, name, ...(this.runId ? { labels: { [RUN_LABEL]: this.runId } } : {}) }, true);
    const started = await this.exec(argv, { timeout: 120_000 });
    const remove = async () => {
      await this.exec(['rm', '-f', '-v', name], { timeout: 30_000 });
      this.containers.delete(name);
    };
    if (started.exitCode !== 0) {
      await remove();
      throw new CommandError([this.cli, ...argv], started.exitCode, started.stderr, `docker run -d ${o.image} failed`);
    }
    return {
      name,
      hostPort: async (port) => {
        const r = await this.exec(['port', name, `${port}/tcp`], { timeout: 20_000 });
        const m = /:(\d+)\s*$/m.exec(r.stdout);
        return m ? Number(m[1]) : undefined;
      },
      running: async () => (await this.exec(['inspect', '-f', '{{.State.Running}}', name], { timeout: 20_000 })).stdout.trim() === 'true',
      logs: async () => {
        const r = await this.exec(['logs', '--tail', '40', name], { all: true, timeout: 20_000 });
        return r.all || `${r.stdout}${r.stderr}`;
      },
      remove,
    };
  }

  /**
   * Run a throwaway container with a time limit. QEMU can hang: on timeout the container is
   * killed and removed; it is removed in every case.
   */
  async runOnce(o: Omit<ContainerRunOptions, 'name'>, timeoutMs: number, prefix = 'crossbuild-verify'): Promise<{ exitCode: number | undefined; stdout: string; stderr: string; timedOut: boolean }> {
    const name = `${prefix}-${randomBytes(6).toString('hex')}`;
    const argv = runArgv({ ...o, name, ...(this.runId ? { labels: { [RUN_LABEL]: this.runId } } : {}) });
    // A container that ran to its end (whatever its exit code) is removed in the background: the
    // answer is not held up by the removal. A killed one is removed before the answer, and looked
    // for again.
    let ended = false;
    let killed = false;
    try {
      this.containers.add(name);
      const r = await this.exec(argv, { timeout: timeoutMs, forceKillAfterDelay: 2_000 });
      ended = !r.timedOut && r.signal === undefined && !this.aborted;
      killed = r.timedOut;
      return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), timedOut: r.timedOut === true };
    } finally {
      const remove = () => this.forceRemove([name]);
      if (ended) {
        // Still named in `containers` until gone; an abort meanwhile waits for this removal.
        this.removing.add(name);
        const gone: Promise<unknown> = remove().finally(() => {
          removals.delete(gone);
          this.removing.delete(name);
          this.containers.delete(name);
        });
        removals.add(gone);
      } else {
        await remove();
        if (this.aborted || killed) {
          // Killed mid-create (or a busy engine still tearing down a timed-out one), it may still be there just after: look again.
          await new Promise((r) => setTimeout(r, 1000));
          await remove();
        }
        this.containers.delete(name);
      }
    }
  }
}

/** A container started in the background (a service under test): find its port, read its logs, remove it. */
export interface Service {
  readonly name: string;
  /** The host port a container port is published on (bridge), or undefined. */
  hostPort(port: number): Promise<number | undefined>;
  running(): Promise<boolean>;
  logs(): Promise<string>;
  remove(): Promise<void>;
}

async function candidateClis(preferred: string): Promise<string[]> {
  const { realpath } = await import('node:fs/promises');
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of [preferred, '/usr/local/bin/docker', '/usr/bin/docker']) {
    let real: string | undefined;
    for (const path of c.includes('/') ? [c] : (process.env.PATH ?? '').split(':').map((d) => `${d}/${c}`)) {
      try {
        real = await realpath(path);
        break;
      } catch {
        // not here
      }
    }
    if (real === undefined) continue;
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(c);
  }
  return out;
}
