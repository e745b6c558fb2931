// What a run leaves while it works — its `-cb-<id>` image names, its verification containers, its
// private Docker config (which holds a password) — is removed when it ends. A run killed with
// SIGKILL cannot, so every run claims its id in a marker (with its pid), and the next run sweeps
// what runs whose process is gone left behind.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Docker, RUN_LABEL } from '../docker/docker.js';
import { privateBase } from '../registry/credentials.js';

const markers = (): string => join(privateBase(), 'crossbuild-runs');

/** A solve's OCI layout folder: `<tmp>/crossbuild-layout-<run id>-XXXXXX`, swept with its run. */
export const LAYOUT_PREFIX = 'crossbuild-layout-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Mark this run as alive; the returned function clears the mark when the run ends cleanly. */
export function claimRun(runId: string): () => void {
  mkdirSync(markers(), { recursive: true, mode: 0o700 });
  const file = join(markers(), runId);
  writeFileSync(file, String(process.pid), { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/** Sweep what dead runs left on this engine and this host; says what went, for a note. */
export async function sweepDeadRuns(docker: Docker): Promise<string[]> {
  let ids: string[];
  try {
    ids = readdirSync(markers()).filter((n) => /^[0-9a-f]{8}$/.test(n));
  } catch {
    return [];
  }
  const dead = ids.filter((id) => {
    const pid = Number(readFileSync(join(markers(), id), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && !alive(pid);
  });
  if (dead.length === 0) return [];
  const out: string[] = [];
  const names = await docker.imageNames();
  for (const id of dead) {
    // Containers first: an image a container still uses keeps its only name.
    const containers = await docker.removeLabelled(RUN_LABEL, id);
    const tags = names.filter((n) => n.endsWith(`-cb-${id}`) || n.endsWith(`:cb-${id}`) || n.includes(`:cb-${id}-`));
    for (const t of tags) await docker.untag(t);
    const configs = readdirSync(privateBase()).filter((n) => n.startsWith(`crossbuild-docker-config-${id}-`));
    for (const c of configs) rmSync(join(privateBase(), c), { recursive: true, force: true });
    // A solve's OCI layout (compressed layers waiting to be pushed).
    for (const l of readdirSync(tmpdir()).filter((n) => n.startsWith(`${LAYOUT_PREFIX}${id}-`))) rmSync(join(tmpdir(), l), { recursive: true, force: true });
    rmSync(join(markers(), id), { force: true });
    if (tags.length + containers + configs.length > 0) out.push(`swept what killed run ${id} left: ${tags.length} image name${tags.length === 1 ? '' : 's'}, ${containers} container${containers === 1 ? '' : 's'}, ${configs.length} private Docker config${configs.length === 1 ? '' : 's'}`);
  }
  return out;
}

/**
 * The engine handle of a command that starts throwaway containers outside a run (verify, merge
 * --runtime): its containers carry an id of its own, claimed while it works, and what dead runs
 * left is swept first — so a verify killed with SIGKILL leaves nothing the next command keeps.
 */
export async function claimedDocker(): Promise<{ docker: Docker; release: () => void; notes: string[] }> {
  const runId = randomBytes(4).toString('hex');
  const docker = new Docker(undefined, {}, [], runId);
  const release = claimRun(runId);
  const notes = await sweepDeadRuns(docker).catch(() => []);
  return { docker, release, notes };
}
