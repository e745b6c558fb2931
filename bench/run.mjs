// crossbuild against the tools it replaces, as ratios of medians measured in the same run with
// A and B interleaved (never absolute times: these machines are shared and noisy).
// `npm run bench` → bench/RESULTS.md and bench/results.json.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { startDelayProxy } from './delay-proxy.mjs';
import { startFaultProxy } from '../test/helpers/fault-proxy.mjs';
import { ustarHeader } from '../test/helpers/ustar.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WORK = join(ROOT, 'bench', '.work');
const REG = '127.0.0.1:5000';
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CB = ['node', join(ROOT, 'bin', 'crossbuild.js')];
const started = Date.now();
// BENCH_ONLY=P1,P4 runs a subset (for working on one figure); RESULTS.md is written by full runs only.
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
const want = (id) => !ONLY || ONLY.has(id);
mkdirSync(WORK, { recursive: true });

const log = (m) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${m}\n`);

async function sh(cmd, args, opts = {}) {
  const r = await execa(cmd, args, { reject: false, ...opts });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode}): ${r.stderr || r.stdout}`);
  return r;
}

/** DOCKER_HOST, DOCKER_CONFIG and the CLI of one of ci/engines.sh's engines. */
async function engineEnv(name) {
  const env = {};
  for (const line of (await sh('bash', [join(ROOT, 'ci', 'engines.sh'), 'env', name])).stdout.split('\n')) {
    const x = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (x) env[x[1]] = x[2].replace(/^'(.*)'$/, '$1');
  }
  return env;
}

/** Wall time of an async step, in ms. */
async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One warm-up each, then `runs` interleaved pairs A, B (order alternating); `before` (untimed) ahead of each A. */
async function pair(id, a, b, runs = RUNS, before = async () => {}) {
  log(`${id}: warm-up`);
  await before();
  await a(-1);
  await b(-1);
  const ta = [];
  const tb = [];
  for (let i = 0; i < runs; i++) {
    await before();
    if (i % 2 === 0) {
      ta.push(await timed(() => a(i)));
      tb.push(await timed(() => b(i)));
    } else {
      tb.push(await timed(() => b(i)));
      ta.push(await timed(() => a(i)));
    }
    log(`${id}: run ${i + 1}/${runs}: crossbuild ${ta.at(-1).toFixed(0)} ms, baseline ${tb.at(-1).toFixed(0)} ms`);
  }
  return { a: ta, b: tb };
}

const results = [];
/** The engine a row ran on (set per section; the host's 20.10 unless a section says otherwise). */
let rowEngine = '';
function record(id, what, baseline, target, m, unit = 'ms') {
  const ma = median(m.a);
  const mb = m.b ? median(m.b) : undefined;
  const ratio = mb ? ma / mb : undefined;
  const value = ratio ?? ma;
  const met = target.kind === 'ratio' ? value <= target.max : ma <= target.max;
  results.push({ id, what, baseline, unit, engine: rowEngine, crossbuild: { median: ma, min: Math.min(...m.a), max: Math.max(...m.a), runs: m.a }, ...(m.b ? { base: { median: mb, min: Math.min(...m.b), max: Math.max(...m.b), runs: m.b } } : {}), ratio, target, met });
  log(`${id}: ${ratio !== undefined ? `ratio ${ratio.toFixed(3)}` : `${ma.toFixed(1)} ${unit}`} (target ≤ ${target.max}${target.kind === 'ratio' ? '×' : ` ${unit}`}) ${met ? 'met' : 'MISSED'}`);
}

