import { describe, expect, it } from 'vitest';
import { formatEvent } from '../../src/pipeline/progress.js';
import { toMarkdown, toReport } from '../../src/pipeline/report.js';
import type { RunResult } from '../../src/pipeline/run.js';

const at = new Date('2026-11-26T10:00:00.000Z');

describe('plain progress lines', () => {
  it('one timestamped line per event, ANSI and newlines removed', () => {
    expect(formatEvent({ at, scope: 'linux/arm64', state: 'building', message: 'log: /tmp/x.log' }, 'normal')).toBe('2026-11-26T10:00:00.000Z [linux/arm64] building: log: /tmp/x.log');
    expect(formatEvent({ at, scope: 'linux/arm64', state: 'failed', message: '\u001b[31mred\u001b[0m\nsecond' }, 'normal')).toBe('2026-11-26T10:00:00.000Z [linux/arm64] failed: red second');
  });
  it('build output only when verbose; only failures when quiet', () => {
    const out = { at, scope: 'linux/arm64', state: 'output' as const, message: '#5 RUN uname -m' };
    expect(formatEvent(out, 'normal')).toBeUndefined();
    expect(formatEvent(out, 'verbose')).toMatch(/output: #5 RUN uname -m$/);
    expect(formatEvent({ at, scope: 'list', state: 'done', message: 'x' }, 'quiet')).toBeUndefined();
    expect(formatEvent({ at, scope: 'linux/arm64', state: 'failed', message: 'x' }, 'quiet')).toMatch(/failed: x$/);
  });
});

describe('reports', () => {
  const result: RunResult = {
    ok: false,
    logDir: '/tmp/logs',
    warnings: [],
    notes: [],
    startedAt: '2026-11-26T10:00:00.000Z',
    finishedAt: '2026-11-26T10:01:00.000Z',
    error: 'not writing the list: linux/arm64 failed at build',
    platforms: [
      { platform: 'linux/amd64', suffix: 'amd64', ref: 'r/app:t-amd64', ok: true, digest: `sha256:${'a'.repeat(64)}`, buildSeconds: 1.5, log: '/tmp/logs/amd64.log', checks: [{ check: 'metadata', verdict: 'pass', evidence: 'image config says linux/amd64' }, { check: 'runtime', verdict: 'pass', evidence: 'uname -m printed x86_64' }] },
      { platform: 'linux/arm64', suffix: 'arm64', ref: 'r/app:t-arm64', ok: false, failedAt: 'build', error: 'build of linux/arm64 failed (exit 1)\nstep 3 | boom', log: '/tmp/logs/arm64.log', checks: [] },
    ],
  };
  it('JSON carries per-platform digests, timings, verdicts and versions', () => {
    const r = toReport(result, '0.1.0');
    expect(r).toMatchObject({ crossbuild: '0.1.0', ok: false, list: null, engine: null });
    expect(r.platforms[0]).toMatchObject({ platform: 'linux/amd64', tag: 'r/app:t-amd64', digest: `sha256:${'a'.repeat(64)}`, buildSeconds: 1.5 });
    expect(r.platforms[1]).toMatchObject({ ok: false, failedAt: 'build', digest: null });
  });
  it('Markdown says no list was written and shows each failure, table cells escaped', () => {
    const md = toMarkdown(toReport(result, '0.1.0'));
    expect(md).toMatch(/\*\*No manifest list was written\.\*\*/);
    expect(md).toMatch(/^\| linux\/amd64 \| `r\/app:t-amd64` \| `sha256:aaaaaaaaaaaa…` \| 1\.5 \| — \| ✅ image config says linux\/amd64 \| — \| ✅ uname -m printed x86_64 \|$/m);
    expect(md).toMatch(/^\| linux\/arm64 ❌ build \|/m);
    expect(md).toMatch(/<summary>linux\/arm64: build of linux\/arm64 failed \(exit 1\)<\/summary>/);
    expect(md).toContain('step 3 | boom');
  });
});
