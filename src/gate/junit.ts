// JUnit XML for CI test reporters (GitHub's and GitLab's both read it): one testsuite per
// platform, one testcase per test, failures with the reason and the output.
import type { TestResult } from './run.js';

const esc = (s: string) =>
  s
    // XML 1.0 cannot carry most control characters at all, even escaped.
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');

export function toJunit(results: readonly TestResult[], suite: string): string {
  const byPlatform = new Map<string, TestResult[]>();
  for (const r of results) byPlatform.set(r.platform, [...(byPlatform.get(r.platform) ?? []), r]);
  const total = results.length;
  const failures = results.filter((r) => r.verdict === 'fail').length;
  const time = results.reduce((a, r) => a + r.seconds, 0).toFixed(1);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="${esc(suite)}" tests="${total}" failures="${failures}" time="${time}">`];
  for (const [platform, rs] of byPlatform) {
    out.push(`  <testsuite name="${esc(platform)}" tests="${rs.length}" failures="${rs.filter((r) => r.verdict === 'fail').length}" time="${rs.reduce((a, r) => a + r.seconds, 0).toFixed(1)}">`);
    for (const r of rs) {
      const head = `    <testcase classname="${esc(platform)}" name="${esc(r.name)}" time="${r.seconds.toFixed(1)}"`;
      if (r.verdict === 'pass') out.push(`${head}>${r.output ? `<system-out>${esc(r.output)}</system-out>` : ''}</testcase>`);
      else out.push(`${head}>`, `      <failure message="${esc(r.reason ?? 'failed')}" type="${r.kind}">${esc(r.output ?? '')}</failure>`, '    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
