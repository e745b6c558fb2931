// What a build gets besides its context, at `docker buildx build` parity: the network of RUN
// steps, secrets, SSH agents, extra hosts, named contexts, /dev/shm size and ulimits. Parsers are
// pure and name the bad value; checks that touch the filesystem or environment are separate
// (resolveInputs), so a missing file or variable is a usage error before anything runs.
import { existsSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { escapeControl } from '../util/text.js';

/** `default` passes no --network at all: whatever the engine gives RUN steps, as `docker build` does. */
export const NETWORK_MODES = ['default', 'none', 'host'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

export function parseNetwork(value: string, where: string): NetworkMode {
  if ((NETWORK_MODES as readonly string[]).includes(value)) return value as NetworkMode;
  throw new UsageError(`${where} ${escapeControl(value)}: expected one of ${NETWORK_MODES.join(', ')}`);
}

/** --cache: `registry` imports and exports each platform's build cache through the registry. */
export const CACHE_MODES = ['none', 'registry'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

export function parseCacheMode(value: string, where: string): CacheMode {
  if ((CACHE_MODES as readonly string[]).includes(value)) return value as CacheMode;
  throw new UsageError(`${where} ${escapeControl(value)}: expected one of ${CACHE_MODES.join(', ')}`);
}

/** A secret by reference only: crossbuild passes where it is, never its bytes. */
export type SecretSpec = { readonly id: string; readonly src: string; readonly env?: undefined } | { readonly id: string; readonly env: string; readonly src?: undefined };

export interface SshSpec {
  /** "default" or a name the Dockerfile uses in `RUN --mount=type=ssh,id=…`. */
  readonly id: string;
  /** Agent sockets or key files; empty: the agent at $SSH_AUTH_SOCK. */
  readonly paths: readonly string[];
}

export interface BuildContextSpec {
  readonly name: string;
  /** An absolute local folder, or a URL-like source (docker-image://, oci-layout://, https://, git). */
  readonly value: string;
}

export interface BuildInputs {
  readonly secrets: readonly SecretSpec[];
  readonly ssh: readonly SshSpec[];
  readonly addHosts: readonly string[];
  readonly buildContexts: readonly BuildContextSpec[];
  readonly shmSize?: string;
  readonly ulimits: readonly string[];
  /** buildx's --provenance as given (false, true, mode=min, mode=max[,…]); absent: buildx's default. */
  readonly provenance?: string;
  /** buildx's --sbom as given (false, true, generator=IMAGE); absent: buildx's default (none). */
  readonly sbom?: string;
  /** buildx's --attest specs (type=provenance,mode=max / type=sbom). */
  readonly attest: readonly string[];
  /** buildx's --annotation specs ([TYPE:]KEY=VALUE). */
  readonly annotations: readonly string[];
}

export const NO_INPUTS: BuildInputs = { secrets: [], ssh: [], addHosts: [], buildContexts: [], ulimits: [], attest: [], annotations: [] };

/** Does this input ask for an attestation (not just turn one off)? */
export function wantsAttestations(i: BuildInputs): boolean {
  const on = (v: string | undefined) => v !== undefined && !/^(false|0)$/i.test(v) && !/(^|,)disabled=true(,|$)/.test(v);
  return on(i.provenance) || on(i.sbom) || i.attest.some((a) => !/(^|,)disabled=true(,|$)/.test(a));
}

/**
 * `--provenance` / `--sbom` as buildx takes them: a boolean, or KEY=VALUE pairs (`mode=min|max`
 * for provenance, `generator=IMAGE` for SBOM). Booleans are normalised to true/false.
 */
export function parseAttestationFlag(text: string, where: string, kind: 'provenance' | 'sbom'): string {
  if (/^(true|1)$/i.test(text)) return 'true';
  if (/^(false|0)$/i.test(text)) return 'false';
  const f = fields(text, `${where} ${escapeControl(text)}`);
  const mode = f.get('mode');
  if (kind === 'provenance' && mode !== undefined && mode !== 'min' && mode !== 'max') {
    throw new UsageError(`${where} ${escapeControl(text)}: mode must be min or max (e.g. --provenance mode=max), or give true/false`);
  }
  return text;
}

/** `--attest type=provenance|sbom|…[,KEY=VALUE…]`. */
export function parseAttest(text: string, where: string): string {
  const f = fields(text, `${where} ${escapeControl(text)}`);
  const type = f.get('type');
  if (!type || !/^[a-z][a-z0-9-]*$/.test(type)) throw new UsageError(`${where} ${escapeControl(text)}: needs type=provenance or type=sbom, e.g. type=provenance,mode=max`);
  if (type === 'provenance') parseAttestationFlag(text.replace(/(^|,)type=provenance(,|$)/, '$1').replace(/^,|,$/g, '') || 'true', where, 'provenance');
  return text;
}

/** `--annotation [TYPE[,TYPE…][[PLATFORM]]:]KEY=VALUE`, as buildx takes it (manifest, index, manifest-descriptor, index-descriptor). */
export function parseAnnotation(text: string, where: string): string {
  const m = /^(?:((?:manifest|index|manifest-descriptor|index-descriptor)(?:\[[^\]]+\])?(?:,(?:manifest|index|manifest-descriptor|index-descriptor)(?:\[[^\]]+\])?)*):)?([A-Za-z0-9][A-Za-z0-9._/-]*)=(.*)$/s.exec(text);
  if (!m) throw new UsageError(`${where} ${escapeControl(text)}: expected [TYPE:]KEY=VALUE, e.g. org.opencontainers.image.title=app or index:org.opencontainers.image.description=…`);
  return text;
}

function fields(text: string, where: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new UsageError(`${where}: "${escapeControl(part)}" is not KEY=VALUE`);
    out.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1));
  }
  return out;
}

