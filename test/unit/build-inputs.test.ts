// Build inputs at `docker buildx build` parity: parsing, what each builder can honour, the argv,
// and how a network failure is recognised in real build output.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertSupported, buildArgv, expectsAttestations, looksLikeNetworkFailure, networkHint, unsupportedInputs, type Builder } from '../../src/docker/build.js';
import {
  checkInputsExist,
  NO_INPUTS,
  parseAddHost,
  parseAnnotation,
  parseAttest,
  parseAttestationFlag,
  parseBuildContext,
  parseNetwork,
  parseSecret,
  parseShmSize,
  parseSsh,
  parseUlimit,
  type BuildInputs,
} from '../../src/config/build-inputs.js';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError, UsageError } from '../../src/errors.js';
import { parsePlatform } from '../../src/platform/platform.js';

const dir = mkdtempSync(join(tmpdir(), 'cb-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fx = (f: string) => readFileSync(join(__dirname, '..', 'fixtures', 'docker', f), 'utf8');
const usage = (f: () => unknown): UsageError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitCode).toBe(2);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
};

const classic: Builder = { kind: 'classic', cli: 'docker', env: { DOCKER_BUILDKIT: '0' }, clientVersion: '28.2.2' };
const buildkit: Builder = { kind: 'buildkit', cli: '/usr/bin/docker', env: { DOCKER_BUILDKIT: '1' }, clientVersion: '20.10.24+dfsg1' };
const buildx: Builder = { kind: 'buildx', cli: 'docker', env: {}, clientVersion: '27.0.1', buildxVersion: '0.15.1' };
const oldBuildx: Builder = { ...buildx, buildxVersion: '0.7.1' };

describe('build input parsers', () => {
  it('network modes', () => {
    expect(parseNetwork('host', '--network')).toBe('host');
    expect(usage(() => parseNetwork('bridge', '--network')).message).toBe('--network bridge: expected one of default, none, host');
  });

  it('secrets: file, env, and the id alone as buildx takes it', () => {
    expect(parseSecret('id=npmrc,src=.npmrc', '--secret', '/work')).toEqual({ id: 'npmrc', src: '/work/.npmrc' });
    expect(parseSecret('id=tok,source=/etc/tok', '--secret', '/work')).toEqual({ id: 'tok', src: '/etc/tok' });
    expect(parseSecret('id=tok,env=GH_TOKEN', '--secret', '/work')).toEqual({ id: 'tok', env: 'GH_TOKEN' });
    expect(parseSecret('id=tok,type=env,src=GH_TOKEN', '--secret', '/work')).toEqual({ id: 'tok', env: 'GH_TOKEN' });
    process.env.CB_TEST_SECRET_VAR = 'x';
    expect(parseSecret('id=CB_TEST_SECRET_VAR', '--secret', '/work')).toEqual({ id: 'CB_TEST_SECRET_VAR', env: 'CB_TEST_SECRET_VAR' });
    expect(parseSecret('id=cb_no_such_var', '--secret', '/work')).toEqual({ id: 'cb_no_such_var', src: '/work/cb_no_such_var' });
    expect(usage(() => parseSecret('src=x', '--secret', '/')).message).toMatch(/--secret: needs id=NAME/);
    expect(usage(() => parseSecret('id=a,mode=0400', '--secret', '/')).message).toMatch(/unknown key "mode" \(allowed: id, src, env, type\)/);
    expect(usage(() => parseSecret('id=a,type=ssh', '--secret', '/')).message).toMatch(/type must be file or env/);
  });

  it('ssh, hosts, contexts, shm and ulimits', () => {
    expect(parseSsh('default', '--ssh', '/w')).toEqual({ id: 'default', paths: [] });
    expect(parseSsh('github=keys/id_ed25519,/run/agent.sock', '--ssh', '/w')).toEqual({ id: 'github', paths: ['/w/keys/id_ed25519', '/run/agent.sock'] });
    expect(parseAddHost('registry.local:10.0.0.5', '--add-host')).toBe('registry.local:10.0.0.5');
    expect(parseAddHost('v6=::1', '--add-host')).toBe('v6:::1');
    expect(parseAddHost('gw:host-gateway', '--add-host')).toBe('gw:host-gateway');
    expect(usage(() => parseAddHost('nohost', '--add-host')).message).toMatch(/expected HOST:IP/);
    expect(usage(() => parseAddHost('a:999.1.1.1', '--add-host')).message).toMatch(/expected HOST:IP/);
    expect(parseBuildContext('base=docker-image://alpine:3.20', '--build-context', '/w')).toEqual({ name: 'base', value: 'docker-image://alpine:3.20' });
    expect(parseBuildContext('src=../lib', '--build-context', '/w/app')).toEqual({ name: 'src', value: '/w/lib' });
    expect(usage(() => parseBuildContext('nothing', '--build-context', '/')).message).toMatch(/expected NAME=PATH/);
    expect(parseShmSize('256m', '--shm-size')).toBe('256m');
    expect(usage(() => parseShmSize('lots', '--shm-size')).message).toMatch(/expected a size/);
    expect(parseUlimit('nofile=1024:2048', '--ulimit')).toBe('nofile=1024:2048');
    expect(usage(() => parseUlimit('files=1', '--ulimit')).message).toMatch(/TYPE one of core, cpu/);
  });

  it('echoes control characters escaped, never raw', () => {
    expect(usage(() => parseNetwork('ho\u001b[2Jst', '--network')).message).toBe('--network ho\\u001b[2Jst: expected one of default, none, host');
  });

  it('missing secret files, variables and agents are usage errors naming them', () => {
    const file = join(dir, 'tok');
    writeFileSync(file, 'value');
    expect(() => checkInputsExist({ ...NO_INPUTS, secrets: [{ id: 'tok', src: file }] })).not.toThrow();
    expect(usage(() => checkInputsExist({ ...NO_INPUTS, secrets: [{ id: 'tok', src: join(dir, 'absent') }] })).message).toBe(`--secret id=tok: file ${join(dir, 'absent')} does not exist (or is not a file)`);
    expect(usage(() => checkInputsExist({ ...NO_INPUTS, secrets: [{ id: 'tok', env: 'CB_UNSET' }] }, {})).message).toBe('--secret id=tok: environment variable CB_UNSET is not set');
    expect(usage(() => checkInputsExist({ ...NO_INPUTS, ssh: [{ id: 'default', paths: [] }] }, {})).message).toMatch(/--ssh default: SSH_AUTH_SOCK is not set/);
  });
});

