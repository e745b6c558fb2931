// Signing with a key file, in this process: the key decrypted once (cosign's encrypted format:
// scrypt + NaCl secretbox, or a PKCS#8/SEC1 PEM), then every signature and attestation is a DSSE
// envelope in a sigstore bundle (v0.3), pushed as an OCI artifact whose subject is the image and
// listed under the referrers tag `sha256-<digest>` — the bytes cosign 3 writes, so `cosign
// verify` and `cosign verify-attestation` read them as their own (the tests check with the real
// cosign). A few small requests per image instead of a cosign process (Go start, scrypt) each.
// Keyless and KMS keys stay with the cosign CLI (cosign.ts).
import { createHash, createPrivateKey, createPublicKey, scrypt, sign as signBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { CrossbuildError, UsageError } from '../errors.js';
import type { ImageRef } from '../oci/reference.js';
import { formatReference } from '../oci/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { sha256Digest } from '../oci/digest.js';
import { registerSecret } from '../util/secrets.js';

const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const IN_TOTO = 'application/vnd.in-toto+json';
/** cosign's predicate type for a plain signature. */
export const SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

/** What to sign: an image by digest, with the predicate of its attestation. */
export interface LocalItem {
  readonly digest: string;
  readonly type: string;
  readonly predicate: unknown;
}

/** A key this process can sign with: a file or env://VAR holding cosign's key or a PEM (not a KMS URI). */
export function isLocalKey(ref: string | undefined): ref is string {
  return ref !== undefined && (!ref.includes('://') || ref.startsWith('env://'));
}

function keyText(ref: string): string {
  if (ref.startsWith('env://')) {
    const v = process.env[ref.slice('env://'.length)];
    if (!v) throw new UsageError(`--key ${ref}: the variable is not set`);
    return v;
  }
  try {
    return readFileSync(ref, 'utf8');
  } catch (e) {
    throw new UsageError(`--key ${ref}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** cosign's encrypted private key: base64 JSON of scrypt parameters, a NaCl secretbox nonce and the sealed PKCS#8 key. */
async function decryptCosignKey(pem: string, password: string, ref: string): Promise<KeyObject> {
  const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  let j: { kdf?: { name?: string; params?: { N?: number; r?: number; p?: number }; salt?: string }; cipher?: { name?: string; nonce?: string }; ciphertext?: string };
  try {
    j = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as typeof j;
  } catch {
    throw new UsageError(`--key ${ref}: not cosign's encrypted key format (its body is not base64 JSON)`);
  }
  const { N, r, p } = j.kdf?.params ?? {};
  if (j.kdf?.name !== 'scrypt' || j.cipher?.name !== 'nacl/secretbox' || !N || !r || !p || !j.kdf.salt || !j.cipher.nonce || !j.ciphertext) {
    throw new UsageError(`--key ${ref}: an encrypted key crossbuild cannot read (kdf ${j.kdf?.name ?? '?'}, cipher ${j.cipher?.name ?? '?'}); cosign's own (scrypt, nacl/secretbox) is`);
  }
  const secret = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, Buffer.from(j.kdf!.salt!, 'base64'), 32, { N, r, p, maxmem: 256 * N * r }, (e, k) => (e ? reject(e) : resolve(k))),
  );
  const der = nacl.secretbox.open(Buffer.from(j.ciphertext, 'base64'), Buffer.from(j.cipher.nonce, 'base64'), secret);
  secret.fill(0);
  if (!der) throw new UsageError(`--key ${ref}: COSIGN_PASSWORD does not open this key`);
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
}

/** The private key of `ref`, made usable once. */
export async function loadKey(ref: string, password = process.env.COSIGN_PASSWORD ?? ''): Promise<KeyObject> {
  const text = keyText(ref);
  registerSecret(text.trim());
  for (const line of text.split('\n')) if (line.trim() && !line.startsWith('-----')) registerSecret(line.trim());
  const key = /-----BEGIN ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY-----/.test(text)
    ? await decryptCosignKey(text, password, ref)
    : (() => {
        try {
          return createPrivateKey(text);
        } catch (e) {
          throw new UsageError(`--key ${ref}: not a private key crossbuild can read (${(e as Error).message}); give cosign's key file or a PKCS#8 PEM`);
        }
      })();
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || (curve !== 'prime256v1' && curve !== 'secp384r1')) {
    throw new UsageError(`--key ${ref}: an ${key.asymmetricKeyType ?? 'unknown'} key${curve ? ` (${curve})` : ''}; cosign keys are ECDSA P-256 (or P-384)`);
  }
  return key;
}

