// Registry credentials from Docker's config.json: `auths`, `credsStore`, `credHelpers`
// (docker-credential-<name> get), with explicit --username/--password-stdin winning for the
// target registry alone.
import { accessSync, chmodSync, constants, existsSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z, type Infer } from '../util/zod.js';
import { UsageError } from '../errors.js';
import { registerSecret } from '../util/secrets.js';
import { DOCKER_HUB } from '../oci/reference.js';

export interface Credential {
  readonly username?: string;
  readonly password?: string;
  /** An OAuth2 refresh token (Docker's "identitytoken"). */
  readonly identityToken?: string;
}

const DockerConfigSchema = z.looseObject({
  auths: z.optional(z.record(z.string(), z.looseObject({ auth: z.optional(z.string()), username: z.optional(z.string()), password: z.optional(z.string()), identitytoken: z.optional(z.string()) }))),
  credsStore: z.optional(z.string()),
  credHelpers: z.optional(z.record(z.string(), z.string())),
});
type DockerConfig = Infer<typeof DockerConfigSchema>;

/** --docker-cfg takes the folder (as docker --config) or the file itself. */
export function dockerConfigPath(dockerCfg?: string): string {
  const base = dockerCfg ?? process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  try {
    if (statSync(base).isFile()) return base;
  } catch {
    // not there: treated as a folder, and a missing file means no credentials
  }
  return join(base, 'config.json');
}

/** docker.io and its aliases are one registry. */
function canonicalRegistry(registry: string): string {
  return ['docker.io', 'index.docker.io', 'registry-1.docker.io'].includes(registry) ? DOCKER_HUB : registry;
}

/** The keys a registry may be stored under in config.json (`auths`, `credHelpers`): Docker Hub has several historical ones. */
function configKeysFor(registry: string): string[] {
  if (registry !== DOCKER_HUB) return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://registry-1.docker.io'];
}

export class CredentialStore {
  private readonly file: string;
  private config: DockerConfig | undefined;
  private readonly cache = new Map<string, Promise<Credential | undefined>>();
  private readonly explicit: { readonly registry: string; readonly cred: { username: string; password: string } } | undefined;

  /**
   * `username`/`password` (--username/--password-stdin) are for `registry` alone, the target
   * image's: every other registry (a child copied from elsewhere, another registry's token
   * service) gets what the Docker config or its helpers hold, never these.
   */
  constructor(opts: { dockerCfg?: string; username?: string; password?: string; registry?: string } = {}) {
    this.file = dockerConfigPath(opts.dockerCfg);
    if (opts.username !== undefined || opts.password !== undefined) {
      if (opts.registry === undefined) throw new UsageError('--username needs a target registry (an image reference) to apply to');
      registerSecret(opts.password);
      this.explicit = { registry: canonicalRegistry(opts.registry), cred: { username: opts.username ?? '', password: opts.password ?? '' } };
    }
  }

  /** The registry the --username credentials are for, if any. */
  get explicitRegistry(): string | undefined {
    return this.explicit?.registry;
  }

