// Where a build's time goes: its steps, read from the builder's own output as it streams.
// BuildKit's plain progress names each vertex (`#5 [2/3] RUN …`) and ends it with `#5 DONE 12.3s`
// or `#5 CACHED`; the classic builder prints `Step 2/5 : RUN …` and `---> Using cache`, so its
// step times are the gaps between those lines as they arrive.

export interface BuildStep {
  readonly name: string;
  readonly seconds: number;
  readonly cached: boolean;
  /** A RUN step on a platform the host runs under QEMU. */
  readonly emulated: boolean;
}

interface Open {
  name: string;
  started: number;
  seconds?: number;
  cached: boolean;
  /** BuildKit: its result was downloaded (a layer transfer under the step), and */
  loaded?: boolean;
  /** … its command printed something (it ran). */
  ran?: boolean;
}

const BK_NAME = /^#(\d+) (\[[^\]]*\] .*)$/;
const BK_DONE = /^#(\d+) DONE (\d+(?:\.\d+)?)s$/;
const BK_CACHED = /^#(\d+) CACHED$/;
const BK_LOADED = /^#(\d+) (?:sha256:[0-9a-f]{64} .*done|extracting sha256:[0-9a-f]{64}.*)$/;
const BK_OUTPUT = /^#(\d+) \d+\.\d+ /;
const CLASSIC_STEP = /^Step (\d+\/\d+) : (.*)$/;
const CLASSIC_CACHE = /^ ---> Using cache$/;
const CLASSIC_END = /^(Successfully built|Successfully tagged| ---> [0-9a-f]{12}$)/;

export class StepTracker {
  private readonly bk = new Map<string, Open>();
  private readonly order: Open[] = [];
  private classic: Open | undefined;

  constructor(private readonly emulated: boolean) {}

  /** Feed one output line; `now` in ms. Returns the step now running, if this line started one. */
  feed(line: string, now: number): string | undefined {
    let m = BK_NAME.exec(line);
    if (m) {
      if (!this.bk.has(m[1]!)) {
        const s: Open = { name: m[2]!, started: now, cached: false };
        this.bk.set(m[1]!, s);
        this.order.push(s);
        return s.name;
      }
      return undefined;
    }
    m = BK_DONE.exec(line);
    if (m) {
      const s = this.bk.get(m[1]!);
      if (s) s.seconds = Number(m[2]);
      return undefined;
    }
    m = BK_CACHED.exec(line);
    if (m) {
      const s = this.bk.get(m[1]!);
      if (s) {
        s.cached = true;
        s.seconds = 0;
      }
      return undefined;
    }
    m = BK_LOADED.exec(line);
    if (m) {
      const s = this.bk.get(m[1]!);
      if (s) s.loaded = true;
      return undefined;
    }
    m = BK_OUTPUT.exec(line);
    if (m) {
      const s = this.bk.get(m[1]!);
      if (s) s.ran = true;
      return undefined;
    }
    m = CLASSIC_STEP.exec(line);
    if (m) {
      this.closeClassic(now);
      this.classic = { name: `[${m[1]}] ${m[2]}`, started: now, cached: false };
      this.order.push(this.classic);
      return this.classic.name;
    }
    if (this.classic && CLASSIC_CACHE.test(line)) this.classic.cached = true;
    else if (this.classic && /^Successfully (built|tagged)/.test(line)) this.closeClassic(now);
    else if (this.classic && CLASSIC_END.test(line) && this.classic.cached) this.closeClassic(now);
    return undefined;
  }

  private closeClassic(now: number): void {
    if (this.classic && this.classic.seconds === undefined) this.classic.seconds = this.classic.cached ? 0 : Math.round((now - this.classic.started) / 100) / 10;
    this.classic = undefined;
  }

  /** Every step that ran or came from the cache (BuildKit's internal vertices left out). */
  steps(now: number): BuildStep[] {
    this.closeClassic(now);
    return this.order
      .filter((s) => !/^\[internal\]/.test(s.name))
      .map((s) => {
        // A step (not a FROM, whose pull is no cache) whose layer was only downloaded came from a cache.
        const cached = s.cached || (s.loaded === true && s.ran !== true && !/\]\s+FROM\s/.test(s.name));
        return {
          name: s.name,
          seconds: cached ? (s.seconds ?? 0) : (s.seconds ?? Math.round((now - s.started) / 100) / 10),
          cached,
          emulated: this.emulated && !cached && /\]\s+RUN\s/.test(s.name),
        };
      });
  }
}

/** The slowest steps first, at most `n`. */
export function slowest(steps: readonly BuildStep[], n = 5): BuildStep[] {
  return [...steps].sort((a, b) => b.seconds - a.seconds).slice(0, n);
}

/**
 * When one emulated step takes most of a platform's build, the usual cure: build natively for the
 * target with the build platform's tools instead of emulating them.
 */
export function emulationAdvice(platform: string, buildSeconds: number, steps: readonly BuildStep[]): string | undefined {
  const worst = steps.filter((s) => s.emulated).sort((a, b) => b.seconds - a.seconds)[0];
  if (!worst || buildSeconds < 5 || worst.seconds < buildSeconds / 2) return undefined;
  return `${platform}: ${worst.name.slice(0, 80)} took ${worst.seconds}s of ${buildSeconds}s under QEMU emulation; cross-compile instead (FROM --platform=$BUILDPLATFORM for the build stage, ARG TARGETARCH / TARGETVARIANT to pick the target, then copy the result into the final stage)`;
}
