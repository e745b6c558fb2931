// A layer the verifier reads as Docker does: an arm64 busybox stored as a sparse file at
// /usr/bin/tool in an amd64 busybox image, written by GNU tar (PAX 0.0, 0.1, 1.0 and old GNU 'S')
// and by hand as Go's archive/tar reads PAX 1.0, pushed to the local registry. `crossbuild verify`
// must fail naming /usr/bin/tool; the engine under test must show that file, ELF header first, at
// its real name and run it as arm64 — or, for old GNU sparse, refuse the layer as the verifier says.
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, DOCKER, REGISTRY, requireInfrastructure, ROOT, uniqueRepo } from '../helpers/env.js';
import { sha } from '../helpers/oci.js';
import { END, sparse10 } from '../helpers/tar-sparse.mjs';

interface Report {
  ok: boolean;
  platforms: { platform: string; verdict: string; files?: { filesScanned: number; elfChecked: number; mismatches: number; excused: number }; checks: { check: string; verdict: string; evidence: string }[] }[];
}

const ACCEPT = 'application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
const busybox = readFileSync(join(ROOT, '.cache', 'seed', 'rootfs-arm64', 'bin', 'busybox'));
const pulled: string[] = [];
let dir: string;

async function json(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, { headers: { Accept: ACCEPT } });
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return (await r.json()) as Record<string, unknown>;
}

async function pushBlob(repo: string, bytes: Buffer): Promise<string> {
  const digest = sha(bytes);
  const start = await fetch(`http://${REGISTRY}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const url = new URL(start.headers.get('location')!, `http://${REGISTRY}`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', body: new Uint8Array(bytes) });
  if (put.status !== 201) throw new Error(`upload to ${repo}: ${put.status}`);
  return digest;
}

/** The amd64 busybox of the local registry with `tar` as a layer on top, pushed as `ref` (an OCI manifest). */
async function pushOverBusybox(ref: string, tar: Buffer): Promise<void> {
  const repo = ref.slice(REGISTRY.length + 1, ref.lastIndexOf(':'));
  const index = (await json(`http://${REGISTRY}/v2/busybox/manifests/latest`)) as { manifests: { digest: string; platform: { architecture: string; variant?: string } }[] };
  const entry = index.manifests.find((m) => m.platform.architecture === 'amd64')!;
  const base = (await json(`http://${REGISTRY}/v2/busybox/manifests/${entry.digest}`)) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  const config = (await json(`http://${REGISTRY}/v2/busybox/blobs/${base.config.digest}`)) as { rootfs: { diff_ids: string[] }; history?: unknown };
  for (const l of base.layers) {
    const m = await fetch(`http://${REGISTRY}/v2/${repo}/blobs/uploads/?mount=${l.digest}&from=busybox`, { method: 'POST' });
    if (m.status !== 201) throw new Error(`mount ${l.digest}: ${m.status}`);
  }
  const gz = gzipSync(tar);
  const cfg = Buffer.from(JSON.stringify({ ...config, history: undefined, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, sha(tar)] } }));
  const [layer, cfgDigest] = [await pushBlob(repo, gz), await pushBlob(repo, cfg)];
  const gzip = 'application/vnd.oci.image.layer.v1.tar+gzip';
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: cfg.length },
    layers: [...base.layers.map((l) => ({ mediaType: gzip, digest: l.digest, size: l.size })), { mediaType: gzip, digest: layer, size: gz.length }],
  };
  const put = await fetch(`http://${REGISTRY}/v2/${repo}/manifests/${ref.slice(ref.lastIndexOf(':') + 1)}`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'content-type': manifest.mediaType } });
  if (put.status !== 201) throw new Error(`manifest ${ref}: ${put.status} ${await put.text()}`);
}

/** busybox's 4 KiB blocks of zeros as holes: GNU tar then stores it sparse. */
function sparseCopy(path: string): { offset: number; data: Buffer }[] {
  const regions: { offset: number; data: Buffer }[] = [];
  for (let o = 0; o < busybox.length; o += 4096) {
    const block = busybox.subarray(o, o + 4096);
    if (block.every((b) => b === 0)) continue;
    const last = regions.at(-1);
    if (last && last.offset + last.data.length === o) last.data = Buffer.concat([last.data, block]);
    else regions.push({ offset: o, data: block });
  }
  const fd = openSync(path, 'w', 0o755);
  ftruncateSync(fd, busybox.length);
  for (const r of regions) writeSync(fd, r.data, 0, r.data.length, r.offset);
  closeSync(fd);
  return regions;
}

