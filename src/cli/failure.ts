// How every command ends on an error: one line on stderr (with the hint, scrubbed) and the exit
// code its class implies. Used by main() for what commands throw, and by commands that report a
// failure after printing their results.
import { CrossbuildError, describeError, exitCodeOf, type ExitCode } from '../errors.js';
import { printable } from '../util/text.js';

/** An error that is not one of ours, named by the command it happened in. */
export function wrapUnknown(err: unknown, command: string): unknown {
  if (err instanceof CrossbuildError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CrossbuildError(`${command ? `${command}: ` : ''}${message}`, { cause: err });
}

export function printFailure(err: unknown): ExitCode {
  // Whatever the error quotes (a tag from platforms.json, a registry's answer) is shown as text.
  process.stderr.write(`crossbuild: ${printable(describeError(err), { multiline: true })}\n`);
  return exitCodeOf(err);
}
