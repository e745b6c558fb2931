// Resolve a list's children (flattening child lists, filling platforms from configs), bring
// children from other repositories or registries into the target repository, then write the list.
// Everything is read and checked before any manifest or tag is written: bad input leaves no tag moved
// and no manifest behind (blob mounts, reachable by nothing, start early: see BlobTransfers).
import { CrossbuildError, RegistryError } from '../errors.js';
import { buildList, type ListEntry } from '../oci/list.js';
import {
  isAttestation,
  type Descriptor,
  type ListKind,
  type OciPlatform,
} from '../oci/types.js';
import { formatPlatform, normalizeLenient, samePlatform } from '../platform/platform.js';
import type { RegistryClient, RemoteManifest } from '../registry/client.js';
import { ReadBackError, writeListTag } from '../registry/publish.js';
import { formatReference, manifestReference, withTag, type ImageRef } from '../oci/reference.js';
import type { SpecChild, SpecPlatform } from './spec.js';

interface CopyJob {
  readonly from: { registry: string; repository: string };
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly blobs: readonly Descriptor[];
}

interface Resolved {
  readonly entries: ListEntry[];
  readonly copies: CopyJob[];
  readonly warnings: string[];
}

export interface PushPlan extends Resolved {
  /** The list to write, built (and so checked) before any manifest is written. */
  readonly list: ReturnType<typeof buildList>;
  readonly blobs: BlobTransfers;
}

export interface PushResult {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly tags: readonly string[];
  readonly warnings: readonly string[];
  readonly copied: { mounted: number; copied: number; existed: number; manifests: number };
}

function isNotFound(e: unknown): boolean {
  return e instanceof RegistryError && (e.kind === 'not-found' || e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN');
}

function toOciPlatform(spec: SpecPlatform, config: { os?: string; architecture?: string; variant?: string | undefined; 'os.version'?: string | undefined; 'os.features'?: string[] | undefined }): OciPlatform {
  const os = spec.os ?? config.os ?? '';
  const architecture = spec.architecture ?? config.architecture ?? '';
  // A variant only comes from the config when the architecture does too.
  const variant = spec.architecture !== undefined ? spec.variant : (spec.variant ?? config.variant ?? undefined);
  const normalized = normalizeLenient({ os, architecture, variant });
  const osVersion = spec.osVersion ?? config['os.version'];
  const osFeatures = spec.osFeatures ?? config['os.features'];
  return {
    ...normalized,
    ...(osVersion ? { 'os.version': osVersion } : {}),
    ...(osFeatures?.length ? { 'os.features': osFeatures } : {}),
    ...(spec.features?.length ? { features: spec.features } : {}),
  };
}

/** How long a failed plan or push waits for its mount attempts to finish (a cancelled session included). */
const SETTLE_MS = 2000;

/**
 * One mount or copy per blob into the target repository, shared by every child that needs it (a
 * child's manifest waits for its blobs, else the registry may refuse it with MANIFEST_BLOB_UNKNOWN).
 * Mounts within one registry are tried as soon as a child is read, beside the reads still to come:
 * a mounted blob is reachable by nothing until a manifest names it, so bad input still leaves no
 * manifest and no tag behind. A registry that will not mount (it starts an upload instead) is let
 * go at once: copies, within a registry or from another, wait until the plan is checked.
 */
class BlobTransfers {
  private readonly early = new Map<string, Promise<boolean>>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly how = new Map<string, 'existed' | 'mounted' | 'copied'>();
  private settled = false;

  constructor(
    private readonly client: RegistryClient,
    private readonly target: ImageRef,
  ) {}

  /** Try the mounts of a child just read; nothing waits for them yet. */
  begin(job: CopyJob): void {
    if (this.settled || job.from.registry !== this.target.registry) return;
    const { client, target } = this;
    for (const b of job.blobs) {
      if (this.early.has(b.digest)) continue;
      const tried = client.tryMountBlob(target.registry, target.repository, b.digest, job.from.repository).catch(() => false);
      this.early.set(b.digest, tried);
    }
  }

  /**
   * `work` (a plan or a push), and if it fails: no mount starts after, and those sent are seen
   * through before the failure is passed on, so an upload session a registry opened instead is
   * cancelled before the client closes (it would abort it). Bounded: a registry slow to answer a
   * mount does not hold up the failure.
   */
  async settledOnFailure<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (e) {
      this.settled = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.early.values()), new Promise((r) => (timer = setTimeout(r, SETTLE_MS)))]);
      clearTimeout(timer);
      throw e;
    }
  }

  /** Every blob of `job` in the target repository. */
  async complete(job: CopyJob): Promise<void> {
    await Promise.all(job.blobs.map((b) => this.transfer(job, b)));
  }

  /** What it took to bring the blobs of these jobs over (each blob once). */
  counts(jobs: readonly CopyJob[]): { mounted: number; copied: number; existed: number } {
    const out = { mounted: 0, copied: 0, existed: 0 };
    for (const d of new Set(jobs.flatMap((j) => j.blobs.map((b) => b.digest)))) {
      const h = this.how.get(d);
      if (h) out[h]++;
    }
    return out;
  }

  private transfer(job: CopyJob, b: { digest: string; size: number }): Promise<void> {
    let p = this.inFlight.get(b.digest);
    if (!p) {
      const { client, target } = this;
      p = (async () => {
        let how: 'exists' | 'mounted' | 'copied' | 'uploaded';
        if (job.from.registry !== target.registry) {
          how = await client.pushBlob(target.registry, target.repository, b.digest, b.size, () => client.getBlob(job.from.registry, job.from.repository, b.digest, { size: b.size, what: `copy of ${b.digest} from ${job.from.registry}/${job.from.repository}` }));
        } else if (await (this.early.get(b.digest) ?? false)) {
          how = 'mounted';
        } else {
          how = await client.mountBlob(target.registry, target.repository, b.digest, b.size, job.from.repository);
        }
        this.how.set(b.digest, how === 'exists' ? 'existed' : how === 'mounted' ? 'mounted' : 'copied');
      })();
      this.inFlight.set(b.digest, p);
    }
    return p;
  }
}