let regions: { offset: number; data: Buffer }[];

beforeAll(async () => {
  await requireInfrastructure();
  dir = scratchDir('cb-verify-tar-');
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
  regions = sparseCopy(join(dir, 'usr', 'bin', 'tool'));
  expect(regions.length).toBeGreaterThan(1); // busybox has a hole to store
});

afterAll(async () => {
  for (const ref of pulled) await execa(DOCKER, ['rmi', '--force', ref], { reject: false });
});

const layers: { name: string; make: () => Buffer; stored: (tar: Buffer) => boolean; refused?: true }[] = [
  { name: 'GNU tar PAX 0.0', make: () => gnuTar('--format=pax', '--sparse-version=0.0'), stored: (t) => t.includes('GNU.sparse.offset=') },
  { name: 'GNU tar PAX 0.1', make: () => gnuTar('--format=pax', '--sparse-version=0.1'), stored: (t) => t.includes('GNU.sparse.map=') },
  { name: 'GNU tar PAX 1.0', make: () => gnuTar('--format=pax', '--sparse-version=1.0'), stored: (t) => t.includes('GNU.sparse.major=1') && t.includes('GNUSparseFile.') },
  { name: 'GNU tar old GNU sparse', make: () => gnuTar('--format=gnu'), stored: (t) => t[156] === 0x53, refused: true },
  { name: 'PAX 1.0 records as Go reads them', make: () => Buffer.concat([sparse10('usr/bin/tool', busybox.length, regions), END]), stored: (t) => t.includes('GNUSparseFile.0/tool') },
];

function gnuTar(...args: string[]): Buffer {
  return execFileSync('tar', ['--sparse', ...args, '--owner=0', '--group=0', '-C', dir, '-cf', '-', 'usr/bin/tool'], { maxBuffer: 64 * 1024 * 1024 });
}

describe.each(layers)('an arm64 /usr/bin/tool in an amd64 image, stored as $name', ({ make, stored, refused }) => {
  let ref: string;
  beforeAll(async () => {
    const tar = make();
    expect(stored(tar)).toBe(true);
    expect(tar.length).toBeLessThan(busybox.length); // the hole is not in the archive
    ref = `${uniqueRepo('sparse')}:v1`;
    await pushOverBusybox(ref, tar);
  });

  it('fails `crossbuild verify --static --platforms linux/amd64`, naming /usr/bin/tool', async () => {
    const r = await cli(['verify', ref, '--static', '--platforms', 'linux/amd64', '--json']);
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout) as Report;
    const p = report.platforms[0]!;
    expect(p.checks.find((c) => c.check === 'metadata')?.verdict).toBe('pass');
    const b = p.checks.find((c) => c.check === 'binaries')!;
    expect(b.verdict).toBe('fail');
    expect(b.evidence).toContain('1 of 2 ELF files are not linux/amd64: /usr/bin/tool is ELF64 LSB AArch64');
    expect(p.files).toMatchObject({ elfChecked: 2, mismatches: 1, excused: 0 });
    if (refused) expect(b.evidence).toContain("/usr/bin/tool is an old GNU sparse file (typeflag 'S'), which containerd and moby refuse to extract");
    const text = await cli(['verify', ref, '--static', '--platforms', 'linux/amd64']);
    expect(text.stdout).toMatch(/files +\d+ scanned, 2 ELF checked, 1 mismatched, 0 excused/);
  });

  it(refused ? 'is refused by the engine under test, as the warning says' : 'is what the engine under test extracts and runs: the arm64 ELF at /usr/bin/tool', async () => {
    const run = await execa(DOCKER, ['run', '--rm', '--pull', 'always', '--platform', 'linux/amd64', '--network', 'none', ref, 'sh', '-c', 'head -c 20 /usr/bin/tool | od -c | head -1; ls /usr/bin | grep -c GNUSparseFile; ln -s /usr/bin/tool /tmp/uname && /tmp/uname -m'], { reject: false, timeout: 180_000 });
    pulled.push(ref);
    if (refused) {
      expect(run.exitCode).not.toBe(0);
      expect(run.stderr).toContain('unhandled tar header type 83');
      return;
    }
    expect(run.stderr).not.toMatch(/exec format error/);
    const [od, sparseNames, machine] = run.stdout.trim().split('\n');
    expect(od).toMatch(/^0000000 +177 +E +L +F +002 +001 +001/);
    expect(sparseNames).toBe('0');
    // busybox, called as uname: the file Docker extracted runs as arm64 (under QEMU).
    expect(machine).toBe('aarch64');
  });
});
