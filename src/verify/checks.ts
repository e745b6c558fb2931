// Verification verdicts shared by `run` and `verify`: each check says pass/fail/skip/warn with the
// evidence a person needs to believe it.
import { formatPlatform, normalizeLenient, samePlatform, expectedUname, type Platform } from '../platform/platform.js';
import type { Docker } from '../docker/docker.js';
import type { ProbeAnswer } from '../docker/probe.js';
import type { CheckResult } from '../verdict.js';

/** The image config's os/architecture/variant must equal the target after normalisation. */
export function checkMetadata(expected: Platform, config: { os: string; architecture: string; variant?: string | undefined }, where = 'image config'): CheckResult {
  const actual = normalizeLenient(config);
  const shown = formatPlatform(config);
  if (samePlatform(expected, actual)) return { check: 'metadata', verdict: 'pass', evidence: `${where} says ${shown}` };
  return { check: 'metadata', verdict: 'fail', evidence: `${where} says ${shown}, expected ${formatPlatform(expected)}` };
}

/** Run `uname -m` inside the image under its platform and compare with what the platform implies. */
export async function checkRuntime(docker: Docker, image: string, platform: Platform, opts: { uname?: string; timeoutMs: number; pull?: boolean }): Promise<CheckResult> {
  const exp = expectedUname(platform, opts.uname);
  const ask = () => docker.runOnce({ image, platform, entrypoint: 'uname', args: ['-m'], env: exp.env, pull: opts.pull === true ? 'missing' : 'never' }, opts.timeoutMs);
  let r = await ask();
  // uname -m always prints its machine: exit 0 with nothing on stdout is output the CLI lost (seen
  // once on Docker 26 under load), so it is asked once more; nothing again still fails.
  if (r.exitCode === 0 && !r.timedOut && r.stdout.trim() === '') r = await ask();
  if (r.timedOut) {
    return { check: 'runtime', verdict: 'fail', evidence: `uname -m did not finish within ${Math.round(opts.timeoutMs / 1000)}s (emulation hung?); container removed` };
  }
  if (r.exitCode !== 0) {
    // Docker's own message, not its closing "Run 'docker run --help'" advice.
    const err = r.stderr.trim().split('\n').filter((l) => l.trim() !== '' && !/^Run 'docker [a-z ]+--help'/.test(l.trim())).pop()?.trim() ?? '';
    if (/executable file not found|no such file or directory/i.test(err) && /uname/.test(err)) {
      return { check: 'runtime', verdict: 'skip', evidence: 'skipped: no uname in image' };
    }
    if (/exec format error/i.test(err)) {
      return { check: 'runtime', verdict: 'fail', evidence: `exec format error: no working binfmt handler for ${formatPlatform(platform)}, or the binaries are for another architecture` };
    }
    return { check: 'runtime', verdict: 'fail', evidence: `uname -m exited ${r.exitCode ?? 'abnormally'}: ${err}` };
  }
  return machineVerdict(r.stdout.trim(), exp.machines);
}

function machineVerdict(machine: string, machines: readonly string[]): CheckResult {
  if (machines.includes(machine)) return { check: 'runtime', verdict: 'pass', evidence: `uname -m printed ${machine}` };
  return { check: 'runtime', verdict: 'fail', evidence: `uname -m printed ${machine || 'nothing'}, expected ${machines.join(' or ')}` };
}

/**
 * The runtime check from the solve's `uname -m` probe (docker/probe.ts), where it answered: what it
 * printed, or a hang at the time limit. Undefined where `docker run` must ask instead.
 */
export function runtimeFromProbe(answer: ProbeAnswer | undefined, platform: Platform, opts: { uname?: string; timeoutMs: number }): CheckResult | undefined {
  if (answer?.kind === 'machine') return machineVerdict(answer.machine, expectedUname(platform, opts.uname).machines);
  if (answer?.kind === 'unfinished') return { check: 'runtime', verdict: 'fail', evidence: `uname -m did not finish within ${Math.round(opts.timeoutMs / 1000)}s (emulation hung?); its build step cancelled` };
  return undefined;
}
