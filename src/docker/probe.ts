// `uname -m` of every platform of a solve's result in one BuildKit solve: `FROM <the run's local
// image>` + `RUN ["uname","-m"]` for all its platforms at once, read from the plain progress, with
// nothing exported and no container to remove (three `docker run` + `docker rm` cost the engine
// ~2.6 s where this costs ~1.1 s; bench/RESULTS.md P3m-probe). Only where the builder resolves FROM from
// the engine's own image store: buildx's docker driver.
import type { Builder } from './builder.js';
import { RUN_LABEL, type Docker } from './docker.js';

/**
 * The index a build's image exporter wrote into the engine under a name, read from its plain
 * progress: `#7 exporting manifest list sha256:…` and `#7 naming to <name> done` in one step. (Not
 * the OCI layout's index: each export carries its own provenance. Its image manifests are not
 * always listed: an exporter that runs second skips the ones the first wrote.)
 */
export class ExportWatcher {
  private readonly steps = new Map<string, { index?: string; names: string[] }>();

  feed(line: string): void {
    const m = /^#(\d+) (?:exporting manifest list (sha256:[0-9a-f]{64})\b|naming to (\S+)(?: [\d.]+s)? done$)/.exec(line.trimEnd());
    if (!m) return;
    const step = this.steps.get(m[1]!) ?? { names: [] };
    this.steps.set(m[1]!, step);
    if (m[3] !== undefined) step.names.push(m[3]);
    else step.index = m[2]!;
  }

  /** The index exported under `name`. */
  exported(name: string): string | undefined {
    for (const s of this.steps.values()) if (s.index !== undefined && s.names.includes(name)) return s.index;
    return undefined;
  }
}

/** The probe's Dockerfile (exec form: no shell needed in the image, as `docker run --entrypoint uname`). */
export function probeDockerfile(image: string): string {
  if (/\s/.test(image)) throw new Error(`not an image reference: ${JSON.stringify(image)}`);
  return `FROM ${image}\nRUN ["uname","-m"]\n`;
}

/**
 * The probe's argv (the Dockerfile comes on stdin, with no context). It carries the run's label so
 * that the next run can find and stop it if this one is killed (see sweep.ts).
 */
export function probeArgv(platforms: readonly string[], runId: string | undefined): string[] {
  return [
    'buildx', 'build', '--no-cache', '--network', 'none', '--platform', platforms.join(','),
    '--progress', 'plain', '--output', 'type=cacheonly',
    ...(runId ? ['--label', `${RUN_LABEL}=${runId}`] : []),
    '-',
  ];
}

/** What the probe said for one platform. */
export type ProbeAnswer =
  /** Its RUN finished on the expected image and printed this. */
  | { readonly kind: 'machine'; readonly machine: string }
  /** Its RUN was still running when the probe was stopped at its time limit. */
  | { readonly kind: 'unfinished' }
  /** Anything else (an error, cancelled by another platform's error, another image): ask `docker run`. */
  | { readonly kind: 'unknown'; readonly why: string };

interface Vertex {
  platform: string;
  step: 'from' | 'run';
  from?: string;
  lines: string[];
  done: boolean;
  error?: string;
}

/** `#9 [linux/arm64 2/2] RUN ["uname","-m"]`; a build of one platform names none (`#5 [2/2] …`). */
const HEADER = /^#(\d+) \[(?:([^\] ]+) )?\d+\/\d+\] (FROM (\S+)|RUN \["uname","-m"\])$/;
const LOG = /^#(\d+) \d+\.\d+ (.*)$/;
const DONE = /^#(\d+) DONE [\d.]+s$/;
const ERROR = /^#(\d+) (ERROR: .*|CANCELED)$/;

/**
 * Each platform's answer from the probe's plain progress: a machine only where its FROM resolved
 * to `digest` (the image proven, not whatever the name pointed at by then), its RUN ended DONE and
 * printed exactly one line.
 */
export function parseProbe(text: string, platforms: readonly string[], digest: string, timedOut: boolean): Map<string, ProbeAnswer> {
  const vertices = new Map<string, Vertex>();
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const h = HEADER.exec(line);
    if (h) {
      const platform = h[2] ?? (platforms.length === 1 ? platforms[0]! : '');
      if (!vertices.has(h[1]!)) vertices.set(h[1]!, { platform, step: h[4] !== undefined ? 'from' : 'run', ...(h[4] !== undefined ? { from: h[4] } : {}), lines: [], done: false });
      continue;
    }
    const d = DONE.exec(line);
    if (d) {
      const v = vertices.get(d[1]!);
      if (v) v.done = true;
      continue;
    }
    const e = ERROR.exec(line);
    if (e) {
      const v = vertices.get(e[1]!);
      if (v) v.error = e[2]!;
      continue;
    }
    const l = LOG.exec(line);
    if (l) vertices.get(l[1]!)?.lines.push(l[2]!);
  }
  const out = new Map<string, ProbeAnswer>();
  for (const p of platforms) {
    const mine = [...vertices.values()].filter((v) => v.platform === p);
    const from = mine.find((v) => v.step === 'from');
    const run = mine.find((v) => v.step === 'run');
    if (!from || !from.from!.endsWith(`@${digest}`)) out.set(p, { kind: 'unknown', why: `its FROM ${from ? `resolved to ${from.from}` : 'is not in the output'}, not ${digest}` });
    // A step that never started is no hang of its own: `docker run` asks with a time limit of its own.
    else if (!run) out.set(p, { kind: 'unknown', why: 'its RUN is not in the output' });
    else if (run.error !== undefined) out.set(p, timedOut && run.error === 'CANCELED' ? { kind: 'unfinished' } : { kind: 'unknown', why: run.error });
    else if (!run.done) out.set(p, timedOut ? { kind: 'unfinished' } : { kind: 'unknown', why: 'its RUN did not finish' });
    else if (run.lines.length !== 1) out.set(p, { kind: 'unknown', why: `its RUN printed ${run.lines.length} lines` });
    else out.set(p, { kind: 'machine', machine: run.lines[0]!.trim() });
  }
  return out;
}

/**
 * Probe `image` (the index `digest` under a local name) for `platforms`: a probe that could not
 * run answers `unknown` for each platform.
 */
export async function unameProbe(docker: Docker, builder: Builder, o: { image: string; digest: string; platforms: readonly string[]; timeoutMs: number }): Promise<Map<string, ProbeAnswer>> {
  // A failed probe keeps the answers it finished: one platform's error cancels the others' steps.
  const r = await docker.buildOnce(builder, probeArgv(o.platforms, docker.runId), probeDockerfile(o.image), o.timeoutMs);
  return parseProbe(r.all, o.platforms, o.digest, r.timedOut);
}
