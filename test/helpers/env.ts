// What integration tests share: the CLI as a user runs it, the local registry, and tools outside
// crossbuild (skopeo, docker) to check what it did.
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { execa, type Options } from 'execa';

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

/** `docker run --platform P` of a tag, pulling it fresh: what a device would get. */
export async function dockerRun(ref: string, platform: string, cmd: readonly string[]): Promise<string> {
  const r = await execa('docker', ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', platform, ref, ...cmd], { reject: false, timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`docker run --platform ${platform} ${ref} failed: ${r.stderr}`);
  return String(r.stdout).trim();
}

export async function requireInfrastructure(): Promise<void> {
  const d = await execa('docker', ['info'], { reject: false, timeout: 20_000 });
  if (d.exitCode !== 0) throw new Error('the Docker engine is not running: run `bash ci/provision.sh` first');
  const r = await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined);
  if (!r?.ok) throw new Error(`no registry answers on ${REGISTRY}: run \`bash ci/provision.sh\` first`);
}