/** The blobs an image manifest needs in its repository: config and layers. */
function manifestBlobs(m: RemoteManifest): Descriptor[] {
  return m.kind === 'image' ? [m.manifest.config, ...m.manifest.layers] : [];
}

async function resolveChild(client: RegistryClient, target: ImageRef, child: SpecChild, kind: ListKind, blobs: BlobTransfers): Promise<Resolved> {
  const { registry, repository } = child.ref;
  const sameRepo = registry === target.registry && repository === target.repository;
  const fetched = await client.manifest(registry, repository, manifestReference(child.ref));
  const entries: ListEntry[] = [];
  const copies: CopyJob[] = [];
  const warnings: string[] = [];
  const addCopy = async (digest: string, mediaType: string, read?: RemoteManifest): Promise<void> => {
    if (sameRepo) return;
    const m = read ?? (await client.manifest(registry, repository, digest));
    const job = { from: { registry, repository }, digest, mediaType, bytes: m.bytes, blobs: manifestBlobs(m) };
    copies.push(job);
    blobs.begin(job);
  };

  if (fetched.kind === 'index') {
    const idx = fetched.index;
    const wanted = child.platform.architecture !== undefined || child.platform.os !== undefined;
    const images = idx.manifests.filter((m) => !isAttestation(m));
    const kept = images.filter((m) => {
      if (!wanted) return true;
      const p = m.platform;
      if (!p) return false;
      return samePlatform({ os: child.platform.os ?? p.os, architecture: child.platform.architecture ?? p.architecture, ...(child.platform.variant ? { variant: child.platform.variant } : {}) }, { os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) });
    });
    if (kept.length === 0) throw new CrossbuildError(`${child.field}.image ${child.text} is a list with no entry for the platform given`);
    const keptDigests = new Set(kept.map((m) => m.digest));
    const attestations = idx.manifests.filter((m) => isAttestation(m) && keptDigests.has(m.annotations?.['vnd.docker.reference.digest'] ?? ''));
    for (const m of kept) {
      if (!m.platform) throw new CrossbuildError(`${child.field}.image ${child.text}: entry ${m.digest} has no platform`);
      entries.push({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform, ...(m.annotations ? { annotations: m.annotations } : {}) });
      await addCopy(m.digest, m.mediaType);
    }
    if (kind === 'docker' && attestations.length > 0) {
      warnings.push(`${child.text}: dropped ${attestations.length} attestation manifest${attestations.length > 1 ? 's' : ''} (a Docker list can't carry them; use --type oci to keep them)`);
    } else {
      for (const a of attestations) {
        entries.push({ mediaType: a.mediaType, digest: a.digest, size: a.size, ...(a.platform ? { platform: a.platform } : {}), annotations: a.annotations ?? {} });
        await addCopy(a.digest, a.mediaType);
      }
    }
    return { entries, copies, warnings };
  }

  const d = fetched.descriptor;
  // Its blobs start moving while its config is read.
  await addCopy(d.digest, d.mediaType, fetched);
  const needConfig = child.platform.os === undefined || child.platform.architecture === undefined || child.platform.osVersion === undefined;
  let config: Parameters<typeof toOciPlatform>[1] = {};
  // An artifact's config need not be an image config: then the spec must give the platform.
  if (needConfig) config = await client.config(registry, repository, fetched.manifest).catch(() => ({}));
  const platform = toOciPlatform(child.platform, config);
  if (!platform.os || !platform.architecture) {
    throw new CrossbuildError(`${child.field}: no platform given and ${child.text}'s config names none`);
  }
  entries.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, platform });
  return { entries, copies, warnings };
}