describe('what each builder honours', () => {
  const all: BuildInputs = {
    secrets: [{ id: 's', src: '/s' }],
    ssh: [{ id: 'default', paths: [] }],
    addHosts: ['h:1.2.3.4'],
    buildContexts: [{ name: 'b', value: 'docker-image://x' }],
    shmSize: '1g',
    ulimits: ['nofile=1:2'],
    provenance: 'mode=max',
    sbom: 'true',
    attest: ['type=provenance,mode=max'],
    annotations: ['org.opencontainers.image.title=app'],
  };
  it('classic: no secrets, ssh, contexts or attestations; hosts, shm and ulimits yes', () => {
    const p = unsupportedInputs(classic, all);
    expect(p.map((x) => x.split(' ')[0])).toEqual(['--secret', '--ssh', '--build-context', '--provenance/--sbom/--attest', '--annotation']);
    expect(p[0]).toMatch(/needs BuildKit: install docker buildx .*the builder here is the classic builder via docker 28\.2\.2/);
  });
  it("the engine's BuildKit through a pre-23 CLI: ignores shm and ulimits (measured on 20.10), no contexts", () => {
    expect(unsupportedInputs(buildkit, all).map((x) => x.split(' ')[0])).toEqual(['--build-context', '--shm-size', '--ulimit', '--provenance/--sbom/--attest', '--annotation']);
    // Turning provenance off asks nothing of a builder that has none.
    expect(unsupportedInputs(buildkit, { ...NO_INPUTS, provenance: 'false' })).toEqual([]);
  });
  it('buildx: everything, by version; attestations only where the image store keeps them', () => {
    expect(unsupportedInputs(buildx, all)).toEqual([]);
    expect(unsupportedInputs(oldBuildx, all).map((x) => x.split(' ')[0])).toEqual(['--build-context', '--shm-size', '--ulimit', '--provenance/--sbom/--attest', '--annotation']);
    // buildx 0.29's docker driver on 28.5's overlay2 store cannot keep an attestation; on the containerd store it can.
    const overlay: Builder = { ...buildx, driver: 'docker', imageStore: 'overlay2' };
    expect(unsupportedInputs(overlay, { ...NO_INPUTS, provenance: 'mode=max' })[0]).toMatch(/^--provenance\/--sbom\/--attest cannot be kept by buildx's docker driver on the overlay2 image store: turn on the containerd image store/);
    expect(unsupportedInputs({ ...overlay, imageStore: 'containerd' }, { ...NO_INPUTS, provenance: 'mode=max' })).toEqual([]);
    expect(unsupportedInputs({ ...overlay, driver: 'docker-container' }, { ...NO_INPUTS, provenance: 'mode=max' })).toEqual([]);
    expect(() => assertSupported(classic, { ...NO_INPUTS, secrets: all.secrets })).toThrow(UsageError);
    expect(() => assertSupported(classic, NO_INPUTS)).not.toThrow();
  });

  it('argv: secrets by reference, env secrets as files for file-only CLIs', () => {
    const o = { platform: parsePlatform('linux/arm64'), tag: 'r/a:t-arm64', context: '/ctx', dockerfile: '/ctx/Dockerfile', network: 'default' as const, inputs: { ...all, secrets: [{ id: 's', src: '/s' }, { id: 'e', env: 'TOKEN' }] } };
    const bx = buildArgv('buildx', o);
    expect(bx.slice(bx.indexOf('--secret'), bx.indexOf('--secret') + 4)).toEqual(['--secret', 'id=s,src=/s', '--secret', 'id=e,env=TOKEN']);
    expect(bx).toEqual(expect.arrayContaining(['--ssh', 'default', '--add-host', 'h:1.2.3.4', '--build-context', 'b=docker-image://x', '--shm-size', '1g', '--ulimit', 'nofile=1:2']));
    expect(bx).not.toContain('--network');
    expect(bx).toEqual(expect.arrayContaining(['--provenance=mode=max', '--sbom=true', '--attest', 'type=provenance,mode=max', '--annotation', 'org.opencontainers.image.title=app']));
    // Builders without attestations get none of those flags.
    expect(buildArgv('classic', { ...o, inputs: { ...NO_INPUTS, provenance: 'false' } }).join(' ')).not.toMatch(/provenance/);
    const bk = buildArgv('buildkit', o, new Map([['e', '/tmp/private/e']]));
    expect(bk).toContain('id=e,src=/tmp/private/e');
    expect(bk.at(-1)).toBe('/ctx');
  });
});

describe('attestation and annotation inputs, as buildx takes them', () => {
  it('parses --provenance, --sbom, --attest and --annotation, naming what would be valid', () => {
    expect(parseAttestationFlag('1', '--provenance', 'provenance')).toBe('true');
    expect(parseAttestationFlag('FALSE', '--provenance', 'provenance')).toBe('false');
    expect(parseAttestationFlag('mode=max', '--provenance', 'provenance')).toBe('mode=max');
    expect(usage(() => parseAttestationFlag('mode=full', '--provenance', 'provenance')).message).toBe('--provenance mode=full: mode must be min or max (e.g. --provenance mode=max), or give true/false');
    expect(parseAttestationFlag('generator=docker/buildkit-syft-scanner', '--sbom', 'sbom')).toBe('generator=docker/buildkit-syft-scanner');
    expect(parseAttest('type=sbom', '--attest')).toBe('type=sbom');
    expect(usage(() => parseAttest('mode=max', '--attest')).message).toMatch(/^--attest mode=max: needs type=provenance or type=sbom/);
    expect(usage(() => parseAttest('type=provenance,mode=all', '--attest')).message).toMatch(/mode must be min or max/);
    expect(parseAnnotation('index,manifest:org.opencontainers.image.title=a=b', '--annotation')).toBe('index,manifest:org.opencontainers.image.title=a=b');
    expect(parseAnnotation('manifest[linux/arm64]:k=v', '--annotation')).toBe('manifest[linux/arm64]:k=v');
    expect(usage(() => parseAnnotation('=v', '--annotation')).message).toMatch(/expected \[TYPE:\]KEY=VALUE/);
    expect(usage(() => parseAnnotation('blob:k=v', '--annotation')).message).toMatch(/expected \[TYPE:\]KEY=VALUE/);
  });

  it('which builds will carry attestations: buildx ≥ 0.10 by default where the store keeps them, unless turned off', () => {
    const bx: Builder = { ...buildx, driver: 'docker', imageStore: 'containerd' };
    expect(expectsAttestations(bx, NO_INPUTS, {})).toBe(true);
    expect(expectsAttestations(bx, { ...NO_INPUTS, provenance: 'false' }, {})).toBe(false);
    expect(expectsAttestations(bx, NO_INPUTS, { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' })).toBe(false);
    expect(expectsAttestations(bx, { ...NO_INPUTS, sbom: 'true' }, { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' })).toBe(true);
    expect(expectsAttestations({ ...bx, imageStore: 'overlay2' }, NO_INPUTS, {})).toBe(false);
    expect(expectsAttestations(buildkit, NO_INPUTS, {})).toBe(false);
    expect(expectsAttestations(oldBuildx, NO_INPUTS, {})).toBe(false);
  });

  it('platforms.json takes provenance, sbom, attest and annotations, with flags winning', () => {
    const f = join(dir, 'attest.json');
    writeFileSync(f, JSON.stringify({ image: 'r/app', provenance: false, sbom: 'true', attest: ['type=provenance,mode=min'], annotations: ['k=file', 'j=1'], platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] }));
    const c = loadConfig(f, { inputs: { provenance: 'mode=max', annotations: ['k=flag'] } });
    expect(c.inputs).toMatchObject({ provenance: 'mode=max', sbom: 'true', attest: ['type=provenance,mode=min'], annotations: ['k=flag', 'j=1'] });
    writeFileSync(f, JSON.stringify({ image: 'r/app', provenance: 'mode=all', platforms: [{ platform: 'linux/arm64', suffix: 'arm64' }] }));
    expect(() => loadConfig(f)).toThrow(new ConfigError(f, 'provenance', 'mode must be min or max (e.g. --provenance mode=max), or give true/false'));
  });
});

describe('network failures in build output', () => {
  it("recognises the engine's own no-bridge error (captured from engine 20.10 BuildKit)", () => {
    expect(looksLikeNetworkFailure(fx('build-no-bridge-20.10.txt'))).toBe('network bridge not found');
  });
  it('recognises resolver errors of apt and wget (captured under --network none)', () => {
    expect(looksLikeNetworkFailure(fx('build-network-none-apt.txt'))).toMatch(/Temporary failure resolving|Could not resolve|bad address/);
  });
  it('does not call an ordinary failure a network one', () => {
    expect(looksLikeNetworkFailure('#5 0.101 refusing to build on aarch64\n#5 ERROR: executor failed running [/bin/sh -c exit 1]: exit code: 1')).toBeUndefined();
  });
  it('hints with the network the build had', () => {
    expect(networkHint('default', false)).toMatch(/the engine's default network, and this engine has no bridge network .*use --network host|build with --network host/);
    expect(networkHint('none', true)).toMatch(/had --network none: build with --network host/);
  });
});

describe('platforms.json build fields', () => {
  const write = (name: string, content: unknown) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(content));
    return f;
  };
  const base = { image: 'localhost:5000/app', platforms: [{ platform: 'linux/amd64', suffix: 'amd64' }, { platform: 'linux/arm64', suffix: 'arm64', network: 'none', dockerfile: 'arm.Dockerfile', target: 'arm' }] };

  it('network: file, per platform, and the flag over both', () => {
    const c = loadConfig(write('net.json', { ...base, network: 'host' }));
    expect(c.platforms.map((t) => t.network)).toEqual(['host', 'none']);
    expect(c.platforms[1]!.dockerfile).toBe(join(dir, 'arm.Dockerfile'));
    expect(c.platforms[1]!.target).toBe('arm');
    expect(loadConfig(write('net0.json', base)).platforms[0]!.network).toBe('default');
    const f = loadConfig(write('net2.json', base), { network: 'host', target: 'final' });
    expect(f.platforms.map((t) => [t.network, t.target])).toEqual([['host', 'final'], ['host', 'final']]);
  });

  it('inputs from the file, relative to it, merged under the flags by key', () => {
    const c = loadConfig(write('inputs.json', { ...base, secrets: ['id=a,src=a.txt', 'id=b,env=B'], addHosts: ['x:1.1.1.1'], buildContexts: { lib: 'lib' }, shmSize: '1g' }), {
      inputs: { secrets: [{ id: 'a', src: '/flag/a' }], addHosts: ['x:2.2.2.2'] },
    });
    expect(c.inputs.secrets).toEqual([{ id: 'a', src: '/flag/a' }, { id: 'b', env: 'B' }]);
    expect(c.inputs.addHosts).toEqual(['x:2.2.2.2']);
    expect(c.inputs.buildContexts).toEqual([{ name: 'lib', value: join(dir, 'lib') }]);
    expect(c.inputs.shmSize).toBe('1g');
  });

  it('bad values name the file and field', () => {
    const f = write('badnet.json', { ...base, network: 'bridge' });
    expect(() => loadConfig(f)).toThrow(ConfigError);
    expect(() => loadConfig(f)).toThrow(/badnet\.json: network: must be one of default, none, host/);
    expect(() => loadConfig(write('badhost.json', { ...base, addHosts: ['nope'] }))).toThrow(/badhost\.json: addHosts\[0\]: .*expected HOST:IP/);
    expect(() => loadConfig(write('badsecret.json', { ...base, secrets: ['src=x'] }))).toThrow(/badsecret\.json: secrets\[0\]: needs id=NAME/);
  });

  it('refuses / as context and a relative Dockerfile outside the context', () => {
    expect(() => loadConfig(write('root.json', { ...base, context: '/' }))).toThrow(/root\.json: context: the build context is \//);
    expect(() => loadConfig(write('outside.json', { ...base, context: 'app', dockerfile: '../Dockerfile' }))).toThrow(/outside\.json: dockerfile: the Dockerfile resolves outside the build context/);
    expect(loadConfig(write('abs.json', { ...base, context: 'app', dockerfile: '/elsewhere/Dockerfile' })).dockerfile).toBe('/elsewhere/Dockerfile');
  });
});