// ---------------------------------------------------------------------------------------------
log('provisioning (ci/provision.sh)');
await sh('bash', [join(ROOT, 'ci', 'provision.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
if (!existsSync('/usr/bin/time')) await sh('apt-get', ['install', '-y', '-q', 'time']);
const dockerCfg = join(WORK, 'docker-config');
mkdirSync(dockerCfg, { recursive: true });
const engine = (await sh('docker', ['version', '--format', '{{.Server.Version}}'])).stdout.trim();
rowEngine = `Docker ${engine} (host), builder as detected`;
const runId = randomBytes(3).toString('hex');

// P4 first: nothing else is running yet.
if (want('P4')) {
  const m = await pair('P4', () => sh(CB[0], [CB[1], '--version']), () => sh('node', ['-e', '0']), Math.max(RUNS, 15));
  record('P4', '`crossbuild --version`', '`node -e 0`', { kind: 'ratio', max: 2 }, m);
}

// P1: a 6-child list through a proxy adding 25 ms each way.
if (want('P1')) {
  const proxy = await startDelayProxy(REG, 25);
  const children = ['amd64', 'arm32', 'arm32v6', 'arm64', '386', 'ppc64le'].map((s) => `${proxy.addr}/busybox:latest-${s}`);
  const a = async (i) => {
    const target = `${proxy.addr}/bench-p1-${runId}/cb${i + 1}:list`;
    const spec = join(WORK, `p1-${i + 1}.yaml`);
    writeFileSync(spec, `image: ${target}\nmanifests:\n${children.map((c) => `  - image: ${c}\n`).join('')}`);
    await sh(CB[0], [CB[1], 'manifest', 'push', 'from-spec', spec]);
  };
  const b = async (i) => {
    const target = `${proxy.addr}/bench-p1-${runId}/dm${i + 1}:list`;
    const env = { DOCKER_CONFIG: dockerCfg };
    await sh('docker', ['manifest', 'create', '--insecure', target, ...children], { env });
    await sh('docker', ['manifest', 'push', '--insecure', '--purge', target], { env });
  };
  const m = await pair('P1', a, b);
  record('P1', '`crossbuild manifest push from-spec`, 6 children, +25 ms each way (50 ms round trip)', '`docker manifest create` + `docker manifest push`', { kind: 'ratio', max: 0.22 }, m);
  // Sequential round trips: the same push straight to the registry and through the proxy; the
  // difference over the 50 ms round trip is how many requests had to wait for each other.
  const direct = [];
  const delayed = [];
  for (let i = 0; i < RUNS; i++) {
    const spec = join(WORK, `p1-rtt-${i}.yaml`);
    writeFileSync(spec, `image: ${REG}/bench-p1-${runId}/rtt${i}:list\nmanifests:\n${children.map((c) => `  - image: ${c.replace(proxy.addr, REG)}\n`).join('')}`);
    direct.push(await timed(() => sh(CB[0], [CB[1], 'manifest', 'push', 'from-spec', spec])));
    delayed.push(await timed(() => a(200 + i)));
  }
  const rtts = delayed.map((d, i) => (d - direct[i]) / 50);
  record('P1-rtt', 'sequential round trips of that push (children in another repository: read them, mount their blobs beside the configs, write them, write the list and read it back): (time through the 50 ms proxy − time direct) / 50 ms', '—', { kind: 'absolute', max: 3 }, { a: rtts }, 'round trips');
  // The same with the children already in the target repository (nothing to bring over): what is
  // left is reading them (configs for their platforms) and the list's write with its read-back.
  const sameDirect = [];
  const sameDelayed = [];
  for (let i = 0; i < RUNS; i++) {
    for (const [via, out] of [[REG, sameDirect], [proxy.addr, sameDelayed]]) {
      const spec = join(WORK, `p1-same-${i}.yaml`);
      writeFileSync(spec, `image: ${via}/busybox:p1-${runId}-${i}\nmanifests:\n${children.map((c) => `  - image: ${c.replace(proxy.addr, via)}\n`).join('')}`);
      out.push(await timed(() => sh(CB[0], [CB[1], 'manifest', 'push', 'from-spec', spec])));
    }
  }
  record('P1-rtt-same', 'the same count with the children already in the target repository', '—', { kind: 'absolute', max: 3 }, { a: sameDelayed.map((d, i) => (d - sameDirect[i]) / 50) }, 'round trips');
  await proxy.stop();
}

// P2: a 3-platform app image: a base layer of `baseMiB` MiB below, the app binary on top.
// `variant` changes only the top layer: another image with the same base, for the warm rows.
async function appList(name, baseMiB, variant = '', content = () => randomBytes(baseMiB * 1024 * 1024), extraRun = '') {
  const ref = `localhost:5000/bench-p2-${runId}/${name}`;
  const ctx = join(WORK, `p2-base-${baseMiB}-${content.name || 'random'}`);
  mkdirSync(ctx, { recursive: true });
  if (!existsSync(join(ctx, 'data.bin'))) writeFileSync(join(ctx, 'data.bin'), content());
  writeFileSync(
    join(ctx, 'Dockerfile'),
    `FROM localhost:5000/busybox:latest\nCOPY data.bin /usr/share/app/data.bin\n${extraRun ? `RUN mkdir -p /usr/local/bin${extraRun}\n` : ''}RUN mkdir -p /usr/local/bin && cp /bin/busybox /usr/local/bin/app${variant ? ` && echo ${variant} > /etc/variant` : ''}\nENTRYPOINT ["/usr/local/bin/app"]\nCMD ["sh"]\n`,
  );
  writeFileSync(join(ctx, 'platforms.json'), JSON.stringify({ network: 'none', image: ref, tag: 'v1', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm/v7', suffix: 'arm32' }, { platform: 'linux/arm64', suffix: 'arm64' }] }));
  log(`P2: building ${name} (${baseMiB} MiB base${variant ? `, variant ${variant}` : ''}) with crossbuild run`);
  await sh(CB[0], [CB[1], 'run', '--config', join(ctx, 'platforms.json'), '--quiet'], { env: { CI: 'true' } });
  return `${ref}:v1`;
}
const p2platforms = ['linux/amd64', 'linux/arm/v7', 'linux/arm64'];
/**
 * The hand check: per platform `docker run --pull always … uname -m`. Cold: on an engine without
 * the image's layers — Docker 26.1 (ci/engines.sh docker-26), emptied (`image prune -af`) before
 * each platform, so every pull really fetches and extracts them (the host engine keeps the
 * layers of what it built in its build cache); warm: on the host engine that built it, layers
 * local.
 */
const e26 = await engineEnv('docker-26');
const viaDocker = async (ref, keepLayers = false) => {
  for (const p of p2platforms) {
    if (keepLayers) {
      await sh('docker', ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', p, '--entrypoint', 'uname', ref, '-m']);
      continue;
    }
    await sh(e26.CROSSBUILD_DOCKER, ['image', 'prune', '-af'], { env: e26 });
    await sh(e26.CROSSBUILD_DOCKER, ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', p, '--entrypoint', 'uname', ref, '-m'], { env: e26 });
  }
};
/** A layer cache of its own for each timed run: empty (cold), or filled by verifying `fill` first (warm). */
let cacheN = 0;
const freshCache = () => {
  const d = join(WORK, `layer-cache-${runId}-${++cacheN}`);
  rmSync(d, { recursive: true, force: true });
  return d;
};
const staticVerify = (ref, cacheDir = freshCache()) => sh(CB[0], [CB[1], 'verify', '--static', ref, '--platform', p2platforms.join(',')], { env: { CROSSBUILD_LAYER_CACHE: cacheDir } });
/** Cold and warm pairs of one image against the hand check, warm filled by `other` (same base). */
async function coldWarm(id, what, ref, other, targets, keepLayersForWarm = false) {
  const cold = await pair(id, () => staticVerify(ref), () => viaDocker(ref));
  record(id, `${what}, cold (empty layer cache)`, 'per platform: `docker run --pull always --platform P … uname -m` on an engine without the layers (Docker 26.1, emptied before each)', { kind: 'ratio', max: targets.cold }, cold);
  // Warm: the cache filled (untimed) by a verify of another image with the same base.
  let warmDir;
  const warm = await pair(
    `${id}-warm`,
    async () => sh(CB[0], [CB[1], 'verify', '--static', ref, '--platform', p2platforms.join(',')], { env: { CROSSBUILD_LAYER_CACHE: warmDir } }),
    () => viaDocker(ref, keepLayersForWarm),
    RUNS,
    async () => {
      warmDir = freshCache();
      await staticVerify(other, warmDir);
    },
  );
  record(`${id}-warm`, `${what}, warm (layer cache filled by a verify of another image with the same base)`, keepLayersForWarm ? 'per platform: `docker run --pull always --platform P … uname -m` on the engine that built it, layers local' : 'the same hand check (engine without the layers)', { kind: 'ratio', max: targets.warm }, warm);
}
// The P2 rows: crossbuild reads the registry only; the images are built on the host engine, the
// cold hand check runs on Docker 26.1 emptied, the warm one on the host engine.
const p2Engine = () => `verify: registry only; images built on Docker ${engine} (host); cold hand check on Docker 26.1 (emptied), warm on the host's`;
if (want('P2')) {
  rowEngine = p2Engine();
  const app = await appList('app', 24);
  const app2 = await appList('app2', 24, 'two');
  await coldWarm('P2', '`crossbuild verify --static` of a 3-platform app list (24 MiB base layer, app binary on top)', app, app2, { cold: 0.4, warm: 0.15 });
  // How the ratio moves with image size (reported, no target): the 1 MiB busybox seed list,
  // where fixed costs dominate.
  const seedList = `localhost:5000/bench-p2-${runId}/seed:v1`;
  const spec = join(WORK, 'p2-seed.yaml');
  writeFileSync(spec, `image: ${seedList}\nmanifests:\n  - image: localhost:5000/busybox:latest-amd64\n  - image: localhost:5000/busybox:latest-arm32\n  - image: localhost:5000/busybox:latest-arm64\n`);
  await sh(CB[0], [CB[1], 'manifest', 'push', 'from-spec', spec]);
  const mt = await pair('P2-tiny', () => staticVerify(seedList), () => viaDocker(seedList));
  record('P2-tiny', 'the same on the 1 MiB busybox seed list, cold', 'the same', { kind: 'ratio', max: Infinity }, mt);
  // Sequential round trips of the warm verify, what a remote registry charges for it: the same
  // verify straight to the registry and through a proxy adding 25 ms each way.
  const proxy = await startDelayProxy(REG, 25);
  const warmDir = freshCache();
  await staticVerify(app2, warmDir);
  await staticVerify(app, warmDir);
  const warmVerify = (ref) => sh(CB[0], [CB[1], 'verify', '--static', ref, '--platform', p2platforms.join(',')], { env: { CROSSBUILD_LAYER_CACHE: warmDir } });
  const direct = [];
  const delayed = [];
  for (let i = 0; i < RUNS; i++) {
    direct.push(await timed(() => warmVerify(app)));
    delayed.push(await timed(() => warmVerify(app.replace(/^[^/]+/, proxy.addr))));
  }
  record('P2-warm-rtt', 'sequential round trips of the warm verify of P2-warm (the list, then at once a HEAD of each platform\'s manifest kept by digest, its config and a HEAD of each layer): (time through the 50 ms proxy − time direct) / 50 ms', '—', { kind: 'absolute', max: Infinity }, { a: delayed.map((d, i) => (d - direct[i]) / 50) }, 'round trips');
  await proxy.stop();
  await execa('docker', ['rmi', '-f', app, app2, seedList], { reject: false });
}
if (want('P2-large')) {
  rowEngine = p2Engine();
  const large = await appList('large', 192);
  const large2 = await appList('large2', 192, 'two');
  await coldWarm('P2-large', 'the same with a 192 MiB base layer', large, large2, { cold: 0.8, warm: 0.15 });
  await execa('docker', ['rmi', '-f', large, large2], { reject: false });
}
if (want('P2-text')) {
  rowEngine = p2Engine();
  // The independent check's image: a 96 MiB text layer plus 150 ELF files, per platform.
  const text = function text() {
    const line = 'the quick brown fox jumps over the lazy dog 0123456789\n';
    return Buffer.from(line.repeat(Math.ceil((96 * 1024 * 1024) / line.length)).slice(0, 96 * 1024 * 1024));
  };
  const elves = ' && for i in $(seq 150); do cp /bin/busybox /usr/local/bin/elf$i; done';
  const t1 = await appList('text', 96, '', text, elves);
  const t2 = await appList('text2', 96, 'two', text, elves);
  // The text layer and the ELF layer are the base both share (built once, cached); the top layer differs.
  const cold = await pair('P2-text', () => staticVerify(t1), () => viaDocker(t1));
  record('P2-text', '`crossbuild verify --static` of a 3-platform list, each image a 96 MiB text layer and 150 ELF files, cold', 'per platform: `docker run --pull always --platform P … uname -m` on an engine without the layers (Docker 26.1, emptied before each)', { kind: 'ratio', max: 0.15 }, cold);
  let warmDir;
  const warm = await pair('P2-text-warm', () => sh(CB[0], [CB[1], 'verify', '--static', t1, '--platform', p2platforms.join(',')], { env: { CROSSBUILD_LAYER_CACHE: warmDir } }), () => viaDocker(t1, true), RUNS, async () => {
    warmDir = freshCache();
    await staticVerify(t2, warmDir);
  });
  record('P2-text-warm', 'the same, warm (layer cache filled by a verify of another image with the same text layer)', 'per platform: `docker run --pull always --platform P … uname -m` on the engine that built it, layers local', { kind: 'ratio', max: 0.3 }, warm);
  await execa('docker', ['rmi', '-f', t1, t2], { reject: false });
}

rowEngine = `Docker ${engine} (host), builder as detected`;

// P2m: peak RSS of a static verify that must stream a 1 GiB incompressible layer.
if (want('P2m')) {
  const repo = `bench-p2m-${runId}/big`;
  const tgz = join(WORK, 'big-layer.tar.gz');
  log('P2m: generating a 1 GiB random layer');
  const size = 1024 * 1024 * 1024;
  const header = ustarHeader('data/big.bin', size);
  const diff = createHash('sha256');
  const gz = createHash('sha256');
  async function* tarStream() {
    yield header;
    for (let left = size; left > 0; left -= 1 << 20) yield randomBytes(Math.min(left, 1 << 20));
    yield Buffer.alloc(1024);
  }
  const tap = (h) => new Transform({ transform(c, _e, cb) { h.update(c); cb(null, c); } });
  await pipeline(Readable.from(tarStream()), tap(diff), createGzip({ level: 0 }) /* random data: stored blocks, still gzip */, tap(gz), createWriteStream(tgz));
  const layerDigest = `sha256:${gz.digest('hex')}`;
  const diffId = `sha256:${diff.digest('hex')}`;
  const layerSize = statSync(tgz).size;
  log(`P2m: pushing the ${(layerSize / 2 ** 20).toFixed(0)} MiB layer`);
  // The layer goes up with plain HTTP requests (curl), not crossbuild: it is fixture data.
  const loc = (await sh('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-X', 'POST', `http://${REG}/v2/${repo}/blobs/uploads/`])).stdout.match(/^location: (.*)$/im)[1].trim();
  const put = new URL(loc, `http://${REG}`);
  put.searchParams.set('digest', layerDigest);
  await sh('curl', ['-sS', '-f', '-X', 'PUT', '-H', 'content-type: application/octet-stream', '-T', tgz, put.toString()]);
  rmSync(tgz);
  // The busybox base layer from the seed, mounted, so the entrypoint lies below the big layer.
  const base = JSON.parse((await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${REG}/busybox:latest-amd64`])).stdout);
  const baseCfg = JSON.parse((await sh('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${REG}/busybox:latest-amd64`])).stdout);
  await sh('curl', ['-sS', '-f', '-X', 'POST', `http://${REG}/v2/${repo}/blobs/uploads/?mount=${base.layers[0].digest}&from=busybox`]);
  const cfg = Buffer.from(JSON.stringify({ ...baseCfg, rootfs: { type: 'layers', diff_ids: [baseCfg.rootfs.diff_ids[0], diffId] } }));
  const cfgDigest = `sha256:${createHash('sha256').update(cfg).digest('hex')}`;
  const cfgFile = join(WORK, 'big-config.json');
  writeFileSync(cfgFile, cfg);
  const loc2 = (await sh('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-X', 'POST', `http://${REG}/v2/${repo}/blobs/uploads/`])).stdout.match(/^location: (.*)$/im)[1].trim();
  const put2 = new URL(loc2, `http://${REG}`);
  put2.searchParams.set('digest', cfgDigest);
  await sh('curl', ['-sS', '-f', '-X', 'PUT', '-H', 'content-type: application/octet-stream', '-T', cfgFile, put2.toString()]);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: cfgDigest, size: cfg.length }, layers: [base.layers[0], { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layerDigest, size: layerSize }] };
  const manFile = join(WORK, 'big-manifest.json');
  writeFileSync(manFile, JSON.stringify(manifest));
  await sh('curl', ['-sS', '-f', '-X', 'PUT', '-H', 'content-type: application/vnd.docker.distribution.manifest.v2+json', '--data-binary', `@${manFile}`, `http://${REG}/v2/${repo}/manifests/v1`]);
  const rss = [];
  for (let i = 0; i < 3; i++) {
    const r = await sh('/usr/bin/time', ['-f', '%M', CB[0], CB[1], 'verify', '--static', `${REG}/${repo}:v1`, '--json']);
    const kb = Number(r.stderr.trim().split('\n').pop());
    const report = JSON.parse(r.stdout);
    if (!report.ok) throw new Error(`P2m verify did not pass: ${r.stdout}`);
    rss.push(kb / 1024);
    log(`P2m: run ${i + 1}: peak RSS ${(kb / 1024).toFixed(1)} MiB`);
  }
  record('P2m', 'peak RSS of `crossbuild verify --static`, image with a 1 GiB layer', '—', { kind: 'absolute', max: 128 }, { a: rss }, 'MiB');
}

// P3: 3 emulated platforms with a CPU-heavy RUN, --no-cache.
if (want('P3')) {
  const cfgFile = join(ROOT, 'bench', 'p3', 'platforms.json');
  const builder = JSON.parse((await sh(CB[0], [CB[1], 'run', '--config', cfgFile, '--dry-run', '--json'])).stdout).builder;
  const [kind, , cli] = builder.split(' ');
  const env = kind === 'classic' ? { DOCKER_BUILDKIT: '0' } : kind === 'buildkit' ? { DOCKER_BUILDKIT: '1' } : {};
  const platforms = [['linux/arm/v7', 'arm32'], ['linux/arm64', 'arm64'], ['linux/ppc64le', 'ppc64le']];
  const a = (i) => sh(CB[0], [CB[1], 'run', '--config', cfgFile, '--no-cache', '--quiet', '--tag', `cb-${runId}-${i + 1}`], { env: { CI: 'true' } });
  const b = async (i) => {
    const tag = `localhost:5000/bench-p3:loop-${runId}-${i + 1}`;
    for (const [p, s] of platforms) {
      const argv = kind === 'buildx' ? ['buildx', 'build', '--load'] : ['build'];
      await sh(cli, [...argv, '--no-cache', '--pull', '--platform', p, '--network', 'none', '-t', `${tag}-${s}`, join(ROOT, 'bench', 'p3')], { env });
      await sh('docker', ['push', `${tag}-${s}`]);
    }
    const denv = { DOCKER_CONFIG: dockerCfg };
    await sh('docker', ['manifest', 'create', '--insecure', tag, ...platforms.map(([, s]) => `${tag}-${s}`)], { env: denv });
    await sh('docker', ['manifest', 'push', '--insecure', '--purge', tag], { env: denv });
  };
  const m = await pair('P3', a, b);
  record('P3', '`crossbuild run`, 3 emulated platforms, `--no-cache`, CPU-heavy RUN', `sequential loop: \`docker build --platform\` + \`docker push\` each, then \`docker manifest create/push\` (same builder: ${builder})`, { kind: 'ratio', max: 0.75 }, m);
}

// P5: a fresh engine (no build cache, none of the image's tags) with a warm registry cache vs the
// same fresh engine cold, both `crossbuild run --cache registry`: what a new CI runner gains.
async function emptyEngine(repo) {
  const ls = await sh('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo]);
  const refs = ls.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
  if (refs.length > 0) await sh('docker', ['rmi', '-f', ...refs]);
  // The pre-23 CLI prunes the engine's BuildKit records (the 28 CLI without buildx may not).
  await sh(existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker', ['builder', 'prune', '-af']);
}
async function p5(id, what, cfgFile, extra, runs) {
  const repo = `localhost:5000/bench-${id.toLowerCase()}-${runId}`;
  const warmArgs = [CB[1], 'run', '--config', cfgFile, '--image', repo, '--quiet', '--build-arg', 'SALT=warm', ...extra];
  await emptyEngine(repo);
  await sh(CB[0], warmArgs, { env: { CI: 'true' } }); // fills the registry cache
  // The emptying is part of neither figure: each returns the time of the run alone.
  const a = async () => {
    await emptyEngine(repo);
    return timed(() => sh(CB[0], warmArgs, { env: { CI: 'true' } }));
  };
  let cold = 0;
  const b = async () => {
    await emptyEngine(repo);
    cold += 1;
    return timed(() => sh(CB[0], [CB[1], 'run', '--config', cfgFile, '--image', repo, '--tag', `cold-${cold}`, '--quiet', '--build-arg', `SALT=cold-${runId}-${cold}`, ...extra], { env: { CI: 'true' } }));
  };
  const ta = [];
  const tb = [];
  for (let i = 0; i < runs; i++) {
    for (const [fn, into] of i % 2 === 0 ? [[a, ta], [b, tb]] : [[b, tb], [a, ta]]) into.push(await fn());
    log(`${id}: run ${i + 1}/${runs}: warm cache ${ta.at(-1).toFixed(0)} ms, cold ${tb.at(-1).toFixed(0)} ms`);
  }
  record(id, what, 'the same `crossbuild run --cache registry` on the same fresh engine, cold (no cache in the registry)', { kind: 'ratio', max: 0.15 }, { a: ta, b: tb });
}
if (want('P5')) {
  await p5('P5', '`crossbuild run --cache registry`, 3 emulated platforms with a CPU-heavy RUN, fresh engine, warm registry cache', join(ROOT, 'bench', 'p5', 'platforms.json'), [], RUNS);
}
if (want('P5-flask')) {
  // The Flask example: apt-get install under QEMU is most of a cold build. Two runs: a cold one is minutes.
  await p5('P5-flask', 'the same for the Flask example (`apt-get install python3-flask` under QEMU)', join(ROOT, 'platforms.json'), ['--network', 'host', '--cache', 'registry'], Math.min(RUNS, 2));
}

// P6: whole-image static verification (every ELF file, loader and library) of the Flask example's
// 3-platform list, three Debian userlands of ~100 MB each.
if (want('P6')) {
  const repo = `localhost:5000/bench-p6-${runId}`;
  const runCache = freshCache();
  await sh(CB[0], [CB[1], 'run', '--image', repo, '--network', 'host', '--quiet'], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: runCache } });
  // A second run with base and app unchanged: its registry proof per platform, from the report.
  const reportFile = join(WORK, `p6-run-${runId}.json`);
  await sh(CB[0], [CB[1], 'run', '--image', repo, '--network', 'host', '--quiet', '--report', reportFile], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: runCache } });
  const proofs = JSON.parse(readFileSync(reportFile, 'utf8')).platforms.map((p) => p.proofSeconds * 1000);
  log(`P6-run: registry proof per platform ${proofs.join(', ')} ms`);
  record('P6-run', 'a second `crossbuild run` of the Flask example, base and app unchanged: the registry proof per platform (from the report\'s `proofSeconds`)', '—', { kind: 'absolute', max: 300 }, { a: proofs });
  const ref = `${repo}:multiarch`;
  const sizes = JSON.parse((await sh(CB[0], [CB[1], 'manifest', 'inspect', ref, '--json'])).stdout);
  let bytes = 0;
  for (const m of sizes.manifests) {
    const child = JSON.parse((await sh(CB[0], [CB[1], 'manifest', 'inspect', `${repo}@${m.digest}`, '--json'])).stdout);
    bytes += child.layers.reduce((n, l) => n + l.size, 0);
  }
  const times = [];
  const warmTimes = [];
  let elf = 0;
  for (let i = 0; i < RUNS; i++) {
    // Cold: an empty layer cache; warm: the same cache again (a second verify of the list).
    const dir = freshCache();
    let report;
    times.push(await timed(async () => (report = JSON.parse((await sh(CB[0], [CB[1], 'verify', ref, '--static', '--json'], { env: { CROSSBUILD_LAYER_CACHE: dir } })).stdout))));
    elf = report.platforms.reduce((n, p) => n + p.files.elfChecked, 0);
    let warm;
    warmTimes.push(await timed(async () => (warm = JSON.parse((await sh(CB[0], [CB[1], 'verify', ref, '--static', '--json'], { env: { CROSSBUILD_LAYER_CACHE: dir } })).stdout))));
    if (warm.platforms.some((p) => p.files.layersFromCache !== p.files.layers)) throw new Error('P6: the warm verify read layers');
    log(`P6: run ${i + 1}/${RUNS}: cold ${times.at(-1).toFixed(0)} ms, warm ${warmTimes.at(-1).toFixed(0)} ms, ${elf} ELF files`);
  }
  record('P6', `\`crossbuild verify --static\` of the Flask example list, whole image: ${elf} ELF files in ${(bytes / 2 ** 20).toFixed(0)} MiB of compressed layers (3 platforms), cold (empty layer cache)`, '—', { kind: 'absolute', max: 2500 }, { a: times });
  record('P6-warm', 'the same, warm (a second verify: every layer from the layer cache)', '—', { kind: 'absolute', max: 400 }, { a: warmTimes });
}