/** Resolve every child (in parallel) and check the list can be built; writes no manifest and no tag (see BlobTransfers). */
export async function planList(client: RegistryClient, target: ImageRef, children: readonly SpecChild[], kind: ListKind, opts: { ignoreMissing?: boolean; annotations?: Record<string, string> } = {}): Promise<PushPlan> {
  const blobs = new BlobTransfers(client, target);
  return blobs.settledOnFailure(checkedPlan(client, target, children, kind, opts, blobs));
}

async function checkedPlan(client: RegistryClient, target: ImageRef, children: readonly SpecChild[], kind: ListKind, opts: { ignoreMissing?: boolean; annotations?: Record<string, string> }, blobs: BlobTransfers): Promise<PushPlan> {
  const results = await Promise.all(
    children.map(async (c) => {
      try {
        return await resolveChild(client, target, c, kind, blobs);
      } catch (e) {
        if (isNotFound(e)) {
          if (opts.ignoreMissing) return { entries: [], copies: [], warnings: [`${c.field}.image ${c.text} does not exist: skipped (--ignore-missing)`] };
          throw new RegistryError(`${c.field}.image ${c.text} does not exist in ${c.ref.registry}`, { status: 404, hint: 'push it first, or pass --ignore-missing to leave it out' });
        }
        throw e;
      }
    }),
  );
  const entries = results.flatMap((r) => r.entries);
  if (entries.length === 0) throw new CrossbuildError('no manifests left to put in the list');
  // Duplicates and annotation rules are checked here, before anything is written.
  const list = buildList(kind, entries, opts.annotations ? { annotations: opts.annotations } : {});
  return { entries, copies: results.flatMap((r) => r.copies), warnings: results.flatMap((r) => r.warnings), list, blobs };
}

/** Write: copy children into the target repository, then the list under each tag. */
export async function pushList(client: RegistryClient, target: ImageRef, plan: PushPlan, opts: { tags?: readonly string[] } = {}): Promise<PushResult> {
  const { list } = plan;
  let manifests = 0;
  await plan.blobs.settledOnFailure(
    Promise.all(
      plan.copies.map(async (job) => {
        await plan.blobs.complete(job);
        await client.putManifest(target.registry, target.repository, job.digest, job.bytes, job.mediaType);
        manifests++;
      }),
    ),
  );
  const copied = { ...plan.blobs.counts(plan.copies), manifests };
  // Every tag, or an error that says exactly which tags now serve the new list and which do not.
  // The first is read back as it is written (nothing is reported before it is true: it serves the
  // list, every entry resolves).
  const tags = [target.tag ?? 'latest', ...(opts.tags ?? [])];
  const entries = plan.entries.filter((e) => !list.dropped.includes(e)).map((e) => e.digest);
  const moved: string[] = [];
  for (const t of tags) {
    try {
      const digest = t === tags[0] ? (await writeListTag(client, withTag(target, t), t, list, entries)).digest : await client.putManifest(target.registry, target.repository, t, list.bytes, list.mediaType);
      if (digest !== list.digest) throw new RegistryError(`${formatReference(withTag(target, t))} stored as ${digest}, expected ${list.digest}`);
      moved.push(t);
    } catch (e) {
      const rest = tags.filter((x) => !moved.includes(x));
      // The first tag was accepted but is not proven: no other tag follows it, and that is said as it is.
      if (e instanceof ReadBackError) throw rest.length > 1 ? new ReadBackError(`${e.message}; tags not written: ${rest.slice(1).join(', ')}`, { cause: e }) : e;
      const msg = `${(e as Error).message}; tags moved to ${list.digest}: ${moved.length ? moved.join(', ') : 'none'}; not moved: ${rest.join(', ')}`;
      throw e instanceof RegistryError ? new RegistryError(msg, { ...(e.status !== undefined ? { status: e.status } : {}), ...(e.code !== undefined ? { code: e.code } : {}), codes: e.codes, retriable: e.retriable, cause: e }) : new RegistryError(msg, { cause: e });
    }
  }
  const warnings = [...plan.warnings, ...list.dropped.map((d) => `dropped attestation ${d.digest}`)];
  return { digest: list.digest, size: list.size, mediaType: list.mediaType, tags, warnings, copied };
}

export function describeEntry(e: ListEntry): string {
  if (!e.platform) return e.digest;
  return `${formatPlatform(e.platform)} ${e.digest}`;
}
