// Image references, normalised as Docker does: "app" is docker.io/library/app:latest.
import { UsageError } from '../errors.js';

export interface ImageRef {
  /** Registry host[:port], e.g. localhost:5000, docker.io. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. library/alpine. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const componentRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagRe = /^[\w][\w.-]{0,127}$/;
const digestRe = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
const domainRe = /^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d+)?$/;

export function isValidTag(tag: string): boolean {
  return tagRe.test(tag);
}

/** Parse a reference; `what` names where it came from for the error ("image", "manifests[2].image"). */
export function parseReference(input: string, what = 'image reference'): ImageRef {
  const bad = (why: string): never => {
    throw new UsageError(`invalid ${what} "${input}": ${why}`, {
      hint: 'expected [registry[:port]/]repository[:tag][@sha256:digest], e.g. localhost:5000/app:1.0',
    });
  };
  const s = input.trim();
  if (s === '') bad('empty');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestRe.test(digest)) bad(`digest "${digest}" is not sha256:<64 hex> or sha512:<128 hex>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagRe.test(tag)) bad(`tag "${tag}" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = first;
      repository = rest.slice(firstSlash + 1);
      if (!domainRe.test(registry)) bad(`registry "${registry}" is not a valid host[:port]`);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (repository === '') bad('no repository');
  for (const c of repository.split('/')) {
    if (!componentRe.test(c)) bad(`repository component "${c}" must be lowercase letters, digits and separators (., _, __, -)`);
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length > 255) bad('repository longer than 255 characters');
  const ref: ImageRef = { registry, repository };
  return { ...ref, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The manifest reference to fetch: the digest if pinned, else the tag, else latest. */
export function manifestReference(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

export function formatReference(ref: ImageRef): string {
  const base = `${ref.registry}/${ref.repository}`;
  return `${base}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * The repository as Docker names it in `docker image ls`: no `docker.io/`, and no `library/` before
 * an official image's one-part name (`docker.io/library/alpine` is `alpine`).
 */
export function familiarRepository(ref: Pick<ImageRef, 'registry' | 'repository'>): string {
  if (ref.registry !== DOCKER_HUB) return `${ref.registry}/${ref.repository}`;
  const rest = ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : undefined;
  return rest !== undefined && !rest.includes('/') ? rest : ref.repository;
}

export function withTag(ref: ImageRef, tag: string): ImageRef {
  if (!tagRe.test(tag)) throw new UsageError(`invalid tag "${tag}": must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  return { registry: ref.registry, repository: ref.repository, tag };
}

export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The token scope for a repository (distribution's `repository:NAME:ACTIONS`). */
export function scope(ref: Pick<ImageRef, 'repository'> | string, actions: 'pull' | 'pull,push'): string {
  return `repository:${typeof ref === 'string' ? ref : ref.repository}:${actions}`;
}

/** A repository without tag or digest (--cache-ref, an image field). */
export function parseRepository(input: string, what: string): ImageRef {
  const ref = parseReference(input, what);
  if (ref.tag !== undefined || ref.digest !== undefined) throw new UsageError(`${what} ${input}: give a repository without a tag or digest`);
  return ref;
}
