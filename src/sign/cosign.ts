// The cosign CLI, as a module of its own (argv builders, getCommand style, and one runner):
// signatures and attestations stored the way cosign stores them (OCI 1.1 referrers where the
// registry has the API, else the `sha256-<digest>` tag), so `cosign verify` and admission
// policies read them as they read any other. With a key, signing is offline (no transparency
// log); without one it is cosign's keyless flow (Fulcio + Rekor with the CI's OIDC token).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { CommandError, UsageError } from '../errors.js';
import { privateBase } from '../registry/credentials.js';
import { isLoopbackRegistry } from '../oci/reference.js';
import { registerSecret, scrub } from '../util/secrets.js';
import { isLocalKey, loadKey, LocalSigner } from './local.js';

/** The predicate type of crossbuild's proof: what was proven about one platform's image (schema/proof-predicate.schema.json). */
export const PROOF_PREDICATE_TYPE = 'https://crossbuild.dev/attestations/platform-proof/v1';
/** …and of a list: every platform's verdict. */
export const LIST_PREDICATE_TYPE = 'https://crossbuild.dev/attestations/list-proof/v1';

/** The cosign crossbuild runs: $CROSSBUILD_COSIGN, else `cosign` on PATH. */
export function cosignCli(env: NodeJS.ProcessEnv = process.env): string {
  return env.CROSSBUILD_COSIGN ?? 'cosign';
}

export interface SignKey {
  /** A cosign key file, `env://VAR`, or a KMS URI as cosign takes them; absent: keyless. */
  readonly ref?: string;
}

export interface RegistryAccess {
  readonly registry: string;
  readonly plainHttp?: boolean;
  readonly insecure?: boolean;
}

/** Flags cosign needs to reach this registry as crossbuild does (loopback registries are plain HTTP). */
export function registryFlags(r: RegistryAccess): string[] {
  const out: string[] = [];
  if (r.plainHttp || isLoopbackRegistry(r.registry)) out.push('--allow-http-registry');
  if (r.insecure) out.push('--allow-insecure-registry');
  return out;
}

/** Offline key signing: no transparency log, no signing config from the network (cosign 3). */
const OFFLINE = ['--tlog-upload=false', '--use-signing-config=false'];

export function signArgv(ref: string, key: SignKey, r: RegistryAccess): string[] {
  return ['sign', ...(key.ref ? ['--key', key.ref, ...OFFLINE] : []), ...registryFlags(r), '-y', ref];
}

export function attestArgv(ref: string, key: SignKey, type: string, predicateFile: string, r: RegistryAccess): string[] {
  return ['attest', ...(key.ref ? ['--key', key.ref, ...OFFLINE] : []), '--type', type, '--predicate', predicateFile, ...registryFlags(r), '-y', ref];
}

export function verifyArgv(ref: string, publicKey: string, r: RegistryAccess): string[] {
  return ['verify', '--key', publicKey, '--insecure-ignore-tlog=true', ...registryFlags(r), '--output', 'json', ref];
}

export function verifyAttestationArgv(ref: string, publicKey: string, type: string, r: RegistryAccess): string[] {
  return ['verify-attestation', '--key', publicKey, '--type', type, '--insecure-ignore-tlog=true', ...registryFlags(r), ref];
}

/** An in-toto statement as cosign's verify-attestation prints it (one DSSE envelope a line). */
export interface Statement {
  readonly predicateType: string;
  readonly subject: readonly { name?: string; digest: Record<string, string> }[];
  readonly predicate: Record<string, unknown>;
}

/** Parse `cosign verify-attestation` output: the statements of the envelopes it accepted. */
export function parseAttestations(stdout: string): Statement[] {
  const out: Statement[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const env = JSON.parse(line) as { payload?: string };
      if (typeof env.payload !== 'string') continue;
      out.push(JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as Statement);
    } catch {
      // not an envelope
    }
  }
  return out;
}

/**
 * A signing session: the key made usable (a PKCS#8 PEM is imported into cosign's format in a
 * private memory-backed folder), its bytes and the password registered for scrubbing, every
 * cosign call with the same environment (the run's private DOCKER_CONFIG when --username).
 */