// P6-first: a run whose layer cache is empty (a fresh CI runner), base and app unchanged in the
// engine (its build is cached): the base's layers are read while the build runs, or only by the
// proof after the push (CROSSBUILD_READ_AHEAD=off), interleaved.
if (want('P6-first')) {
  const repo = `localhost:5000/bench-p6f-${runId}`;
  await sh(CB[0], [CB[1], 'run', '--image', repo, '--network', 'host', '--quiet'], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: freshCache() } });
  const wall = { on: [], off: [] };
  const proof = { on: [], off: [] };
  const runs = Math.min(RUNS, 5);
  for (let i = -1; i < runs; i++) {
    for (const mode of i % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      const reportFile = join(WORK, `p6-first-${runId}-${i + 1}-${mode}.json`);
      const t = await timed(() => sh(CB[0], [CB[1], 'run', '--image', repo, '--tag', `first-${i + 1}-${mode}`, '--network', 'host', '--quiet', '--report', reportFile], { env: { CI: 'true', CROSSBUILD_LAYER_CACHE: freshCache(), CROSSBUILD_READ_AHEAD: mode } }));
      if (i < 0) continue; // warm-up
      const platforms = JSON.parse(readFileSync(reportFile, 'utf8')).platforms;
      if (mode === 'on' && platforms.some((p) => !(p.files.layersFromCache >= 1))) throw new Error('P6-first: the base was not read ahead');
      wall[mode].push(t);
      proof[mode].push(...platforms.map((p) => p.proofSeconds * 1000));
    }
    if (i >= 0) log(`P6-first: run ${i + 1}/${runs}: read ahead ${wall.on.at(-1).toFixed(0)} ms (proofs ${proof.on.slice(-3).join(', ')} ms), not ${wall.off.at(-1).toFixed(0)} ms (proofs ${proof.off.slice(-3).join(', ')} ms)`);
  }
  record('P6-first', "a `crossbuild run` of the Flask example on an empty layer cache (a fresh CI runner), build cached in the engine: the base's layers read while the build runs (the default)", 'the same run, the base read only by the proof after the push (`CROSSBUILD_READ_AHEAD=off`)', { kind: 'ratio', max: 1 }, { a: wall.on, b: wall.off });
  record('P6-first-proof', 'the same runs: the registry proof per platform (from the report\'s `proofSeconds`), base read ahead', 'the same, base read by the proof', { kind: 'ratio', max: 1 }, { a: proof.on, b: proof.off });
}

