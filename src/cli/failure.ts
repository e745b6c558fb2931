// How every command ends: it returns one Outcome (or throws), and settle() — called in one place,
// main's `exits` — prints what is left to say and gives the exit code: 0; the error's own code
// (1, or 2 for usage and configuration) with its one line and hint; 1 when the command's output
// already said what failed (a verify report, doctor's FAIL lines); 128 + the signal's number.
import { CrossbuildError, describeError, exitCodeOf } from '../errors.js';
import { printable } from '../util/text.js';

export type Outcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'failed'; readonly error: unknown }
  /** The command's own output named every failure: exit 1, nothing more printed. */
  | { readonly kind: 'reported' }
  /** Stopped by a signal; `done` says what was cleaned up. */
  | { readonly kind: 'interrupted'; readonly signal: NodeJS.Signals; readonly done?: string };

export const OK: Outcome = { kind: 'ok' };
export const REPORTED: Outcome = { kind: 'reported' };
export const failed = (error: unknown): Outcome => ({ kind: 'failed', error });

/** An error that is not one of ours, named by the command it happened in. */
export function wrapUnknown(err: unknown, command: string): unknown {
  if (err instanceof CrossbuildError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CrossbuildError(`${command ? `${command}: ` : ''}${message}`, { cause: err });
}

export function printFailure(err: unknown): number {
  // Whatever the error quotes (a tag from platforms.json, a registry's answer) is shown as text.
  process.stderr.write(`crossbuild: ${printable(describeError(err), { multiline: true })}\n`);
  return exitCodeOf(err);
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/** Print what the outcome still has to say; its exit code. */
export function settle(o: Outcome): number {
  switch (o.kind) {
    case 'ok':
      return 0;
    case 'reported':
      return 1;
    case 'failed':
      return printFailure(o.error);
    case 'interrupted':
      process.stderr.write(`crossbuild: interrupted by ${o.signal}${o.done ? `; ${o.done}` : ''}\n`);
      return 128 + (SIGNALS[o.signal] ?? 1);
  }
}
