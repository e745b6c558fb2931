// What a run is given and what it yields: options, per-platform results, the run's result. A leaf
// of the pipeline: the stages (platform.ts), the plan (plan.ts) and the run (run.ts) share it.
import type { BuildConfig } from '../config/config.js';
import type { CacheSettings } from '../docker/cache.js';
import type { BuildStep } from '../docker/steps.js';
import type { Builder, BuilderKind, Docker, EngineInfo } from '../docker/docker.js';
import type { CrossbuildError, UsageError } from '../errors.js';
import type { ListKind } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { CheckResult } from '../verdict.js';
import type { BinaryStats } from '../verify/binaries.js';
import type { LayerCache } from '../verify/layer-cache.js';
import type { AttestationEntry } from '../verify/verify.js';
import type { ProgressEvent } from './progress.js';
import type { TestResult } from '../gate/run.js';
import type { Cosign, RegistryAccess } from '../sign/cosign.js';

/** What to build: the matrix, and what the flags add to every platform's build. */
export interface BuildRequest {
  readonly config: BuildConfig;
  readonly extraBuildArgs: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly noCache: boolean;
  /** Registry cache settings from flags; the mode comes from the config (flag > env > file). */
  readonly cache: Omit<CacheSettings, 'mode'>;
  readonly builder?: BuilderKind;
  /** The list's kind; absent: an OCI index when any platform brought attestations (as buildx), else a Docker list. */
  readonly type?: ListKind;
  /** More tags that get the same list (--tag given more than once). */
  readonly extraTags?: readonly string[];
}

/** Where it happens: the engine that builds, the registry it goes to, this run's own name. */
export interface RunPlace {
  readonly docker: Docker;
  readonly client: RegistryClient;
  /** Names this run's local images (runTag); unique per run. */
  readonly runId: string;
  /** Layer facts kept by digest for the registry proof (absent with --no-layer-cache). */
  readonly layerCache?: LayerCache;
}

/** How far it goes and in what order: push, list, tests, signing, limits, the signal. */
export interface RunLifecycle {
  readonly push: boolean;
  /** false (`--no-list`): push the platforms, leave the list to `crossbuild merge`. */
  readonly writeList?: boolean;
  /** --no-test: skip the test gate (the report says so). */
  readonly noTest?: boolean;
  /** --sign: each platform's image and the list signed, with crossbuild's proof attached. */
  readonly sign?: { readonly cosign: Cosign; readonly access: RegistryAccess; readonly version: string };
  readonly concurrency: number;
  readonly verifyTimeoutMs: number;
  /** Set when SIGINT/SIGTERM arrived: nothing more starts, no list is written. */
  readonly interrupted?: () => string | undefined;
}

/** How it is shown. */
export interface RunPresentation {
  /** 'default': listr2 draws on the terminal; 'silent': the caller renders onEvent. */
  readonly renderer: 'default' | 'silent';
  readonly onEvent?: (e: ProgressEvent) => void;
  readonly logDir: string;
}

/** `crossbuild run`'s options, by concern. */
export interface RunOptions {
  readonly build: BuildRequest;
  readonly place: RunPlace;
  readonly lifecycle: RunLifecycle;
  readonly show: RunPresentation;
}

export type Stage = 'build' | 'verify' | 'test' | 'push' | 'registry-verify';

export interface PlatformResult {
  readonly platform: string;
  readonly suffix: string;
  readonly ref: string;
  ok: boolean;
  failedAt?: Stage;
  error?: string;
  checks: CheckResult[];
  /** The platform's image manifest: what the list's entry for it points at. */
  digest?: string;
  size?: number;
  mediaType?: string;
  /** What `docker push` pushed when it was an index of the image and its attestations (the suffixed tag's digest). */
  pushedDigest?: string;
  /** Attestation manifests (provenance, SBOM) of the image, as its pushed index had them. */
  attestations?: AttestationEntry[];
  buildSeconds?: number;
  /** The registry proof's time (every layer's facts, from the layer cache where it had them). */
  proofSeconds?: number;
  /** How this platform's build cache was imported/exported ("none" without --cache). */
  cache?: string;
  /** Every step of the build, with its time and whether it ran emulated or came from the cache. */
  steps?: BuildStep[];
  /** What the registry verification read: files, ELF files, mismatches, excused. */
  files?: BinaryStats;
  /** The build node, when not the local engine. */
  readonly node?: string;
  /** The test gate's results for this platform, in order (absent: no tests, or --no-test). */
  tests?: TestResult[];
  /** Signed, with the proof attestation's predicate type (with --sign). */
  signed?: string;
  /** Seconds from this platform's start to its end (build, proofs, tests, push). */
  seconds?: number;
  readonly log: string;
}

export interface RunResult {
  readonly ok: boolean;
  readonly engine?: EngineInfo;
  readonly builder?: Builder;
  readonly platforms: PlatformResult[];
  list?: { ref: string; digest: string; size: number; mediaType: string; signed?: string; tags?: string[] };
  error?: string;
  /** Preflight found the input itself wrong (a build input the builder lacks): exit 2, not 1. */
  usageError?: UsageError;
  /** The run's own failure as thrown (hint kept), when it was not one platform's: preflight, the registry, the list. */
  failure?: CrossbuildError;
  readonly warnings: string[];
  /** Things worth knowing that are not problems (a first run has no cache yet). */
  readonly notes: string[];
  /** The signal that stopped the run, when one did. */
  interrupted?: string;
  /** --no-test turned the test gate off for platforms that had tests. */
  testsSkipped?: boolean;
  readonly logDir: string;
  readonly startedAt: string;
  finishedAt?: string;
  /** Seconds the whole run took. */
  seconds?: number;
}