export class Cosign {
  private readonly dir: string;
  readonly key: SignKey;

  constructor(
    key: SignKey,
    private readonly env: Readonly<Record<string, string>> = {},
    readonly cli = cosignCli(),
  ) {
    this.dir = mkdtempSync(join(privateBase(), 'crossbuild-cosign-'));
    registerSecret(process.env.COSIGN_PASSWORD);
    this.key = key;
    if (key.ref && !key.ref.includes('://')) {
      let text: string;
      try {
        text = readFileSync(key.ref, 'utf8');
      } catch (e) {
        throw new UsageError(`--key ${key.ref}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a cosign key file, a PKCS#8 PEM or env://VAR`);
      }
      for (const line of text.split('\n')) if (line.trim() && !line.startsWith('-----')) registerSecret(line.trim());
      registerSecret(text.trim());
      if (!/-----BEGIN (ENCRYPTED (SIGSTORE|COSIGN) )?PRIVATE KEY-----|-----BEGIN EC PRIVATE KEY-----/.test(text)) throw new UsageError(`--key ${key.ref}: not a private key (expected cosign's "ENCRYPTED SIGSTORE PRIVATE KEY" or a PKCS#8 PEM)`);
    }
  }

  private local: Promise<LocalSigner | undefined> | undefined;

  /** The in-process signer for a key file or env:// key (decrypted once); none for keyless or a KMS key. */
  localSigner(): Promise<LocalSigner | undefined> {
    const ref = this.key.ref;
    this.local ??= isLocalKey(ref) ? loadKey(ref).then((k) => new LocalSigner(k)) : Promise.resolve(undefined);
    return this.local;
  }

  /** Import a plain PEM key (PKCS#8, EC) into cosign's encrypted format, once (for the cosign CLI). */
  async prepare(): Promise<void> {
    if (await this.localSigner()) return;
    const ref = this.key.ref;
    if (!ref || ref.includes('://')) return;
    const text = readFileSync(ref, 'utf8');
    if (/ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY/.test(text)) return;
    const prefix = join(this.dir, 'imported');
    await this.exec(['import-key-pair', '--key', ref, '--output-key-prefix', prefix], `import of the key ${ref}`);
    (this as { key: SignKey }).key = { ref: `${prefix}.key` };
  }

  /** A predicate as a private file for `cosign attest`. */
  predicateFile(name: string, predicate: unknown): string {
    const f = join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
    writeFileSync(f, JSON.stringify(predicate, null, 2), { mode: 0o600 });
    return f;
  }

  async exec(argv: readonly string[], what: string): Promise<{ stdout: string; stderr: string }> {
    const r = await execa(this.cli, argv, { reject: false, timeout: 5 * 60_000, env: { ...this.env, COSIGN_YES: 'true' }, stdin: 'ignore' });
    if (r.exitCode !== 0) throw new CommandError([this.cli, ...argv], r.exitCode, scrub(`${r.stderr}`), `cosign: ${what} failed`);
    return { stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Run cosign once for a check (verify): exit 0 or the reason, never an exception. */
export async function cosignCheck(argv: readonly string[], env: Readonly<Record<string, string>> = {}, cli = cosignCli()): Promise<{ ok: boolean; stdout: string; reason: string }> {
  const r = await execa(cli, argv, { reject: false, timeout: 5 * 60_000, env: { ...env }, stdin: 'ignore' });
  if ((r as { code?: string }).code === 'ENOENT') throw new UsageError(`cosign is not installed (${cli}): install it, or set CROSSBUILD_COSIGN`, { hint: 'bash ci/engines.sh cosign prints the path of the one this repository provisions' });
  const reason = scrub(String(r.stderr)).trim().split('\n').filter((l) => /error|no |mismatch|invalid|fail/i.test(l)).pop() ?? `exit ${r.exitCode}`;
  return { ok: r.exitCode === 0, stdout: String(r.stdout), reason: reason.replace(/^Error: /, '') };
}
