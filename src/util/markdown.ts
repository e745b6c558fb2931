// The bits of Markdown the run and verify summaries share.
import type { Verdict } from '../verdict.js';

/** Text safe inside a table cell. */
export function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function verdictIcon(v: Verdict): string {
  return { pass: '✅', fail: '❌', warn: '⚠️', skip: '⏭️' }[v];
}
