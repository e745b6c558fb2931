// The one retry loop: attempts, exponential backoff with jitter, Retry-After, a total budget, and
// an abort signal that ends the wait at once. The transport (every registry request and body
// read) and `docker push` use it; what is worth retrying is the caller's to decide.
import { CrossbuildError } from '../errors.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** The first wait, doubled each retry (±20% jitter so concurrent callers spread out). */
  readonly baseMs: number;
  /** No single wait is longer (a Retry-After of an hour is not honoured as such). */
  readonly maxDelayMs: number;
  /** Retries stop once this much time has gone since the first attempt: a persistent fault is named, not waited out. */
  readonly budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 250, maxDelayMs: 10_000, budgetMs: 30_000 };

export interface RetryNotice {
  /** The attempt about to be made (2 for the first retry). */
  readonly attempt: number;
  readonly attempts: number;
  readonly delayMs: number;
  readonly reason: string;
}

/** Why a failure may pass, and how long the other side asked us to wait; undefined: it will not. */
export type RetryDecision = { readonly reason: string; readonly afterMs?: number } | undefined;

/** The command was interrupted or decided to stop: nothing more is tried. */
export class CancelledError extends CrossbuildError {
  constructor(what: string) {
    super(`${what}: cancelled`);
  }
}

/** Wait `ms`, or less if the signal fires (then reject with CancelledError). */
export function sleep(ms: number, signal?: AbortSignal, what = 'wait'): Promise<void> {
  if (signal?.aborted) return Promise.reject(new CancelledError(what));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new CancelledError(what));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function backoffDelay(p: RetryPolicy, attempt: number, afterMs?: number, random = Math.random): number {
  const exp = p.baseMs * 2 ** (attempt - 1);
  const jittered = exp * (0.8 + 0.4 * random());
  return Math.round(Math.min(p.maxDelayMs, Math.max(afterMs ?? 0, jittered)));
}

export interface RetryOptions {
  readonly policy: RetryPolicy;
  readonly signal?: AbortSignal;
  /** What is being tried, for the cancellation message. */
  readonly what: string;
  /** Is this failure worth another attempt (given the attempt that failed)? */
  readonly decide: (e: unknown, attempt: number) => RetryDecision;
  /** Said before each wait (not after the signal fired: a decision to stop is quiet). */
  readonly onRetry?: (n: RetryNotice) => void;
  /** Awaited before each attempt (a per-host pause another request asked for). */
  readonly before?: () => Promise<void>;
  /** Told about a wait it may share (Retry-After, 429/503): other requests to that host wait too. */
  readonly onPause?: (untilMs: number) => void;
}

/**
 * Run `op` until it succeeds, a failure is not worth retrying, the attempts or the budget are
 * spent, or the signal fires. `op` is told whether its attempt is the last, so an answer worth
 * retrying can be returned as it is (for the caller to report) rather than thrown away.
 */
export async function retry<T>(op: (attempt: number, last: boolean) => Promise<T>, o: RetryOptions): Promise<T> {
  const started = Date.now();
  let outOfTime = false;
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw new CancelledError(o.what);
    await o.before?.();
    const spent = Date.now() - started;
    const last = outOfTime || attempt >= o.policy.attempts || spent + backoffDelay(o.policy, attempt, undefined, () => 0) > o.policy.budgetMs;
    try {
      return await op(attempt, last);
    } catch (e) {
      if (o.signal?.aborted) throw e instanceof CancelledError ? e : new CancelledError(o.what);
      const d = last ? undefined : o.decide(e, attempt);
      if (!d) throw e;
      const delayMs = backoffDelay(o.policy, attempt, d.afterMs);
      if (Date.now() - started + delayMs > o.policy.budgetMs) {
        // No time left for the wait (the attempt itself took it): one more attempt at once, told
        // it is the last, so what it gets is reported as it is — never an internal retry signal.
        outOfTime = true;
        continue;
      }
      if (d.afterMs !== undefined) o.onPause?.(Date.now() + delayMs);
      o.onRetry?.({ attempt: attempt + 1, attempts: o.policy.attempts, delayMs, reason: d.reason });
      await sleep(delayMs, o.signal, o.what);
    }
  }
}
