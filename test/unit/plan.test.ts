// Pure decisions the run takes once: which platforms need a QEMU handler here, the list's kind,
// `-t` values, echoes made printable, and plain mode's heartbeat.
import { describe, expect, it, vi } from 'vitest';
import { splitTags } from '../../src/cli/commands/run.js';
import { listKindFor } from '../../src/oci/list.js';
import { needsHandler, planPlatform, planSolve } from '../../src/pipeline/plan.js';
import { solveArgv } from '../../src/docker/build.js';
import type { Builder } from '../../src/docker/builder.js';
import type { BuildRequest } from '../../src/pipeline/types.js';
import { heartbeat } from '../../src/pipeline/progress.js';
import { parsePlatform } from '../../src/platform/platform.js';
import { printable } from '../../src/util/text.js';
import { validateConfig, type BuildConfig, type PlatformTarget } from '../../src/config/config.js';
import { noBridgeProblem } from '../../src/pipeline/run.js';
import { UsageError } from '../../src/errors.js';
import { buildProgram } from '../../src/cli/main.js';
import type { Command } from 'commander';

const target = (platform: string, node?: string): PlatformTarget => ({ platform: parsePlatform(platform), spec: platform, suffix: 'x', buildArgs: {}, dockerfile: '/D', network: 'none', tests: [], ...(node ? { node } : {}) });

describe('QEMU handlers: the plan decides, for the dry run and the run alike', () => {
  it('local emulated platforms need one; native ones, remote nodes and platforms native to a local-socket node do not', () => {
    expect(needsHandler(target('linux/arm64'), undefined)).toBe(true);
    expect(needsHandler(target('linux/amd64'), undefined)).toBe(false);
    expect(needsHandler(target('linux/arm64', 'ssh://ci@arm'), undefined)).toBe(false);
    expect(needsHandler(target('linux/arm64', 'arm-context'), undefined)).toBe(false);
    expect(needsHandler(target('linux/arm64', 'unix:///run/arm.sock'), { os: 'linux', arch: 'arm64' })).toBe(false);
    expect(needsHandler(target('linux/arm64', 'unix:///run/x86.sock'), { os: 'linux', arch: 'amd64' })).toBe(true);
  });
});

describe('the list kind', () => {
  it('as asked, else an OCI index when any platform brought attestations (as buildx), else a Docker list', () => {
    expect(listKindFor('docker', [{ attestations: [1] }])).toBe('docker');
    expect(listKindFor(undefined, [{ attestations: [] }, { attestations: [1] }])).toBe('oci');
    expect(listKindFor(undefined, [{}, { attestations: [] }])).toBe('docker');
  });
});

describe('-t as buildx takes it', () => {
  it('tags, or whole references naming one repository', () => {
    expect(splitTags(['v1', 'latest', 'v1'])).toEqual({ tags: ['v1', 'latest'] });
    expect(splitTags(['localhost:5000/app:v1', 'localhost:5000/app'])).toEqual({ image: 'localhost:5000/app', tags: ['v1', 'latest'] });
    expect(() => splitTags(['r/a:v1', 'r/b:v1'])).toThrow(/every -t must name one repository/);
    expect(() => splitTags(['-bad'])).toThrow(/--tag -bad: not a valid tag/);
  });
});

describe('echoes', () => {
  it('control characters escaped, long values cut with the rest counted', () => {
    expect(printable('a\u001b[31mb\u0007')).toBe('a\\u001b[31mb\\u0007');
    expect(printable('x'.repeat(10), { limit: 4 })).toBe('xxxx… 6 more bytes');
    expect(printable('one\ntwo\u001b', { multiline: true })).toBe('one\ntwo\\u001b');
  });
});