const ID = /^[A-Za-z0-9_.-]+$/;

/**
 * `id=ID[,src=FILE|,env=VAR][,type=file|env]` as buildx takes it. With neither src nor env, the
 * variable named like the id is used when set (as buildx does), else the file of that name.
 * `base` resolves relative files (the cwd for flags, the config's folder for platforms.json).
 */
export function parseSecret(text: string, where: string, base: string): SecretSpec {
  const f = fields(text, `${where} ${escapeControl(text)}`);
  const id = f.get('id');
  if (!id || !ID.test(id)) throw new UsageError(`${where}: needs id=NAME (letters, digits, _ . -), e.g. id=npmrc,src=.npmrc`);
  for (const k of f.keys()) {
    if (!['id', 'src', 'source', 'env', 'type', 'required'].includes(k)) throw new UsageError(`${where} id=${id}: unknown key "${escapeControl(k)}" (allowed: id, src, env, type)`);
  }
  const type = f.get('type');
  if (type !== undefined && type !== 'file' && type !== 'env') throw new UsageError(`${where} id=${id}: type must be file or env, not "${escapeControl(type)}"`);
  const src = f.get('src') ?? f.get('source');
  const env = f.get('env') ?? (type === 'env' ? (src ?? id) : undefined);
  if (env !== undefined) return { id, env };
  if (src !== undefined) return { id, src: isAbsolute(src) ? src : resolve(base, src) };
  if (type !== 'file' && process.env[id] !== undefined) return { id, env: id };
  return { id, src: resolve(base, id) };
}

/** `default`, `default=PATH[,PATH]` or `ID=PATH[,PATH]` as buildx takes it. */
export function parseSsh(text: string, where: string, base: string): SshSpec {
  const i = text.indexOf('=');
  const id = i < 0 ? text : text.slice(0, i);
  if (!ID.test(id)) throw new UsageError(`${where} ${escapeControl(text)}: expected default or ID=PATH[,PATH]`);
  const paths = i < 0 ? [] : text.slice(i + 1).split(',').filter(Boolean).map((p) => (isAbsolute(p) ? p : resolve(base, p)));
  return { id, paths };
}

/** `HOST:IP` (or `HOST=IP`); IPv6 addresses keep their colons. */
export function parseAddHost(text: string, where: string): string {
  const m = /^([^:=\s]+)[:=](.+)$/.exec(text);
  const ip = m?.[2]?.replace(/^\[(.*)\]$/, '$1');
  if (!m || !ip || (isIP(ip) === 0 && ip !== 'host-gateway') || !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(m[1]!)) {
    throw new UsageError(`${where} ${escapeControl(text)}: expected HOST:IP, e.g. registry.local:10.0.0.5 (or HOST:host-gateway)`);
  }
  return `${m[1]}:${ip}`;
}