// R: reliability. Faults injected by a loopback proxy in front of the registry: what crossbuild
// survived (retried to success) and, where it could not, how long until it named the failure.
const reliability = [];
if (want('R')) {
  const seedManifest = JSON.parse((await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${REG}/busybox:latest-arm64`])).stdout);
  const layer = seedManifest.layers[0].digest;
  const blob = new RegExp(`/blobs/${layer}$`);
  const times = (n, f) => Array.from({ length: n }, () => f);
  const scenarios = [
    ['503 on the ping, once', [{ method: 'GET', path: /^\/v2\/$/, status: 503 }], 'verify'],
    ['429 with Retry-After: 1 on the manifest, once', [{ method: 'GET', path: /\/manifests\//, status: 429, headers: { 'retry-after': '1' } }], 'verify'],
    ['connection reset after the headers of a layer, once', [{ method: 'GET', path: blob, dropAfterBytes: 4096 }], 'verify'],
    ['close-delimited layer body (no Content-Length)', [{ method: 'GET', path: blob, closeDelimited: true }], 'verify'],
    ['503 on the blob-mount POST, once', [{ method: 'POST', path: /\/blobs\/uploads\/\?mount=/, status: 503 }], 'push'],
    ['layer body stalls after the headers, 8 times (--registry-timeout 2)', times(8, { method: 'GET', path: blob, stallAfterHeaders: true }), 'verify', ['--registry-timeout', '2']],
    ['endless layer body', [{ method: 'GET', path: blob, endless: true }], 'verify'],
    ['short layer body, 8 times', times(8, { method: 'GET', path: blob, truncateTo: 1000 }), 'verify'],
    ['connection dropped mid-layer, 8 times', times(8, { method: 'GET', path: blob, dropAfterBytes: 1000 }), 'verify'],
    ['500 on the manifest GET, 8 times', times(8, { method: 'GET', path: /\/manifests\//, status: 500 }), 'verify'],
    ['429 with no body, Retry-After: 1, on the manifest, once', [{ method: 'GET', path: /\/manifests\//, status: 429, noBody: true, headers: { 'retry-after': '1' } }], 'verify'],
    ['manifest trickles a byte a second, every time (--registry-timeout 3)', times(20, { method: 'GET', path: /\/manifests\//, trickleMs: 1000 }), 'verify', ['--registry-timeout', '3']],
    ['503 on the manifest, every time', times(200, { method: 'GET', path: /\/manifests\//, status: 503 }), 'verify'],
    ['the list PUT answered 201, nothing stored', [{ method: 'PUT', path: /\/manifests\/v1$/, fake201: true }], 'push'],
    // distribution's answer while another push of the same blob rewrites its link (captured).
    ['a child manifest PUT refused with MANIFEST_BLOB_UNKNOWN for a blob just mounted, once', [{ method: 'PUT', path: /\/manifests\/sha256:/, status: 400, body: JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'registry', 'manifest-put-behind-its-writes.json'), 'utf8')) }], 'push'],
  ];
  for (const [name, faults, kind, extra = []] of scenarios) {
    const proxy = await startFaultProxy(REG, faults);
    let args;
    if (kind === 'verify') args = ['verify', `${proxy.addr}/busybox:latest-arm64`, '--static', ...extra];
    else {
      const spec = join(WORK, `r-${reliability.length}.yaml`);
      writeFileSync(spec, `image: ${proxy.addr}/bench-r-${runId}/m${reliability.length}:v1\nmanifests:\n  - image: ${proxy.addr}/busybox:latest-arm64\n`);
      args = ['manifest', 'push', 'from-spec', spec, ...extra];
    }
    const t0 = performance.now();
    // No layer cache: every scenario must really read the layer through the faults.
    const r = await execa(CB[0], [CB[1], ...args], { reject: false, env: { CI: 'true', CROSSBUILD_LAYER_CACHE: 'off' } });
    const ms = performance.now() - t0;
    await proxy.stop();
    const text = `${r.stdout}\n${r.stderr}`;
    const named = /(GET|POST|PUT|HEAD) \S+/.test(text) && r.exitCode === 1;
    const message = r.exitCode === 0 ? '' : (text.split('\n').find((l) => /failed|broke off|descriptor says|answered|could not|too slow|read back/.test(l)) ?? '').trim().replace(/^binaries +FAIL +layers could not be read: /, '').replace(/sha256:[0-9a-f]{64}/g, 'sha256:…').slice(0, 220);
    const retries = (r.stderr.match(/crossbuild: retrying/g) ?? []).length;
    reliability.push({ fault: name, injected: faults.length, exitCode: r.exitCode, outcome: r.exitCode === 0 ? 'survived' : named ? 'named' : 'UNNAMED', retries, ms, message });
    log(`R: ${name}: exit ${r.exitCode}, ${retries} retries, ${ms.toFixed(0)} ms`);
  }
}

// P3m, P5m: Docker 28.5 + buildx 0.29 on the containerd image store (ci/engines.sh docker-28c),
// against what a buildx user types instead on the same engine.
const m28 = await engineEnv('docker-28c');
const d28 = m28.CROSSBUILD_DOCKER;
const env28 = { ...m28, CI: 'true' };
if (['P3m', 'P3m-check', 'P3m-solve', 'P3m-probe', 'P5m', 'P5m-buildx', 'P5m-direct', 'P7', 'P8-cmd', 'P8'].some(want)) {
  rowEngine = `Docker ${(await sh(d28, ['version', '--format', '{{.Server.Version}}'], { env: env28 })).stdout.trim()}, buildx ${(await sh(d28, ['buildx', 'version'], { env: env28 })).stdout.split(' ')[1]}, containerd image store`;
}
const p3mPlatforms = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];
const p3mCfg = join(ROOT, 'bench', 'p3m', 'platforms.json');
const bxPush = (tag, extra = []) => sh(d28, ['buildx', 'build', '--no-cache', '--pull', '--network', 'none', '--platform', p3mPlatforms.join(','), '-t', tag, '--push', ...extra, join(ROOT, 'bench', 'p3')], { env: env28 });
const handCheck = async (tag) => {
  for (const p of p3mPlatforms) await sh(d28, ['run', '--rm', '--network', 'none', '--pull', 'always', '--platform', p, '--entrypoint', 'uname', tag, '-m'], { env: env28 });
};
if (want('P3m')) {
  const a = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cb-${runId}-${i + 1}`], { env: env28 });
  const b = (i) => bxPush(`localhost:5000/bench-p3m:bx-${runId}-${i + 1}`);
  const m = await pair('P3m', a, b);
  record('P3m', '`crossbuild run`, amd64 + 2 emulated platforms, `--no-cache`, CPU-heavy RUN: build, config + `uname -m` + every ELF file proven, pushed, list read back', '`docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 --push` (no proof at all)', { kind: 'ratio', max: 1.1 }, m);
}
if (want('P3m-check')) {
  const a = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cbc-${runId}-${i + 1}`], { env: env28 });
  const b = async (i) => {
    const tag = `localhost:5000/bench-p3m:bxc-${runId}-${i + 1}`;
    await bxPush(tag);
    await handCheck(tag);
  };
  const m = await pair('P3m-check', a, b);
  record('P3m-check', 'the same `crossbuild run`', 'the same `docker buildx build … --push`, then per platform `docker run --pull always --platform P … uname -m`', { kind: 'ratio', max: 0.7 }, m);
}
// Item 3 of the engines issue, measured side by side: crossbuild's two buildx paths on the same
// build — one solve of every platform pushed by digest (the default where buildx can) against one
// `buildx build --load` + `docker push` per platform (CROSSBUILD_BUILDX_OUTPUT=load).
if (want('P3m-solve')) {
  const a = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cbs-${runId}-${i + 1}`], { env: env28 });
  const b = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cbl-${runId}-${i + 1}`], { env: { ...env28, CROSSBUILD_BUILDX_OUTPUT: 'load' } });
  const m = await pair('P3m-solve', a, b);
  record('P3m-solve', 'the same `crossbuild run`: every platform in one buildx solve, exported to the engine and as an OCI layout pushed by digest (the default here)', 'the same `crossbuild run` with one `buildx build --load` + `docker push` per platform (`CROSSBUILD_BUILDX_OUTPUT=load`)', { kind: 'ratio', max: 1 }, m);
}
// The solve's `uname -m`: one BuildKit probe of every platform (the default there) against a
// `docker run` + `docker rm` per platform (CROSSBUILD_UNAME_PROBE=off), the rest of the run the same.
if (want('P3m-probe')) {
  const a = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cbp-${runId}-${i + 1}`], { env: env28 });
  const b = (i) => sh(CB[0], [CB[1], 'run', '--config', p3mCfg, '--no-cache', '--quiet', '--tag', `cbr-${runId}-${i + 1}`], { env: { ...env28, CROSSBUILD_UNAME_PROBE: 'off' } });
  const m = await pair('P3m-probe', a, b);
  record('P3m-probe', 'the same `crossbuild run`: `uname -m` of the 3 platforms as one BuildKit probe (`FROM` the run\'s image, `RUN ["uname","-m"]`, cache-only output; the default there)', 'the same `crossbuild run` with one `docker run` + `docker rm` per platform (`CROSSBUILD_UNAME_PROBE=off`)', { kind: 'ratio', max: 1 }, m);
}
async function emptyEngine28(repo) {
  const ls = await sh(d28, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', repo], { env: env28 });
  const refs = ls.stdout.split('\n').filter((l) => l.trim() && !l.endsWith(':<none>'));
  if (refs.length > 0) await sh(d28, ['rmi', '-f', ...refs], { env: env28 });
  await sh(d28, ['builder', 'prune', '-af'], { env: env28 });
}
if (want('P5m') || want('P5m-buildx')) {
  const cfgFile = join(ROOT, 'bench', 'p5', 'platforms.json');
  const repo = `localhost:5000/bench-p5m-${runId}`;
  // Cold runs keep their caches apart (--cache-ref), so they never overwrite the warm one.
  const cbArgs = (salt, tag = 'latest') => [CB[1], 'run', '--config', cfgFile, '--image', repo, '--tag', tag, '--quiet', '--cache', 'registry', '--build-arg', `SALT=${salt}`, ...(tag.startsWith('cold') ? ['--cache-ref', `${repo}-${tag}`] : [])];
  const platforms = JSON.parse(readFileSync(cfgFile, 'utf8')).platforms.map((p) => p.platform).join(',');
  // buildx's own registry cache, one ref for the whole multi-platform build (its usual recipe).
  const bxArgs = (salt, tag) => ['buildx', 'build', '--pull', '--network', 'none', '--platform', platforms, '--build-arg', `SALT=${salt}`, '--cache-from', `type=registry,ref=${repo}:bxcache`, '--cache-to', `type=registry,ref=${repo}:bxcache,mode=max`, '-t', `${repo}:${tag}`, '--push', join(ROOT, 'bench', 'p5')];
  await emptyEngine28(repo);
  await sh(CB[0], cbArgs('warm'), { env: env28 });
  await sh(d28, bxArgs('warm', 'bx'), { env: env28 });
  const runs = Math.min(RUNS, 3);
  const warm = [];
  const cold = [];
  const bx = [];
  for (let i = 0; i < runs; i++) {
    await emptyEngine28(repo);
    warm.push(await timed(() => sh(CB[0], cbArgs('warm'), { env: env28 })));
    await emptyEngine28(repo);
    cold.push(await timed(() => sh(CB[0], cbArgs(`cold-${runId}-${i}`, `cold-${i}`), { env: env28 })));
    await emptyEngine28(repo);
    bx.push(await timed(() => sh(d28, bxArgs('warm', 'bx'), { env: env28 })));
    log(`P5m: run ${i + 1}/${runs}: crossbuild warm ${warm.at(-1).toFixed(0)} ms, cold ${cold.at(-1).toFixed(0)} ms, buildx warm ${bx.at(-1).toFixed(0)} ms`);
  }
  if (want('P5m')) record('P5m', '`crossbuild run --cache registry`, 3 emulated platforms with a CPU-heavy RUN, emptied engine, warm registry cache (one solve, one multi-platform `mode=max` cache)', 'the same `crossbuild run --cache registry` on the same emptied engine, cold', { kind: 'ratio', max: 0.15 }, { a: warm, b: cold });
  if (want('P5m-buildx')) record('P5m-buildx', 'the same warm `crossbuild run --cache registry` (build, proof, push, list)', '`docker buildx build --cache-from/--cache-to type=registry,mode=max --push` of the same build on the same emptied engine, warm (no proof)', { kind: 'ratio', max: 1 }, { a: warm, b: bx });
}

// P5m-direct: the same warm run with buildx run as its plugin binary (the default where `docker
// info` names it) against through the docker CLI (CROSSBUILD_BUILDX_DIRECT=off), each on an emptied engine.
if (want('P5m-direct')) {
  const cfgFile = join(ROOT, 'bench', 'p5', 'platforms.json');
  const repo = `localhost:5000/bench-p5d-${runId}`;
  const args = [CB[1], 'run', '--config', cfgFile, '--image', repo, '--tag', 'latest', '--quiet', '--cache', 'registry', '--build-arg', 'SALT=warm'];
  await emptyEngine28(repo);
  await sh(CB[0], args, { env: env28 });
  const t = { on: [], off: [] };
  const runs = Math.max(RUNS, 7);
  for (let i = -1; i < runs; i++) {
    for (const mode of i % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      await emptyEngine28(repo);
      const ms = await timed(() => sh(CB[0], args, { env: { ...env28, CROSSBUILD_BUILDX_DIRECT: mode } }));
      if (i >= 0) t[mode].push(ms);
    }
    if (i >= 0) log(`P5m-direct: run ${i + 1}/${runs}: plugin ${t.on.at(-1).toFixed(0)} ms, through the CLI ${t.off.at(-1).toFixed(0)} ms`);
  }
  record('P5m-direct', 'the warm `crossbuild run --cache registry` of P5m (emptied engine): its two buildx commands (the solve, the `uname -m` probe) run as the plugin binary `docker info` names (the default)', 'the same run with each through the docker CLI, `docker buildx …` (`CROSSBUILD_BUILDX_DIRECT=off`)', { kind: 'ratio', max: 1 }, { a: t.on, b: t.off });
}

// P7, P8: what signing and the test gate add to a run, on the same engine (Docker 28.5 + buildx,
// containerd store): the same run with and without, interleaved; the figure is the difference.
async function addedBy(id, what, baseline, target, withArgs, withoutArgs, runs, per = 1) {
  const d = [];
  const base = [];
  for (let i = -1; i < runs; i++) {
    const order = i % 2 === 0 ? [true, false] : [false, true];
    const t = {};
    for (const w of order) t[w] = await timed(() => sh(CB[0], w ? withArgs(i) : withoutArgs(i), { env: env28 }));
    if (i < 0) continue; // warm-up
    d.push((t.true - t.false) / per);
    base.push(t.false);
    log(`${id}: run ${i + 1}/${runs}: with ${t.true.toFixed(0)} ms, without ${t.false.toFixed(0)} ms`);
  }
  rowEngine = rowEngine || 'Docker 28.5 (containerd store)';
  record(id, what, baseline, target, { a: d });
  results.at(-1).base = { median: median(base), min: Math.min(...base), max: Math.max(...base), runs: base };
}
if (want('P7')) {
  const keyDir = join(WORK, 'p7');
  mkdirSync(keyDir, { recursive: true });
  const cosignBin = (await sh('bash', [join(ROOT, 'ci', 'engines.sh'), 'cosign'])).stdout.trim();
  if (!existsSync(join(keyDir, 'cosign.key'))) await sh(cosignBin, ['generate-key-pair'], { cwd: keyDir, env: { COSIGN_PASSWORD: 'bench' } });
  env28.CROSSBUILD_COSIGN = cosignBin;
  env28.COSIGN_PASSWORD = 'bench';
  const cfgFile = join(ROOT, 'test', 'fixtures', 'app', 'platforms.json');
  const args = (i, extra) => [CB[1], 'run', '--config', cfgFile, '--image', `localhost:5000/bench-p7-${runId}`, '--tag', `r${i + 1}${extra.length ? 's' : ''}`, '--quiet', ...extra];
  await addedBy('P7', 'what `--sign --key` adds to `crossbuild run` of 3 platforms (each image signed and attested with its proof, the list signed and attested; a cosign key signed in process, checked by cosign 3.1.1)', 'the same run without `--sign`', { kind: 'absolute', max: 1000 }, (i) => args(i, ['--sign', '--key', join(keyDir, 'cosign.key')]), (i) => args(i, []), Math.min(RUNS, 3));
}
if (want('P8-cmd')) {
  const cfgFile = join(ROOT, 'test', 'fixtures', 'app', 'platforms.json');
  const args = (i, extra) => [CB[1], 'run', '--config', cfgFile, '--image', `localhost:5000/bench-p8-${runId}`, '--tag', `r${i + 1}`, '--quiet', '--no-push', ...extra];
  await addedBy('P8-cmd', 'what a command test (`--test "test -x /bin/sh"`) adds per platform to `crossbuild run` of 3 busybox platforms (2 under QEMU)', 'the same run without tests', { kind: 'absolute', max: 1000 }, (i) => args(i, ['--test', 'test -x /bin/sh']), (i) => args(i, []), Math.min(RUNS, 3), 3);
}
if (want('P8')) {
  // The example's HTTP test (Flask under QEMU): warm registry cache, so the build is the cached one.
  const args = (i, extra) => [CB[1], 'run', '--image', `localhost:5000/bench-p8flask-${runId}`, '--network', 'host', '--cache', 'registry', '--no-push', '--quiet', ...extra];
  await sh(CB[0], [CB[1], 'run', '--image', `localhost:5000/bench-p8flask-${runId}`, '--network', 'host', '--cache', 'registry', '--no-test', '--quiet'], { env: env28, cwd: ROOT });
  await addedBy('P8', "what the example's HTTP test (each platform's Flask service answers `GET /` with its own machine) adds to `crossbuild run` of 3 platforms", 'the same run with `--no-test`', { kind: 'absolute', max: 20_000 }, (i) => args(i, []), (i) => args(i, ['--no-test']), 2);
}

// The layer caches the rows made are theirs alone.
for (let n = 1; n <= cacheN; n++) rmSync(join(WORK, `layer-cache-${runId}-${n}`), { recursive: true, force: true });

// ---------------------------------------------------------------------------------------------
// A subset (BENCH_ONLY) replaces its own rows in the last full run's results; the rest stay as
// they were measured, each row saying when.
const ORDER = ['P4', 'P1', 'P1-rtt', 'P1-rtt-same', 'P2', 'P2-warm', 'P2-tiny', 'P2-warm-rtt', 'P2-large', 'P2-large-warm', 'P2-text', 'P2-text-warm', 'P2m', 'P3', 'P3m', 'P3m-check', 'P3m-solve', 'P3m-probe', 'P5', 'P5-flask', 'P5m', 'P5m-buildx', 'P5m-direct', 'P6', 'P6-warm', 'P6-run', 'P6-first', 'P6-first-proof', 'P7', 'P8-cmd', 'P8'];
const now = new Date().toISOString();
for (const r of results) r.measured = now;
if (ONLY && existsSync(join(ROOT, 'bench', 'results.json'))) {
  const prev = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8'));
  // A kept row without its own date was measured in the previous file's run.
  // JSON wrote a row without a target (max: Infinity) as null: it reads back as Infinity.
  const kept = (prev.results ?? []).filter((r) => !results.some((n) => n.id === r.id)).map((r) => ({ ...r, measured: r.measured ?? prev.date, target: { ...r.target, max: r.target.max ?? Infinity } }));
  results.splice(0, results.length, ...[...kept, ...results].sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id)));
  if (!ONLY.has('R') && prev.reliability) reliability.push(...prev.reliability);
}
const cpu = cpus()[0]?.model ?? 'unknown';
const machine = `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}, Docker engine ${engine}`;
const date = new Date().toISOString();
const fmt = (x, unit) => (unit === 'MiB' ? `${x.toFixed(1)} MiB` : unit === 'round trips' ? `${x.toFixed(1)}` : `${x.toFixed(0)} ms`);
const lines = [
  '# crossbuild benchmarks',
  '',
  `Run ${date} on ${machine}. ${RUNS} interleaved runs per pair after one warm-up each (P4: ${Math.max(RUNS, 15)}; P5-flask: 2); figures are medians (min–max). Ratios are crossbuild's median over the baseline's, measured in the same run.${ONLY ? ` Rows ${[...ONLY].join(', ')} were measured again on ${now.slice(0, 16)}; each row says when it was measured (UTC).` : ''}`,
  '',
  '| id | engine | crossbuild | median (min–max) | baseline | median (min–max) | ratio | target | met | measured |',
  '|---|---|---|---|---|---|---:|---|---|---|',
];
for (const r of results) {
  const target = r.target.max === Infinity ? '—' : r.target.kind === 'ratio' ? `≤ ${r.target.max}×` : `≤ ${r.target.max} ${r.unit}`;
  lines.push(
    `| ${r.id} | ${r.engine || `Docker ${engine} (host)`} | ${r.what} | ${fmt(r.crossbuild.median, r.unit)} (${fmt(r.crossbuild.min, r.unit)}–${fmt(r.crossbuild.max, r.unit)}) | ${r.baseline} | ${r.base ? `${fmt(r.base.median, r.unit)} (${fmt(r.base.min, r.unit)}–${fmt(r.base.max, r.unit)})` : '—'} | ${r.ratio !== undefined ? `${r.ratio.toFixed(3)}×` : '—'} | ${target} | ${r.target.max === Infinity ? '—' : r.met ? 'yes' : '**no**'} | ${(r.measured ?? date).slice(0, 16).replace('T', ' ')} |`,
  );
}
if (reliability.length > 0) {
  const survived = reliability.filter((r) => r.outcome === 'survived').length;
  const named = reliability.filter((r) => r.outcome === 'named');
  lines.push(
    '',
    '## Reliability (R)',
    '',
    `Faults injected by a loopback proxy in front of the registry (test/helpers/fault-proxy.mjs), one \`crossbuild verify --static\` or \`manifest push\` each. ${survived} of ${reliability.length} scenarios survived (retried to success); ${named.length} ended in an error naming the request, the longest after ${(Math.max(0, ...named.map((r) => r.ms)) / 1000).toFixed(1)} s; ${reliability.filter((r) => r.outcome === 'UNNAMED').length} ended any other way.`,
    '',
    '| fault | injected | outcome | exit | retries shown | time to outcome | what it said |',
    '|---|---:|---|---:|---:|---:|---|',
  );
  for (const r of reliability) lines.push(`| ${r.fault} | ${r.injected} | ${r.outcome} | ${r.exitCode} | ${r.retries} | ${(r.ms / 1000).toFixed(1)} s | ${r.message.replace(/\|/g, '\\|') || '—'} |`);
}
lines.push('', `Total bench time: ${((Date.now() - started) / 1000).toFixed(0)} s.`, '');
writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), lines.join('\n'));
writeFileSync(join(ROOT, 'bench', 'results.json'), `${JSON.stringify({ date, machine, runs: RUNS, results, reliability }, null, 2)}\n`);
process.stdout.write(`${lines.join('\n')}\n`);