describe('the heartbeat', () => {
  it('a line per platform still at work every interval, none once it is done', () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const lines: string[] = [];
      const hb = heartbeat((l) => lines.push(l), 30_000, () => now);
      hb.onEvent({ at: new Date(0), scope: 'linux/arm64', state: 'building', message: '' });
      hb.onEvent({ at: new Date(0), scope: 'preflight', state: 'started', message: '' });
      now = 30_000;
      vi.advanceTimersByTime(30_000);
      expect(lines).toEqual(['1970-01-01T00:00:30.000Z [linux/arm64] still building (30s)\n']);
      hb.onEvent({ at: new Date(0), scope: 'linux/arm64', state: 'done', message: '' });
      vi.advanceTimersByTime(30_000);
      expect(lines).toHaveLength(1);
      hb.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a build network the engine cannot give', () => {
  const cfg = (platforms: PlatformTarget[]) => ({ platforms }) as unknown as BuildConfig;
  const dflt = (p: string, node?: string): PlatformTarget => ({ ...target(p, node), network: 'default' });
  it('BuildKit on an engine without a bridge: refused once (exit 2) for every platform whose Dockerfile has RUN steps', () => {
    const r = noBridgeProblem(cfg([dflt('linux/amd64'), dflt('linux/arm64'), target('linux/arm/v7')]), false, 'buildx', () => true);
    expect(r.refuse).toBeInstanceOf(UsageError);
    expect(r.refuse!.exitCode).toBe(2);
    expect(r.refuse!.message).toMatch(/no bridge network .*RUN steps of linux\/amd64, linux\/arm64 on the default network/);
    expect(r.refuse!.hint).toMatch(/--network host/);
    expect(noBridgeProblem(cfg([dflt('linux/amd64')]), false, 'buildkit', () => true).refuse).toBeDefined();
  });
  it('not refused: an engine with a bridge, a Dockerfile without RUN, a node platform, the classic builder (a warning)', () => {
    expect(noBridgeProblem(cfg([dflt('linux/amd64')]), true, 'buildx', () => true)).toEqual({});
    expect(noBridgeProblem(cfg([dflt('linux/amd64')]), false, 'buildx', () => false)).toEqual({});
    expect(noBridgeProblem(cfg([dflt('linux/arm64', 'arm-node')]), false, 'buildx', () => true)).toEqual({});
    const classic = noBridgeProblem(cfg([dflt('linux/amd64')]), false, 'classic', () => true);
    expect(classic.refuse).toBeUndefined();
    expect(classic.warning).toMatch(/RUN steps of linux\/amd64 get no network/);
  });
});

describe('help', () => {
  it('every command\'s help fits 80 columns off a terminal, descriptions aligned', () => {
    const program = buildProgram();
    const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
    for (const c of all(program)) {
      const text = c.helpInformation();
      const long = text.split('\n').filter((l) => l.length > 80);
      expect(long, c.name()).toEqual([]);
    }
    const run = program.commands.find((c) => c.name() === 'run')!.helpInformation();
    expect(run).toMatch(/^ {2}--secret <id=ID,src=FILE\|env=VAR>\n {34}build secret/m);
  });
});

describe('flags that take one value', () => {
  it('merge --tag given twice is a usage error naming both, not the last one silently kept', async () => {
    const program = buildProgram();
    const errors: string[] = [];
    program.commands.find((c) => c.name() === 'merge')!.configureOutput({ writeErr: (s) => errors.push(s), outputError: (s, w) => w(s) });
    await expect(program.parseAsync(['merge', '--tag', 'a', '--tag', 'b'], { from: 'user' })).rejects.toMatchObject({ code: 'commander.invalidArgument' });
    expect(errors.join('')).toMatch(/option '--tag <tag>' argument 'b' is invalid\. given twice \(a, b\); --tag takes one value here/);
  });
});

describe('one buildx solve: which platforms share it, and its argv', () => {
  const bx = (o: Partial<Builder> = {}): Builder => ({ kind: 'buildx', cli: 'docker', env: {}, clientVersion: '28.5.2', buildxVersion: '0.29.1', driver: 'docker', imageStore: 'containerd', ...o });
  const request = (raw: Record<string, unknown>, cache: BuildRequest['cache'] = { from: [], to: [] }): BuildRequest => ({ config: validateConfig({ image: 'localhost:5000/app', tag: 'v1', ...raw }, ''), extraBuildArgs: {}, noCache: false, cache });
  const three = { platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64' }, { platform: 'linux/arm/v7', suffix: 'arm32' }] };
  const plansOf = (r: BuildRequest, b: Builder) => r.config.platforms.map((t) => planPlatform(r, t, 'r1', b));

  it("takes every local platform that differs only in its platform, on buildx's docker driver with the containerd store", () => {
    const r = request(three);
    const s = planSolve(r, plansOf(r, bx()), bx(), true, 'r1', {});
    expect(s?.plans.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64', 'linux/arm/v7']);
    const argv = solveArgv({ ...s!.build, layoutDir: '/tmp/l', metadataFile: '/tmp/m.json' });
    expect(argv.slice(0, 11)).toEqual(['buildx', 'build', '--platform', 'linux/amd64,linux/arm64,linux/arm/v7', '--output', 'type=image,name=localhost:5000/app:v1-cb-r1', '--output', 'type=oci,dest=/tmp/l,tar=false', '--metadata-file', '/tmp/m.json', '--provenance=mode=min']);
    expect(argv).not.toContain('--load');
    expect(argv).not.toContain('--push');
    // buildx's default provenance, asked by name; not where the user turned it off or chose their own.
    const off = planSolve(r, plansOf(r, bx()), bx(), true, 'r1', { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' });
    expect(solveArgv(off!.build).join(' ')).not.toMatch(/provenance/);
    const own = request({ ...three, provenance: 'mode=max' });
    expect(solveArgv(planSolve(own, plansOf(own, bx()), bx(), true, 'r1', {})!.build).filter((a) => a.startsWith('--provenance'))).toEqual(['--provenance=mode=max']);
  });

  it('keeps one build per platform where it cannot, or was told not to', () => {
    const r = request(three);
    for (const b of [bx({ imageStore: 'overlay2' }), bx({ driver: 'docker-container' }), bx({ buildxVersion: '0.12.1' }), { ...bx(), kind: 'buildkit' as const }]) expect(planSolve(r, plansOf(r, b), b, true, 'r1', {})).toBeUndefined();
    expect(planSolve(r, plansOf(r, bx()), bx(), false, 'r1', {})).toBeUndefined();
    expect(planSolve(r, plansOf(r, bx()), bx(), true, 'r1', { CROSSBUILD_BUILDX_OUTPUT: 'load' })).toBeUndefined();
  });

  it('leaves out build nodes and platforms with a build of their own; one multi-platform cache ref', () => {
    const r = request(
      { platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64', buildArgs: { X: '1' } }, { platform: 'linux/arm/v7', suffix: 'arm32' }, { platform: 'linux/s390x', suffix: 's390x' }, { platform: 'linux/ppc64le', suffix: 'ppc', node: 'ssh://ci@power' }], cache: 'registry' },
    );
    const s = planSolve(r, plansOf(r, bx()), bx(), true, 'r1', {});
    expect(s?.plans.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/s390x']);
    expect(s?.cache).toBe('registry cache localhost:5000/app:buildcache (mode=max)');
    expect(solveArgv(s!.build).join(' ')).toContain('--cache-from type=registry,ref=localhost:5000/app:buildcache --cache-to type=registry,ref=localhost:5000/app:buildcache,mode=max');
  });
});
