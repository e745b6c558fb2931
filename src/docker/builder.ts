// Which builder runs a build (buildx, the engine's BuildKit through a pre-23 CLI, or the classic
// builder) and what is known about it. A leaf: build argv, cache plans and the engine all use it.

export type BuilderKind = 'buildx' | 'buildkit' | 'classic';

export interface Builder {
  readonly kind: BuilderKind;
  /** The docker CLI binary that drives it. */
  readonly cli: string;
  readonly env: Readonly<Record<string, string>>;
  readonly clientVersion: string;
  /** `docker buildx version`'s version (v0.12.1), buildx only. */
  readonly buildxVersion?: string;
  /** The current buildx builder's driver (docker, docker-container, …), buildx only. */
  readonly driver?: string;
  /** The engine's image store: "containerd", or the graph driver (overlay2). */
  readonly imageStore?: string;
  /** The buildx plugin binary the CLI runs (`docker info`), buildx only: builds run it directly. */
  readonly plugin?: string;
}

/** buildx's docker driver keeps attestations and exports caches only on the containerd image store. */
export function dockerDriverOnClassicStore(b: Builder): boolean {
  return b.kind === 'buildx' && (b.driver ?? 'docker') === 'docker' && b.imageStore !== undefined && b.imageStore !== 'containerd';
}

export function describeBuilder(b: Builder): string {
  if (b.kind === 'buildx') return `buildx ${b.buildxVersion ?? ''} (driver ${b.driver ?? 'unknown'}) via ${b.cli}`.replace(/\s+/g, ' ');
  if (b.kind === 'buildkit') return `the engine's BuildKit via ${b.cli} ${b.clientVersion} (DOCKER_BUILDKIT=1)`;
  return `the classic builder via ${b.cli}${b.clientVersion ? ` ${b.clientVersion}` : ''} (DOCKER_BUILDKIT=0)`;
}

/** buildx's major and minor version, when its version string says them. */
export function buildxVersionOf(b: Builder): { major: number; minor: number } | undefined {
  const m = /v?(\d+)\.(\d+)/.exec(b.buildxVersion ?? '');
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

export function buildxAtLeast(b: Builder, minor: number): boolean {
  const v = buildxVersionOf(b);
  if (!v) return true; // unknown version: let buildx itself say no
  return v.major > 0 || v.minor >= minor;
}

