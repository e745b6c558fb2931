// A small error taxonomy: every error the CLI prints is one of these, and its class decides the
// exit code (2: the user's input is wrong; 1: a build, verification, push or registry step failed).
import { scrub } from './util/secrets.js';

export type ExitCode = 1 | 2;

export class CrossbuildError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode?: ExitCode; hint?: string; cause?: unknown } = {}) {
    super(scrub(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.exitCode = opts.exitCode ?? 1;
    this.hint = opts.hint === undefined ? undefined : scrub(opts.hint);
  }
}

/** Bad flags, bad config, bad references: exit 2. */
export class UsageError extends CrossbuildError {
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, { ...opts, exitCode: 2 });
  }
}

/**
 * A config problem, located by file and field. A flag's value (field `--image`) or a run from
 * flags alone (file '') is named by the flag only: it is not the file's fault.
 */
export class ConfigError extends UsageError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, problem: string, opts: { hint?: string } = {}) {
    const where = file === '' || field.startsWith('-') ? [field] : [file, field];
    super(`${where.filter((w) => w !== '').map((w) => `${w}: `).join('')}${problem}`, opts);
    this.file = file;
    this.field = field;
  }
}

/** An external command failed: carries argv, exit code and the tail of stderr, as execa does. */
export class CommandError extends CrossbuildError {
  readonly command: readonly string[];
  readonly commandExitCode: number | undefined;
  readonly stderr: string;
  constructor(command: readonly string[], exitCode: number | undefined, stderr: string, what?: string) {
    const tail = stderr.trim().split('\n').slice(-8).join('\n');
    const head = what ?? `command failed: ${command.join(' ')}`;
    super(`${head}${exitCode === undefined ? '' : ` (exit ${exitCode})`}${tail ? `\n${tail}` : ''}`);
    this.command = command;
    this.commandExitCode = exitCode;
    this.stderr = scrub(stderr);
  }
}

/**
 * A registry answered with an error, or could not be reached. `retriable` says whether trying the
 * same request again can help (429, 5xx, a dropped connection), for callers and reports.
 */
/** What kind of failure a registry error is, for callers that match on it instead of on words. */
export type RegistryErrorKind = 'not-found' | 'unauthorized' | 'denied' | 'temporary' | 'invalid' | 'other';

function kindOf(status: number | undefined, retriable: boolean): RegistryErrorKind {
  if (status === 404) return 'not-found';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'denied';
  if (retriable || status === 429 || (status !== undefined && status >= 500)) return 'temporary';
  return 'other';
}

export class RegistryError extends CrossbuildError {
  readonly status: number | undefined;
  readonly code: string | undefined;
  /** Every code of the answer's `errors` (a registry may give several, the telling one not first). */
  readonly codes: readonly string[];
  readonly retriable: boolean;
  readonly kind: RegistryErrorKind;
  constructor(
    message: string,
    opts: { status?: number; code?: string; codes?: readonly string[]; retriable?: boolean; kind?: RegistryErrorKind; hint?: string; cause?: unknown } = {},
  ) {
    super(message, { hint: opts.hint, cause: opts.cause, exitCode: 1 });
    this.status = opts.status;
    this.code = opts.code;
    this.codes = opts.codes ?? (opts.code !== undefined ? [opts.code] : []);
    this.retriable = opts.retriable ?? false;
    this.kind = opts.kind ?? kindOf(opts.status, this.retriable);
  }
}

/** The registry refused our credentials (or we had none): tell the user which registry and how to log in. */
export class AuthError extends RegistryError {}

export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof CrossbuildError ? err.exitCode : 1;
}

export function describeError(err: unknown): string {
  if (err instanceof CrossbuildError) {
    return err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
  }
  if (err instanceof Error) return scrub(err.message);
  return scrub(String(err));
}