const REMOTE_CONTEXT = /^(docker-image|oci-layout|target|https?|git|ssh):\/\/|^git@/;

/** `NAME=PATH|docker-image://REF|oci-layout://…|https://…`. */
export function parseBuildContext(text: string, where: string, base: string): BuildContextSpec {
  const i = text.indexOf('=');
  const name = i < 0 ? '' : text.slice(0, i);
  const value = i < 0 ? '' : text.slice(i + 1);
  if (!/^[A-Za-z0-9][A-Za-z0-9_./:-]*$/.test(name) || value === '') {
    throw new UsageError(`${where} ${escapeControl(text)}: expected NAME=PATH or NAME=docker-image://REF`);
  }
  return { name, value: REMOTE_CONTEXT.test(value) ? value : isAbsolute(value) ? value : resolve(base, value) };
}

export function parseShmSize(text: string, where: string): string {
  if (!/^\d+(\.\d+)?[bkmg]?$/i.test(text)) throw new UsageError(`${where} ${escapeControl(text)}: expected a size such as 256m or 2g`);
  return text;
}

const ULIMITS = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** `TYPE=SOFT[:HARD]`, e.g. nofile=1024:2048. */
export function parseUlimit(text: string, where: string): string {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(text);
  if (!m || !ULIMITS.includes(m[1]!)) throw new UsageError(`${where} ${escapeControl(text)}: expected TYPE=SOFT[:HARD] with TYPE one of ${ULIMITS.join(', ')}`);
  return text;
}

const BUILD_ARG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN) with E2BIG. */
const MAX_ARG = 128 * 1024;

/**
 * Build args as Dockerfile ARG can name them; a value the kernel would refuse as an argument is
 * a usage error here rather than a spawn failure later.
 */
export function checkBuildArgs(args: Readonly<Record<string, string>>, where: string): void {
  for (const [k, v] of Object.entries(args)) {
    if (!BUILD_ARG_KEY.test(k)) throw new UsageError(`${where} ${escapeControl(k)}: not a build arg name (letters, digits and _, not starting with a digit)`);
    if (Buffer.byteLength(v) + k.length + 1 > MAX_ARG) throw new UsageError(`${where} ${k}: the value is ${Buffer.byteLength(v)} bytes; an argument may be at most ${MAX_ARG} bytes (pass large inputs as a --secret or a file in the context)`);
  }
}

/** Later entries win by key (flags come after the file). */
export function mergeBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const t of items) m.set(key(t), t);
  return [...m.values()];
}

/** Every secret file, secret variable and SSH socket/key must exist now: exit 2 naming the missing one. */
export function checkInputsExist(inputs: BuildInputs, env: NodeJS.ProcessEnv = process.env): void {
  for (const s of inputs.secrets) {
    if (s.env !== undefined) {
      if (env[s.env] === undefined) throw new UsageError(`--secret id=${s.id}: environment variable ${s.env} is not set`);
    } else if (!existsSync(s.src) || !statSync(s.src).isFile()) {
      throw new UsageError(`--secret id=${s.id}: file ${s.src} does not exist (or is not a file)`);
    }
  }
  for (const s of inputs.ssh) {
    if (s.paths.length === 0) {
      const sock = env.SSH_AUTH_SOCK;
      if (!sock) throw new UsageError(`--ssh ${s.id}: SSH_AUTH_SOCK is not set (start ssh-agent, or give ${s.id}=PATH to a socket or key)`);
      if (!existsSync(sock)) throw new UsageError(`--ssh ${s.id}: SSH_AUTH_SOCK points to ${sock}, which does not exist`);
    }
    for (const p of s.paths) if (!existsSync(p)) throw new UsageError(`--ssh ${s.id}: ${p} does not exist`);
  }
  for (const c of inputs.buildContexts) {
    if (!REMOTE_CONTEXT.test(c.value) && (!existsSync(c.value) || !statSync(c.value).isDirectory())) {
      throw new UsageError(`--build-context ${c.name}: folder ${c.value} does not exist`);
    }
  }
}
