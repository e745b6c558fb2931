// Progress without a terminal: one plain, timestamped line per state change (no ANSI codes),
// for CI logs and pipes. On a terminal listr2 draws the same events as live tasks.

import { printable } from '../util/text.js';

export type ProgressState = 'warning' | 'note' | 'step' | 'started' | 'building' | 'output' | 'verifying' | 'testing' | 'tested' | 'pushing' | 'verifying-registry' | 'done' | 'failed' | 'skipped';

export interface ProgressEvent {
  readonly at: Date;
  /** "preflight", "binfmt", "list" or a platform such as linux/arm/v7. */
  readonly scope: string;
  readonly state: ProgressState;
  readonly message: string;
}

export type Verbosity = 'quiet' | 'normal' | 'verbose';

/** Format one event as a line, or undefined when this verbosity hides it. */
export function formatEvent(e: ProgressEvent, verbosity: Verbosity): string | undefined {
  if ((e.state === 'output' || e.state === 'step') && verbosity !== 'verbose') return undefined;
  if (verbosity === 'quiet' && e.state !== 'failed') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = printable(e.message.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\r\n]+/g, ' ').trim());
  return `${e.at.toISOString()} [${e.scope}] ${e.state}${clean ? `: ${clean}` : ''}`;
}

export function lineRenderer(write: (line: string) => void, verbosity: Verbosity): (e: ProgressEvent) => void {
  return (e) => {
    const line = formatEvent(e, verbosity);
    if (line !== undefined) write(`${line}\n`);
  };
}
