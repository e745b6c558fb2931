// A buildx user's habits, on the engine under test with the real registry and QEMU: a run from
// flags alone in a folder with only a Dockerfile, `crossbuild init`, --metadata-file read as
// build-push-action reads it, --progress rawjson, a wrong registry port caught before any build,
// and a closed pipe that is not a failure and leaves nothing behind.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, DOCKER, dockerRun, REGISTRY, requireInfrastructure, ROOT, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { freePort } from '../helpers/registries.js';
import { attestationEntries, imageEntries, platformOf, sha, type Index } from '../helpers/oci.js';

beforeAll(requireInfrastructure);

const PLATFORMS = 'linux/amd64,linux/arm/v7,linux/arm64';
const listOf = async (ref: string) => JSON.parse((await skopeoRaw(ref))!.toString()) as Index;

/** A folder with example/busybox's Dockerfile and script, and no platforms.json. */
function bareFolder(): string {
  const dir = scratchDir('cb-habits-');
  for (const f of ['Dockerfile', 'nodeinfo.cgi']) cpSync(join(ROOT, 'example', 'busybox', f), join(dir, f));
  return dir;
}

/** The run-owned tags and labelled containers a run of `repo` left on the engine. */
async function leftovers(repo: string): Promise<string[]> {
  const images = (await execa(DOCKER, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo])).stdout.split('\n').filter((l) => /-cb-[0-9a-f]{8}$/.test(l));
  const containers = (await execa(DOCKER, ['ps', '-a', '--filter', 'label=crossbuild.run', '--format', '{{.Image}} {{.Names}}'])).stdout.split('\n').filter((l) => l.startsWith(repo));
  return [...images, ...containers];
}

describe('flags alone, as docker buildx build takes them', () => {
  it('a folder with only a Dockerfile: -t ×2 and --platform write the same list as the platforms.json run; metadata as build-push-action reads it', async () => {
    const dir = bareFolder();
    const repo = uniqueRepo('flags');
    const meta = join(dir, 'metadata.json');
    const r = await cli(['run', '-t', `${repo}:v1`, '-t', `${repo}:latest`, '--platform', PLATFORMS, '--network', 'none', '--push', '--metadata-file', meta, '--progress', 'rawjson'], { cwd: dir });
    expect(r.stderr).not.toMatch(/platforms\.json/);
    expect(r.exitCode).toBe(0);
    // --progress rawjson: one JSON event a line, each platform seen to its end.
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { scope: string; state: string; message: string });
    for (const p of PLATFORMS.split(',')) expect(events.some((e) => e.scope === p && e.state === 'done'), p).toBe(true);
    expect(events.some((e) => e.scope === 'preflight' && /push to .* allowed/.test(e.message))).toBe(true);

    const flagsList = await listOf(`${repo}:v1`);
    expect(sha(Buffer.from(JSON.stringify(await listOf(`${repo}:latest`))))).toBe(sha(Buffer.from(JSON.stringify(flagsList))));
    // Suffixes derived as the README names them.
    for (const s of ['amd64', 'arm32', 'arm64']) expect(await skopeoRaw(`${repo}:v1-${s}`), s).toBeDefined();

    // The same build from example/busybox's platforms.json: the same list, entry by entry.
    const fileRepo = uniqueRepo('file');
    const f = await cli(['run', '--config', join(ROOT, 'example', 'busybox', 'platforms.json'), '--image', fileRepo]);
    expect(f.exitCode).toBe(0);
    const fileList = await listOf(`${fileRepo}:multiarch`);
    const shape = (l: Index) => ({ mediaType: l.mediaType, images: imageEntries(l.manifests).map((m) => [platformOf(m.platform), m.mediaType]), attestations: attestationEntries(l.manifests).length });
    expect(shape(flagsList)).toEqual(shape(fileList));
    expect(imageEntries(flagsList.manifests).map((m) => platformOf(m.platform))).toEqual(PLATFORMS.split(','));
    expect(await dockerRun(`${repo}:v1`, 'linux/arm/v7', ['uname', '-m'])).toBe('armv7l');

    // build-push-action's metadata output: `digest` is containerimage.digest, names are image.name split at commas.
    const m = JSON.parse(readFileSync(meta, 'utf8')) as Record<string, unknown>;
    const listDigest = r.stdout.match(/^Digest: (sha256:[0-9a-f]{64})/m)![1];
    expect(m['containerimage.digest']).toBe(listDigest);
    expect(sha(Buffer.from((await skopeoRaw(`${repo}:v1`))!))).toBe(listDigest);
    expect(String(m['image.name']).split(',')).toEqual([`${repo}:v1`, `${repo}:latest`]);
    expect(await leftovers(repo)).toEqual([]);
  });

  it('the dry run shows the derived suffixes and that the config is the flags; without an image it says what to give (exit 2)', async () => {
    const dir = bareFolder();
    const repo = uniqueRepo('flags-dry');
    const d = await cli(['run', '.', '-f', 'Dockerfile', '-t', `${repo}:v1`, '--platform', 'linux/arm64,linux/s390x', '--network', 'none', '--dry-run'], { cwd: dir });
    expect(d.exitCode).toBe(0);
    expect(d.stdout).toMatch(/config: +the flags alone \(no platforms\.json\)/);
    expect(d.stdout).toMatch(new RegExp(`linux/s390x → ${repo}:v1-s390x \\(suffix derived\\)`));
    expect(d.stdout).toMatch(new RegExp(`registry: +${REGISTRY}: push to .* allowed`));
    const none = await cli(['run', '--platform', 'linux/arm64'], { cwd: dir });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no platforms\.json here and no image named\n {2}hint: give -t REGISTRY\/REPOSITORY:TAG/);
    const missing = await cli(['run', 'nothere', '-t', `${repo}:v1`, '--dry-run'], { cwd: dir });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/^crossbuild: CONTEXT: the build context .*nothere does not exist/m);
  });

  it('crossbuild init writes a commented platforms.json the next run reads; it does not overwrite one', async () => {
    const dir = bareFolder();
    const repo = uniqueRepo('init');
    const i = await cli(['init', '-t', `${repo}:2.0`, '--platform', 'linux/amd64,linux/arm64'], { cwd: dir });
    expect(i.exitCode).toBe(0);
    const text = readFileSync(join(dir, 'platforms.json'), 'utf8');
    expect(text).toMatch(/^\/\/ /m);
    expect(text).toMatch(/"\$schema": ".*schema\/platforms\.schema\.json"/);
    expect(existsSync(join(dir, JSON.parse(text.replace(/^\s*\/\/.*$/gm, '')).$schema as string))).toBe(true);
    const d = await cli(['run', '--dry-run', '--network', 'none'], { cwd: dir });
    expect(d.exitCode).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`config: +platforms\\.json`));
    expect(d.stdout).toMatch(new RegExp(`linux/arm64 → ${repo}:2\\.0-arm64 \\(uname`));
    const again = await cli(['init', '-t', `${repo}:3.0`], { cwd: dir });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/platforms\.json exists; give --force/);
  });
});

