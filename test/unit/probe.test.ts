import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExportWatcher, parseProbe, probeArgv, probeDockerfile } from '../../src/docker/probe.js';
import { runtimeFromProbe } from '../../src/verify/checks.js';
import { parsePlatform } from '../../src/platform/platform.js';
import { probeCandidates } from '../../src/pipeline/solve.js';
import type { PlatformTarget } from '../../src/config/config.js';
import { layoutImages, layoutTop } from '../../src/registry/layout.js';

// Plain progress of the probe as buildx 0.29 on Docker 28.5 (containerd store) printed it on this
// machine; the digests are those the engine resolved each FROM to.
const fx = (f: string) => readFileSync(join(__dirname, '..', 'fixtures', 'docker', f), 'utf8');
const THREE = 'sha256:72034e82322ea4370ca7165f7c0aaa76e34317269bfee17062491c9dd971f074';
const HANG = 'sha256:b7b5a156b7a120ee36432b36252c5c6ef0cff681e673403fe790663cbae9cfb5';
const MIXED = 'sha256:570939b56bb22632d0ed9f7327ced0000affb1c81f34583b7b297ccb37286c1a';
const NO_UNAME = 'sha256:247168803ed1e118047fad0aed6662073a16bf63eaacf26fa8890ba78ee2bd22';

describe('the uname -m probe', () => {
  it('is one cache-only build of every platform, the Dockerfile on stdin, labelled with the run', () => {
    expect(probeArgv(['linux/amd64', 'linux/arm/v7'], '0123abcd')).toEqual([
      'buildx', 'build', '--no-cache', '--network', 'none', '--platform', 'linux/amd64,linux/arm/v7',
      '--progress', 'plain', '--output', 'type=cacheonly', '--label', 'crossbuild.run=0123abcd', '-',
    ]);
    expect(probeDockerfile('localhost:5000/app:v1-cb-0123abcd')).toBe('FROM localhost:5000/app:v1-cb-0123abcd\nRUN ["uname","-m"]\n');
    expect(() => probeDockerfile('a\nRUN evil')).toThrow(/not an image reference/);
  });

  it("reads each platform's machine, its step's output interleaved with the others' (arm64's header comes twice)", () => {
    expect(fx('probe/three-platforms.txt')).toMatch(/#9 \[linux\/arm64 2\/2\] RUN \["uname","-m"\]\n#9 \.\.\.\n[^]*#9 \[linux\/arm64 2\/2\] RUN \["uname","-m"\]\n#9 [\d.]+ aarch64/);
    const a = parseProbe(fx('probe/three-platforms.txt'), ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], THREE, false);
    expect(Object.fromEntries(a)).toEqual({
      'linux/amd64': { kind: 'machine', machine: 'x86_64' },
      'linux/arm64': { kind: 'machine', machine: 'aarch64' },
      'linux/arm/v7': { kind: 'machine', machine: 'armv7l' },
    });
  });

  it('answers nothing for an image other than the one proven', () => {
    const other = 'sha256:' + '0'.repeat(64);
    const a = parseProbe(fx('probe/three-platforms.txt'), ['linux/amd64', 'linux/arm64'], other, false);
    expect(a.get('linux/amd64')).toMatchObject({ kind: 'unknown', why: expect.stringContaining(`not ${other}`) });
    expect(a.get('linux/arm64')!.kind).toBe('unknown');
  });

  it('at its time limit: the platform that answered keeps its answer, the one still running is unfinished', () => {
    const a = parseProbe(fx('probe/amd64-answers-arm64-hangs-timed-out.txt'), ['linux/amd64', 'linux/arm64'], MIXED, true);
    expect(a.get('linux/amd64')).toEqual({ kind: 'machine', machine: 'x86_64' });
    expect(a.get('linux/arm64')).toEqual({ kind: 'unfinished' });
    // The same output from a probe that was not stopped by its limit is no verdict on arm64.
    expect(parseProbe(fx('probe/amd64-answers-arm64-hangs-timed-out.txt'), ['linux/amd64', 'linux/arm64'], MIXED, false).get('linux/arm64')!.kind).toBe('unknown');
  });

  it('a build of one platform names none in its steps', () => {
    expect(parseProbe(fx('probe/hang-one-timed-out.txt'), ['linux/arm64'], HANG, true).get('linux/arm64')).toEqual({ kind: 'unfinished' });
  });

  it('a step that had not started at the time limit is no hang: docker run asks', () => {
    const cut = fx('probe/hang-one-timed-out.txt').split('\n#5 ')[0]!;
    expect(cut).toMatch(/FROM localhost:5000\/probe-hang:1@sha256:/);
    expect(parseProbe(cut, ['linux/arm64'], HANG, true).get('linux/arm64')).toMatchObject({ kind: 'unknown', why: 'its RUN is not in the output' });
  });

  it('a step that failed (no uname in the image) is left to docker run, which says why', () => {
    const a = parseProbe(fx('probe/no-uname.txt'), ['linux/amd64', 'linux/arm64'], NO_UNAME, false);
    expect(a.get('linux/amd64')).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/^ERROR: process "uname -m" did not complete successfully/) });
    expect(a.get('linux/arm64')!.kind).toBe('unknown');
  });

  it('becomes the runtime check: pass, fail, hang, or nothing (docker run asks)', () => {
    const arm64 = parsePlatform('linux/arm64');
    expect(runtimeFromProbe({ kind: 'machine', machine: 'aarch64' }, arm64, { timeoutMs: 60_000 })).toEqual({ check: 'runtime', verdict: 'pass', evidence: 'uname -m printed aarch64' });
    expect(runtimeFromProbe({ kind: 'machine', machine: 'x86_64' }, arm64, { timeoutMs: 60_000 })).toEqual({ check: 'runtime', verdict: 'fail', evidence: 'uname -m printed x86_64, expected aarch64' });
    expect(runtimeFromProbe({ kind: 'machine', machine: 'armv8l' }, arm64, { uname: 'armv8l', timeoutMs: 60_000 })!.verdict).toBe('pass');
    expect(runtimeFromProbe({ kind: 'unfinished' }, arm64, { timeoutMs: 5_000 })!.evidence).toMatch(/^uname -m did not finish within 5s/);
    expect(runtimeFromProbe({ kind: 'unknown', why: 'x' }, arm64, { timeoutMs: 5_000 })).toBeUndefined();
    expect(runtimeFromProbe(undefined, arm64, { timeoutMs: 5_000 })).toBeUndefined();
  });
});