  /**
   * A private Docker config for `docker push`/`pull` in this run: the user's file as it is (other
   * auths, credsStore, credHelpers kept) plus the --username credentials for the target registry
   * (and an empty helper entry for it, so a credsStore does not shadow them). The folder is 0700,
   * the file 0600; the caller removes the folder when the run ends. Undefined without --username:
   * the user's own config then serves as it is.
   */
  writePrivateDockerConfig(owner = String(process.pid)): string | undefined {
    if (!this.explicit) return undefined;
    let raw: Record<string, unknown> = {};
    try {
      raw = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, unknown>;
    } catch {
      // no config of the user's: start from nothing
    }
    const host = this.explicit.registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : this.explicit.registry;
    const auth = Buffer.from(`${this.explicit.cred.username}:${this.explicit.cred.password}`).toString('base64');
    registerSecret(auth);
    const auths = { ...((raw.auths as Record<string, unknown> | undefined) ?? {}), [host]: { auth } };
    const credHelpers = raw.credsStore !== undefined || raw.credHelpers !== undefined ? { ...((raw.credHelpers as Record<string, string> | undefined) ?? {}), [host]: '' } : undefined;
    // The password is in this file: on a memory-backed folder where there is one, so a killed run leaves nothing on disk.
    const dir = mkdtempSync(join(privateBase(), `crossbuild-docker-config-${owner}-`));
    chmodSync(dir, 0o700);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...raw, auths, ...(credHelpers ? { credHelpers } : {}) }), { mode: 0o600 });
    // The user's buildx builders and contexts stay theirs: buildx reads its current builder from here.
    for (const name of ['buildx', 'contexts', 'cli-plugins']) {
      const from = join(dirname(this.file), name);
      if (existsSync(from)) symlinkSync(from, join(dir, name));
    }
    return dir;
  }

  private load(): DockerConfig {
    if (this.config) return this.config;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      this.config = {};
      return this.config;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${this.file}: not valid JSON (${(e as Error).message})`);
    }
    const parsed = DockerConfigSchema.safeParse(raw);
    if (!parsed.success) throw new UsageError(`${this.file}: unexpected structure (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`);
    this.config = parsed.data;
    return this.config;
  }

  get(registry: string): Promise<Credential | undefined> {
    if (this.explicit && canonicalRegistry(registry) === this.explicit.registry) return Promise.resolve(this.explicit.cred);
    let p = this.cache.get(registry);
    if (!p) {
      p = this.lookup(registry);
      this.cache.set(registry, p);
    }
    return p;
  }

  private async lookup(registry: string): Promise<Credential | undefined> {
    const cfg = this.load();
    const keys = configKeysFor(registry);
    const helper = keys.map((k) => cfg.credHelpers?.[k]).find((h) => h) ?? cfg.credsStore;
    if (helper) {
      const fromHelper = await this.fromHelper(helper, registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry);
      if (fromHelper) return fromHelper;
    }
    for (const k of keys) {
      const entry = cfg.auths?.[k];
      if (!entry) continue;
      if (entry.identitytoken) {
        registerSecret(entry.identitytoken);
        return { identityToken: entry.identitytoken };
      }
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i < 0) throw new UsageError(`${this.file}: auths["${k}"].auth is not base64 of user:password`);
        const cred = { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
        registerSecret(cred.password);
        registerSecret(entry.auth);
        return cred;
      }
      if (entry.username !== undefined) {
        registerSecret(entry.password);
        return { username: entry.username, password: entry.password ?? '' };
      }
    }
    return undefined;
  }

  private async fromHelper(name: string, serverUrl: string): Promise<Credential | undefined> {
    const bin = `docker-credential-${name}`;
    // Loaded only when a helper is configured: execa is heavy for a CLI's start-up.
    const { execa } = await import('execa');
    const r = await execa(bin, ['get'], { input: serverUrl, reject: false, timeout: 30_000 });
    if (r.exitCode !== 0) {
      // "credentials not found" is the helper's way of saying none.
      if (/not found/i.test(`${r.stdout}${r.stderr}`)) return undefined;
      if ((r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(r.message))) {
        throw new UsageError(`${this.file}: credential helper ${bin} is configured but not installed`);
      }
      throw new UsageError(`credential helper ${bin} failed for ${serverUrl} (exit ${r.exitCode})`);
    }
    const parsed = z.object({ Username: z.string(), Secret: z.string() }).safeParse(JSON.parse(r.stdout));
    if (!parsed.success) throw new UsageError(`credential helper ${bin} returned unexpected output for ${serverUrl}`);
    registerSecret(parsed.data.Secret);
    if (parsed.data.Username === '<token>') return { identityToken: parsed.data.Secret };
    return { username: parsed.data.Username, password: parsed.data.Secret };
  }
}

/** /dev/shm when it is a writable tmpfs (Linux), else the temp folder. */
export function privateBase(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}