describe('checks before the slow part', () => {
  it('a wrong registry port fails in preflight, before any build: exit 1, the port named closed, no TLS advice', async () => {
    const dir = bareFolder();
    const port = await freePort();
    const started = Date.now();
    const r = await cli(['run', '-t', `localhost:${port}/app:v1`, '--platform', PLATFORMS, '--network', 'none'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stderr).toMatch(new RegExp(`hint: nothing listens on localhost:${port}: is the registry running, and is the port right\\?`));
    expect(r.stderr).not.toMatch(/plain-http|\] building/);
    expect(r.stderr).toMatch(/^- +linux\/arm64 +not built: the run stopped before it/m);
  });

  it('an unknown flag is one line and the suggestion, not the whole help', async () => {
    const r = await cli(['run', '--pussh']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["error: unknown option '--pussh'", '(Did you mean --push?)', '(crossbuild COMMAND --help lists the options)']);
  });
});

describe('robust output', () => {
  it('a terminal that reports 0 columns (script -c, CI wrappers) gets plain lines, not one character a line', async () => {
    const dir = bareFolder();
    const repo = uniqueRepo('zero-cols');
    const cmd = `node ${JSON.stringify(join(ROOT, 'bin', 'crossbuild.js'))} run -t ${repo}:v1 --platform linux/amd64,linux/arm64 --network none --no-push`;
    // No CI variable: on a real terminal this would be the live view.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CI' && k !== 'GITHUB_ACTIONS'));
    const r = await execa('script', ['-q', '-e', '-c', cmd, '/dev/null'], { cwd: dir, reject: false, env, extendEnv: false });
    expect(r.exitCode, r.stdout).toBe(0);
    const lines = r.stdout.split(/\r?\n/).filter((l) => l.trim() !== '');
    expect(lines.some((l) => /\[linux\/arm64\] building/.test(l))).toBe(true);
    expect(lines.filter((l) => l.trim().length === 1)).toEqual([]);
  });

  it('a closed pipe (`run … 2>&1 | head -1`) is not a failure: the run finishes, exits 0, and leaves no tag or container', async () => {
    const dir = bareFolder();
    const repo = uniqueRepo('pipe');
    const script = `set -o pipefail; node ${JSON.stringify(join(ROOT, 'bin', 'crossbuild.js'))} run -t ${repo}:v1 --platform ${PLATFORMS} --network none --progress plain 2>&1 | head -1; echo "rc=\${PIPESTATUS[0]}"`;
    const r = await execa('bash', ['-c', script], { cwd: dir, reject: false, env: { CI: 'true' } });
    expect(r.stdout.split('\n')).toHaveLength(2);
    expect(r.stdout).toMatch(/\nrc=0$/);
    expect(await skopeoRaw(`${repo}:v1`)).toBeDefined();
    expect(await leftovers(repo)).toEqual([]);
  });
});
