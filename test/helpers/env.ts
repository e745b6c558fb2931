// What integration tests share: the CLI as a user runs it, the local registry, and tools outside
// crossbuild (skopeo, docker) to check what it did.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa, type Options } from 'execa';
import { engineEnv, scratchDir, TEST_ENGINE } from './engine-setup.js';

export { TEST_ENGINE };

export const ROOT = resolve(__dirname, '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const REGISTRY = process.env.CROSSBUILD_TEST_REGISTRY ?? 'localhost:5000';

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function cli(args: readonly string[], opts: Options = {}): Promise<CliResult> {
  const r = await execa('node', [join(ROOT, 'bin', 'crossbuild.js'), ...args], { reject: false, env: { CI: 'true', ...(opts.env ?? {}) }, ...opts });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function uniqueRepo(name: string): string {
  return `${REGISTRY}/it-${randomBytes(4).toString('hex')}/${name}`;
}

/** The raw manifest bytes as skopeo (not crossbuild) fetches them; undefined when absent. */
export async function skopeoRaw(ref: string): Promise<Buffer | undefined> {
  const r = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { reject: false, encoding: 'buffer' });
  if (r.exitCode !== 0) {
    const err = Buffer.from(r.stderr as Uint8Array).toString();
    if (/manifest unknown|not found|name unknown/i.test(err)) return undefined;
    throw new Error(`skopeo inspect ${ref} failed: ${err}`);
  }
  return Buffer.from(r.stdout as Uint8Array);
}

/** `docker run --platform P` of a tag, pulling it fresh: what a device would get (on the engine `env` names, default the one under test). */
export async function dockerRun(ref: string, platform: string, cmd: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const r = await execa(env.CROSSBUILD_DOCKER ?? DOCKER, ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', platform, ref, ...cmd], { reject: false, timeout: 120_000, env });
  if (r.exitCode !== 0) throw new Error(`docker run --platform ${platform} ${ref} failed: ${r.stderr}`);
  return String(r.stdout).trim();
}

/** The docker CLI of the engine under test (its own, with buildx), as crossbuild picks it. */
export const DOCKER = process.env.CROSSBUILD_DOCKER ?? 'docker';

/** Debian 12's engine 20.10 and its pre-23 CLI, for tests of the engine's BuildKit ('buildkit' builder) and of 20.10 itself. */
export const HOST_ENGINE: Record<string, string> = engineEnv('host');

export async function requireInfrastructure(): Promise<void> {
  const d = await execa(DOCKER, ['info'], { reject: false, timeout: 20_000 });
  if (d.exitCode !== 0) throw new Error(`the Docker engine ${TEST_ENGINE} is not running (${DOCKER} at ${process.env.DOCKER_HOST ?? 'the default socket'}): run \`bash ci/provision.sh\` first`);
  const r = await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined);
  if (!r?.ok) throw new Error(`no registry answers on ${REGISTRY}: run \`bash ci/provision.sh\` first`);
}

/**
 * Build a Dockerfile for one platform and push it, as a user of the engine under test would
 * (buildx where the CLI has it, without attestations; else the engine's BuildKit), for tests of
 * what the verifier makes of images built elsewhere.
 */
export async function buildAndPush(dockerfile: string, platform: string, ref: string, ctx?: string): Promise<void> {
  const { writeFileSync } = await import('node:fs');
  const dir = ctx ?? scratchDir('cb-bctx-');
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  const buildx = (await execa(DOCKER, ['buildx', 'version'], { reject: false })).exitCode === 0;
  const b = buildx
    ? await execa(DOCKER, ['buildx', 'build', '--pull', '--provenance=false', '--platform', platform, '--network', 'none', '-t', ref, '--push', dir], { reject: false })
    : await execa(DOCKER, ['build', '--pull', '--platform', platform, '--network', 'none', '-t', ref, dir], { reject: false, env: { DOCKER_BUILDKIT: '1' } });
  if (b.exitCode !== 0) throw new Error(`docker build ${ref} failed: ${b.stderr}`);
  if (buildx) return;
  const p = await execa(DOCKER, ['push', ref], { reject: false });
  if (p.exitCode !== 0) throw new Error(`docker push ${ref} failed: ${p.stderr}`);
}

/** Pids of `uname -m` probes (docker/probe.ts) of a run still going on this host, found as sweep.ts finds them. */
export function probeProcesses(runId: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes(`crossbuild.run=${runId}`) && argv.includes('type=cacheonly')) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
