// The Docker CLI, one module: argv builders (getCommand style), output parsers (pure, tested
// against captured output) and runners that carry command, exit code and stderr on failure.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { CommandError, CrossbuildError } from '../errors.js';
import { formatPlatform, type Platform } from '../platform/platform.js';

export type BuilderKind = 'buildx' | 'buildkit' | 'classic';

export interface Builder {
  readonly kind: BuilderKind;
  /** The docker CLI binary that drives it. */
  readonly cli: string;
  readonly env: Readonly<Record<string, string>>;
  readonly clientVersion: string;
}

export interface EngineInfo {
  readonly cli: string;
  readonly clientVersion: string;
  readonly serverVersion: string;
  readonly apiVersion: string;
  readonly os: string;
  readonly arch: string;
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
  /** RUN steps' network: "none" unless the Dockerfile needs more (no bridge exists here). */
  readonly network?: string;
}

/** argv for `docker build` with this builder. */
export function buildArgv(kind: BuilderKind, o: BuildOptions): string[] {
  const argv = kind === 'buildx' ? ['buildx', 'build', '--load'] : ['build'];
  argv.push('--platform', formatPlatform(o.platform), '-t', o.tag, '-f', o.dockerfile);
  if (o.pull !== false) argv.push('--pull');
  if (o.noCache) argv.push('--no-cache');
  argv.push('--network', o.network ?? 'none');
  if (kind !== 'classic') argv.push('--progress=plain');
  if (o.target) argv.push('--target', o.target);
  for (const [k, v] of Object.entries(o.buildArgs ?? {})) argv.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.labels ?? {})) argv.push('--label', `${k}=${v}`);
  argv.push(o.context);
  return argv;
}

export interface RunOptions {
  readonly image: string;
  readonly platform: Platform;
  readonly entrypoint: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly name: string;
  readonly network?: 'none' | 'host';
  /** Local images (run) or pulled by digest (verify). */
  readonly pull?: 'never' | 'missing';
}

/** argv for a throwaway verification container: no network, entrypoint overridden, named for cleanup. */
export function runArgv(o: RunOptions): string[] {
  const argv = ['run', '--rm', '--name', o.name, '--network', o.network ?? 'none', '--platform', formatPlatform(o.platform), '--pull', o.pull ?? 'never', '--entrypoint', o.entrypoint];
  for (const [k, v] of Object.entries(o.env ?? {})) argv.push('-e', `${k}=${v}`);
  argv.push(o.image, ...o.args);
  return argv;
}

/** `docker push` prints "<tag>: digest: sha256:… size: N" when done. */
export function parsePushOutput(text: string): { digest: string; size: number } | undefined {
  const m = /digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(text);
  return m ? { digest: m[1]!, size: Number(m[2]) } : undefined;
}

export interface ImageInspect {
  readonly id: string;
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly repoDigests: readonly string[];
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
    RepoDigests?: string[] | null;
    Config?: { Entrypoint?: string[] | null; Cmd?: string[] | null } | null;
  };
  return {
    id: j.Id,
    os: j.Os,
    architecture: j.Architecture,
    ...(j.Variant ? { variant: j.Variant } : {}),
    repoDigests: j.RepoDigests ?? [],
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

export class Docker {
  constructor(readonly cli = 'docker') {}

  async engine(): Promise<EngineInfo> {
    const r = await execa(this.cli, ['version', '--format', '{{json .}}'], { reject: false, timeout: 20_000 });
    const text = r.stdout.trim();
    const info = text.startsWith('{') ? parseVersion(text, this.cli) : undefined;
    if (!info || !info.serverVersion || r.exitCode !== 0) {
      throw new CrossbuildError(`the Docker engine is not reachable (${this.cli}: ${(r.stderr || r.message || '').split('\n')[0]})`, {
        hint: 'start it: sudo dockerd --bridge=none --iptables=false & (or bash ci/provision.sh)',
      });
    }
    return info;
  }

  /** Which builders this host can use, best first. */
  async builders(): Promise<Builder[]> {
    const clis = await candidateClis(this.cli);
    const out: Builder[] = [];
    for (const cli of clis) {
      const v = await execa(cli, ['version', '--format', '{{.Client.Version}}'], { reject: false, timeout: 20_000 });
      const clientVersion = v.stdout.trim();
      if (v.exitCode !== 0 && !clientVersion) continue;
      const bx = await execa(cli, ['buildx', 'version'], { reject: false, timeout: 20_000 });
      if (bx.exitCode === 0) out.push({ kind: 'buildx', cli, env: {}, clientVersion });
      // Before 23.0 the CLI drives the engine's built-in BuildKit itself; later CLIs need buildx for it.
      const major = Number.parseInt(clientVersion, 10);
      if (bx.exitCode !== 0 && Number.isFinite(major) && major < 23) out.push({ kind: 'buildkit', cli, env: { DOCKER_BUILDKIT: '1' }, clientVersion });
    }
    out.push({ kind: 'classic', cli: this.cli, env: { DOCKER_BUILDKIT: '0' }, clientVersion: '' });
    return out;
  }

  async inspect(ref: string): Promise<ImageInspect> {
    const argv = ['image', 'inspect', '--format', '{{json .}}', ref];
    const r = await execa(this.cli, argv, { reject: false, timeout: 30_000 });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, r.stderr, `docker image inspect ${ref} failed`);
    return parseImageInspect(r.stdout);
  }

  async push(ref: string, log?: (line: string) => void): Promise<{ digest: string; size: number }> {
    const argv = ['push', ref];
    const sub = execa(this.cli, argv, { reject: false, all: true, timeout: 30 * 60_000 });
    if (log) sub.all?.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach(log));
    const r = await sub;
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, r.all ?? r.stderr, `docker push ${ref} failed`);
    const parsed = parsePushOutput(r.stdout);
    if (!parsed) throw new CrossbuildError(`docker push ${ref} printed no digest`);
    return parsed;
  }

  /**
   * Run a throwaway container with a time limit. QEMU can hang: on timeout the container is
   * killed and removed; it is removed in every case.
   */
  async runOnce(o: Omit<RunOptions, 'name'>, timeoutMs: number): Promise<{ exitCode: number | undefined; stdout: string; stderr: string; timedOut: boolean }> {
    const name = `crossbuild-verify-${randomBytes(6).toString('hex')}`;
    const argv = runArgv({ ...o, name });
    try {
      const r = await execa(this.cli, argv, { reject: false, timeout: timeoutMs, forceKillAfterDelay: 2_000 });
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut === true };
    } finally {
      await execa(this.cli, ['rm', '-f', name], { reject: false, timeout: 30_000 });
    }
  }
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