/** DSSE's pre-authentication encoding: what is really signed. */
function pae(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);
}

const sha = sha256Digest;

export class LocalSigner {
  private readonly hint: string;
  private readonly hash: 'sha256' | 'sha384';

  constructor(private readonly key: KeyObject) {
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
    this.hint = createHash('sha256').update(spki).digest('base64');
    this.hash = key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  }

  /** A sigstore bundle holding a signed DSSE envelope of this in-toto statement. */
  bundle(statement: unknown): Buffer {
    const payload = Buffer.from(JSON.stringify(statement));
    const sig = signBytes(this.hash, pae(IN_TOTO, payload), this.key).toString('base64');
    return Buffer.from(JSON.stringify({ mediaType: BUNDLE, verificationMaterial: { publicKey: { hint: this.hint } }, dsseEnvelope: { payload: payload.toString('base64'), payloadType: IN_TOTO, signatures: [{ sig }] } }));
  }

  /**
   * Sign each image and attest its predicate, all at once: per image two artifacts (the
   * signature, the attestation) and one update of its referrers tag.
   */
  async signAll(client: RegistryClient, image: ImageRef, items: readonly LocalItem[]): Promise<void> {
    const { registry, repository } = image;
    const empty = Buffer.from('{}');
    const emptyDesc = { mediaType: EMPTY, size: empty.length, digest: sha(empty), artifactType: BUNDLE };
    const emptyPushed = client.pushBlob(registry, repository, emptyDesc.digest, empty.length, empty);
    // Awaited with the rest below; handled now so a failure while the HEADs are out is not unhandled.
    emptyPushed.catch(() => undefined);
    // One subject's referrers tag is read, extended and written by one of these at a time.
    const bySubject = new Map<string, LocalItem[]>();
    for (const item of items) bySubject.set(item.digest, [...(bySubject.get(item.digest) ?? []), item]);
    const signOne = async (item: LocalItem): Promise<void> => {
      const subject = await client.headManifest(registry, repository, item.digest);
      if (!subject) throw new CrossbuildError(`signing ${formatReference(image)}@${item.digest}: the registry does not have it`);
      const hex = item.digest.replace(/^sha256:/, '');
      const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      // As cosign 3 writes them: the signature's statement (v1) and the attestation's (v0.1, named).
      const signature = this.bundle({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest: { sha256: hex }, annotations: {} }], predicateType: SIGN_PREDICATE, predicate: {} });
      const attestation = this.bundle({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ name: formatReference(image), digest: { sha256: hex } }], predicateType: item.type, predicate: item.predicate });
      const artifacts = [
        { bundle: signature, predicateType: SIGN_PREDICATE },
        { bundle: attestation, predicateType: item.type },
      ].map(({ bundle, predicateType }) =>
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MANIFEST,
            config: emptyDesc,
            layers: [{ mediaType: BUNDLE, size: bundle.length, digest: sha(bundle) }],
            annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': predicateType, 'org.opencontainers.image.created': created },
            subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest },
            artifactType: BUNDLE,
          }),
        ),
      );
      await emptyPushed;
      await Promise.all([signature, attestation].map((b) => client.pushBlob(registry, repository, sha(b), b.length, b)));
      await Promise.all(artifacts.map((m) => client.putManifest(registry, repository, sha(m), m, MANIFEST)));
      // The referrers tag (OCI 1.1's fallback): the subject's artifacts, newest first, as cosign keeps it.
      const tag = `sha256-${hex}`;
      const known = await client.manifest(registry, repository, tag).catch((e: unknown) => {
        if ((e as { kind?: string }).kind === 'not-found') return undefined;
        throw e;
      });
      const before = known?.kind === 'index' ? known.index.manifests.filter((d) => !artifacts.some((m) => sha(m) === d.digest)) : [];
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [...artifacts.map((m) => ({ mediaType: MANIFEST, size: m.length, digest: sha(m), artifactType: EMPTY })), ...before] }));
      await client.putManifest(registry, repository, tag, index, INDEX);
    };
    await Promise.all([
      emptyPushed,
      ...[...bySubject.values()].map(async (same) => {
        for (const item of same) await signOne(item);
      }),
    ]);
  }
}
