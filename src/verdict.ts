// Verdicts of verification checks, shared by `run`, `verify`, the reports and the Markdown
// summary. A leaf module: it imports nothing, so anything may depend on it.

export type Verdict = 'pass' | 'fail' | 'warn' | 'skip';

export interface CheckResult {
  readonly check: 'coverage' | 'metadata' | 'binaries' | 'runtime' | 'tests' | 'signature' | 'attestation';
  readonly verdict: Verdict;
  readonly evidence: string;
}

export function worst(results: readonly CheckResult[]): Verdict {
  if (results.some((r) => r.verdict === 'fail')) return 'fail';
  if (results.some((r) => r.verdict === 'warn')) return 'warn';
  if (results.length > 0 && results.every((r) => r.verdict === 'skip')) return 'skip';
  return 'pass';
}
