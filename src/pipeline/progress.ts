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

/**
 * Plain mode's heartbeat: every `everyMs`, one line per platform still at work, with its state
 * and how long it has been at it, so a long silent build step is never a silent log.
 */
export function heartbeat(write: (line: string) => void, everyMs = 30_000, now = () => Date.now()): { onEvent: (e: ProgressEvent) => void; stop: () => void } {
  const busy = new Map<string, { state: string; since: number }>();
  const timer = setInterval(() => {
    for (const [scope, b] of busy) write(`${new Date(now()).toISOString()} [${scope}] still ${b.state} (${Math.round((now() - b.since) / 1000)}s)\n`);
  }, everyMs);
  timer.unref();
  return {
    onEvent: (e) => {
      if (!e.scope.includes('/')) return; // platforms only
      if (e.state === 'done' || e.state === 'failed') busy.delete(e.scope);
      else if (['building', 'verifying', 'testing', 'pushing', 'verifying-registry'].includes(e.state)) busy.set(e.scope, { state: e.state, since: busy.get(e.scope)?.state === e.state ? busy.get(e.scope)!.since : now() });
    },
    stop: () => clearInterval(timer),
  };
}
