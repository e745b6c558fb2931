// While the builds run, each platform's base image layers are read from the registry into the
// layer cache, so the registry proof after the push reads only what the build added. The base is
// what the Dockerfile's target stage starts from (docker/dockerfile.ts), resolved for the
// platform. Quiet and best-effort: a base it cannot name or read is simply read later, by the
// proof. Not for Docker Hub, whose pull limit counts each manifest GET (the build made its own).
import { readFileSync } from 'node:fs';
import { baseImage } from '../docker/dockerfile.js';
import { DOCKER_HUB, manifestReference, parseReference, type ImageRef } from '../oci/reference.js';
import { isAttestation } from '../oci/types.js';
import { normalizeLenient, samePlatform, type Platform } from '../platform/platform.js';
import { RegistryClient } from '../registry/client.js';
import type { LayerCache } from '../verify/layer-cache.js';
import { readAhead } from '../verify/layers.js';
import type { PlatformPlan } from './plan.js';

/** The base image of a plan's build, when the Dockerfile names one this can read. */
export function planBase(plan: Pick<PlatformPlan, 'target' | 'build'>): ImageRef | undefined {
  let text: string;
  try {
    text = readFileSync(plan.build.dockerfile, 'utf8');
  } catch {
    return undefined;
  }
  const ref = baseImage(text, {
    platform: plan.target.platform,
    ...(plan.build.buildArgs ? { buildArgs: plan.build.buildArgs } : {}),
    ...(plan.build.target ? { target: plan.build.target } : {}),
    contexts: plan.build.inputs.buildContexts.map((c) => c.name),
  });
  if (ref === undefined) return undefined;
  try {
    const r = parseReference(ref, 'base image');
    return r.registry === DOCKER_HUB ? undefined : r;
  } catch {
    return undefined;
  }
}

/** The base's layers for one platform into the cache; how many were read (0 on any failure). */
async function readBase(client: RegistryClient, base: ImageRef, platform: Platform, cache: LayerCache, signal: AbortSignal): Promise<number> {
  try {
    let m = await client.manifest(base.registry, base.repository, manifestReference(base));
    if (m.kind === 'index') {
      const entry = m.index.manifests.find((d) => !isAttestation(d) && d.platform !== undefined && samePlatform(normalizeLenient(d.platform), platform));
      if (!entry || signal.aborted) return 0;
      m = await client.manifest(base.registry, base.repository, entry.digest);
      if (m.kind !== 'image') return 0;
    }
    if (signal.aborted) return 0;
    return await readAhead(client, base.registry, base.repository, m.manifest.layers, cache, signal);
  } catch {
    return 0;
  }
}

/**
 * Every plan's base read ahead at once (each base and platform once). Off with
 * CROSSBUILD_READ_AHEAD=off. Never fails; stops when `signal` does. Its requests go through a
 * client of their own, with the run's credentials and settings but no retries (so no retry
 * lines: a base only the builder reaches, through its own mirror, is the proof's to read).
 */
export async function readBasesAhead(client: RegistryClient, plans: readonly Pick<PlatformPlan, 'target' | 'build'>[], cache: LayerCache, signal: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (env.CROSSBUILD_READ_AHEAD === 'off') return 0;
  const seen = new Set<string>();
  const wanted: { base: ImageRef; platform: Platform }[] = [];
  for (const plan of plans) {
    const base = planBase(plan);
    if (!base) continue;
    const key = `${base.registry}/${base.repository}@${manifestReference(base)} ${JSON.stringify(plan.target.platform)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    wanted.push({ base, platform: plan.target.platform });
  }
  if (wanted.length === 0) return 0;
  const { onRetry: _quiet, signal: theirs, ...settings } = client.transport.opts;
  const own = new RegistryClient({ ...settings, credentials: client.credentials, attempts: 1, signal: theirs ? AbortSignal.any([theirs, signal]) : signal });
  try {
    return (await Promise.all(wanted.map((w) => readBase(own, w.base, w.platform, cache, signal)))).reduce((a, b) => a + b, 0);
  } finally {
    await own.close();
  }
}
