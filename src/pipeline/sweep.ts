// What a run leaves while it works — its `-cb-<id>` image names, its verification containers, its
// private Docker config (which holds a password) — is removed when it ends. A run killed with
// SIGKILL cannot, so every run claims its id in a marker (with its pid and its engine), and the
// next command on that engine sweeps what runs whose process is gone left behind.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Docker, RUN_LABEL } from '../docker/docker.js';
import { CommandError } from '../errors.js';
import { privateBase } from '../registry/credentials.js';

/** The markers of this user's runs (one folder per user: a folder another user made is not writable). */
export const runMarkers = (): string => join(privateBase(), `crossbuild-runs-${process.getuid?.() ?? 'user'}`);

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

/**
 * What dead runs still have going on this host: their `uname -m` probes (a buildx client waiting on
 * a hung emulator would keep its solve going; stopped, buildx cancels it), found by the run's label
 * in their argv, one pass over /proc for all of them. Linux only; elsewhere nothing is found.
 */
function probesOf(ids: readonly string[]): Map<string, number[]> {
  const found = new Map<string, number[]>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return found;
  }
  const wanted = new Map<string, string>(ids.map((id) => [`${RUN_LABEL}=${id}`, id]));
  for (const pid of pids) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // `docker buildx build …`, or the plugin run by itself (`…/docker-buildx build …`).
      if (!argv.includes('buildx') && !/(^|\/)docker-buildx$/.test(argv[0] ?? '')) continue;
      const id = argv.map((a) => wanted.get(a)).find((x) => x !== undefined);
      if (id !== undefined) found.set(id, [...(found.get(id) ?? []), Number(pid)]);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** SIGTERM each; how many were still there to be told. */
function stop(pids: readonly number[]): number {
  let stopped = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
      stopped++;
    } catch {
      // gone meanwhile
    }
  }
  return stopped;
}

/** The marker's third line: where the run's names are. */
const REPOSITORY_LINE = 'names in ';

/**
 * Mark this run as alive on this engine; the returned function clears the mark when the run ends
 * cleanly. `repository` is where its `-cb-<id>` names are (as `docker image ls` shows it), or ''
 * when it makes none: the sweep then asks the engine for those names alone.
 */
export function claimRun(runId: string, endpoint: string, repository: string): () => void {
  mkdirSync(runMarkers(), { recursive: true, mode: 0o700 });
  const file = join(runMarkers(), runId);
  writeFileSync(file, `${process.pid}\n${endpoint}\n${REPOSITORY_LINE}${repository}\n`, { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/** Docker's reference filter (Go's path.Match) for run `id`'s names in `repository`: `[` (an IPv6 registry) escaped, `*` within the tag. */
export const namePattern = (repository: string, id: string): string => `${repository.replace(/[\\*?[\]]/g, '\\$&')}:*cb-${id}*`;

/** Is this one of the names run `id` gives its images (see runTag in plan.ts)? */
export const isRunName = (name: string, id: string): boolean => name.endsWith(`-cb-${id}`) || name.endsWith(`-cb-${id}-test`) || name.endsWith(`:cb-${id}`) || name.includes(`:cb-${id}-`);

/** A run whose process is gone; `repository` undefined: a marker from before markers named it. */
interface DeadRun {
  readonly id: string;
  readonly ours: boolean;
  readonly repository?: string;
}

/**
 * The image names of these dead runs' engine that may be theirs, in one ask; undefined when the
 * engine does not answer. By their repositories when each marker names one (the containerd store
 * lists all of its images slowly), else — a marker from before, or an engine whose reference filter
 * takes no pattern (Docker 23-24's containerd store: "invalid reference format") — every name.
 */
async function namesOf(docker: Docker, dead: readonly DeadRun[]): Promise<string[] | undefined> {
  const asked = dead.filter((d) => d.repository !== '');
  if (asked.length === 0) return [];
  const every = () => docker.imageNames().catch(() => undefined);
  if (asked.some((d) => d.repository === undefined)) return every();
  try {
    return await docker.imageNames(asked.map((d) => namePattern(d.repository!, d.id)));
  } catch (e) {
    return e instanceof CommandError && /reference/i.test(e.stderr) ? every() : undefined;
  }
}

/** Sweep what dead runs left on this engine and this host; says what went, for a note. */
export async function sweepDeadRuns(docker: Docker): Promise<string[]> {
  let ids: string[];
  try {
    ids = readdirSync(runMarkers()).filter((n) => /^[0-9a-f]{8}$/.test(n));
  } catch {
    return [];
  }
  const here = docker.endpoint();
  const dead: DeadRun[] = [];
  for (const id of ids) {
    let text: string;
    try {
      text = readFileSync(join(runMarkers(), id), 'utf8');
    } catch {
      continue;
    }
    const [pidLine, endpoint, repoLine] = text.split('\n');
    const pid = Number(pidLine!.trim());
    const repository = repoLine?.startsWith(REPOSITORY_LINE) ? repoLine.slice(REPOSITORY_LINE.length) : undefined;
    // A marker without an engine is from before markers named one: any engine may sweep it.
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) dead.push({ id, ours: !endpoint || endpoint === here, ...(repository !== undefined ? { repository } : {}) });
  }
  if (dead.length === 0) return [];
  const out: string[] = [];
  // The engine's side only through the engine the run used, and only while it answers: until
  // then the marker stays for a later command there.
  const names = await namesOf(docker, dead.filter((d) => d.ours));
  const probes = probesOf(dead.map((d) => d.id));
  for (const { id, ours } of dead) {
    // This host's side, whichever engine: its private config (a password) and its solve's OCI layout.
    const configs = readdirSync(privateBase()).filter((n) => n.startsWith(`crossbuild-docker-config-${id}-`));
    for (const c of configs) rmSync(join(privateBase(), c), { recursive: true, force: true });
    for (const l of readdirSync(tmpdir()).filter((n) => n.startsWith(`${LAYOUT_PREFIX}${id}-`))) rmSync(join(tmpdir(), l), { recursive: true, force: true });
    const stopped = stop(probes.get(id) ?? []);
    let containers = 0;
    let tags: string[] = [];
    if (ours && names) {
      try {
        // Containers first: an image a container still uses keeps its only name.
        containers = await docker.removeLabelled(RUN_LABEL, id);
        tags = names.filter((n) => isRunName(n, id));
        for (const t of tags) await docker.untag(t);
        rmSync(join(runMarkers(), id), { force: true });
      } catch {
        // the engine stopped answering: the marker stays
      }
    }
    if (tags.length + containers + configs.length + stopped > 0) out.push(`swept what killed run ${id} left: ${tags.length} image name${tags.length === 1 ? '' : 's'}, ${containers} container${containers === 1 ? '' : 's'}, ${configs.length} private Docker config${configs.length === 1 ? '' : 's'}${stopped > 0 ? ', its uname -m probe (stopped)' : ''}`);
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
  const notes: string[] = [];
  let release = (): void => undefined;
  try {
    release = claimRun(runId, docker.endpoint(), '');
  } catch (e) {
    // Verification goes on; only a SIGKILL's leftovers would then wait for hand removal.
    notes.push(`could not mark this command alive under ${runMarkers()} (${(e as Error).message}): containers a SIGKILL leaves would not be swept`);
  }
  notes.push(...(await sweepDeadRuns(docker).catch(() => [])));
  return { docker, release, notes };
}