describe("what the solve's image exporter wrote into the engine", () => {
  // A solve of two platforms with provenance, exported to the engine and as an OCI layout.
  const progress = fx('buildx-progress-solve-cold-28.5.txt');

  it('is the index named with the run\'s own name (the layout\'s own index differs)', () => {
    const w = new ExportWatcher();
    for (const l of progress.split('\n')) w.feed(l);
    expect(w.exported('localhost:5000/dbg/cache30945:v1-cb-4849cc0e')).toBe('sha256:9a53f51fd66f506a392f0fc978d72444bafb09afcd839b501bade07c4d194c5e');
    expect(w.exported('localhost:5000/dbg/cache30945:other')).toBeUndefined();
  });

  it('is read as well where the OCI export ran first and the image exporter listed no image manifest', () => {
    // Captured on a CI run: the image exporter's step names the config and the list, not the image.
    const text = fx('buildx-progress-solve-oci-first-28.5.txt');
    expect(text).not.toMatch(/^#7 exporting manifest sha256:/m);
    const w = new ExportWatcher();
    for (const l of text.split('\n')) w.feed(l);
    expect(w.exported('localhost:5000/it-e3feb34a/killed:multiarch-cb-ddcd6953')).toBe('sha256:d9599a32a49e3acbc6562a2261e922dac73e01f851d9ce807953b83e09fb5f01');
  });
});

describe('which platforms of a solve the probe asks', () => {
  // The images of a layout buildx 0.29 wrote on this machine (linux/amd64 and linux/arm64).
  const layout = join(__dirname, '..', 'fixtures', 'buildx-layout-0.29');
  const plan = (p: string, uname?: string) => ({ platform: p, target: { platform: parsePlatform(p), ...(uname ? { uname } : {}) } as PlatformTarget });

  it('those with an image in the solve, without ONBUILD triggers or QEMU_CPU', async () => {
    const images = await layoutImages(layout, await layoutTop(layout));
    const arm64 = images[1]!.digest;
    const plans = [plan('linux/amd64'), plan('linux/arm64')];
    expect(probeCandidates(plans, images)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(probeCandidates([...plans, plan('linux/s390x')], images)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(probeCandidates(plans, images.map((i) => (i.digest === arm64 ? { ...i, onBuild: true } : i)))).toEqual(['linux/amd64']);
    // arm/v6 needs QEMU_CPU, set only by docker run -e; with its own expected machine it needs none.
    const v6 = { ...images[1]!, digest: 'sha256:' + '6'.repeat(64), platform: { os: 'linux', architecture: 'arm', variant: 'v6' }, config: { os: 'linux', architecture: 'arm', variant: 'v6' } };
    expect(probeCandidates([plan('linux/arm/v6')], [v6])).toEqual([]);
    expect(probeCandidates([plan('linux/arm/v6', 'armv7l')], [v6])).toEqual(['linux/arm/v6']);
  });
});
