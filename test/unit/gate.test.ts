// The test gate's pure parts: test specs from platforms.json and --test, durations, the JSON
// match with $UNAME, and the JUnit XML it writes.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { toJunit } from '../../src/gate/junit.js';
import { matchesJson, type TestResult } from '../../src/gate/run.js';
import { parseDuration, parseTestFlag, TestSchema, toTest } from '../../src/config/tests.js';

describe('test specs', () => {
  it('a command line runs with sh -c; JSON gives any kind, with defaults', () => {
    expect(parseTestFlag('python3 -c "import flask"')).toMatchObject({ kind: 'run', argv: ['sh', '-c', 'python3 -c "import flask"'], network: 'none', timeoutMs: 60_000 });
    expect(parseTestFlag('{"http": {"port": 8080}, "env": {"PORT": 8080}, "timeout": "2m"}')).toMatchObject({ kind: 'http', port: 8080, path: '/', status: 200, env: { PORT: '8080' }, timeoutMs: 120_000, name: 'http GET :8080/ → 200' });
    expect(parseTestFlag('{"target": "test", "name": "pytest"}')).toMatchObject({ kind: 'target', target: 'test', name: 'pytest' });
    expect(parseTestFlag(`{"run": ["${'x'.repeat(80)}"]}`).name).toMatch(/^run x{53}…$/);
  });
  it('bad tests are usage errors saying what a test is', () => {
    expect(() => parseTestFlag('{"run": []}')).toThrow(UsageError);
    expect(() => parseTestFlag('{"sh": "x"}')).toThrow(/a test is \{"run": \[\.\.\.\]\}, \{"http": \{"port": N, \.\.\.\}\} or \{"target": "STAGE"\}/);
    expect(() => parseTestFlag('{not json')).toThrow(/--test \{not json: not valid JSON/);
    expect(() => parseTestFlag('  ')).toThrow(/--test: empty/);
    expect(() => toTest(TestSchema.parse({ http: { port: 0 } }), 'test[0]')).toThrow('test[0].http.port 0: expected a port from 1 to 65535');
  });
  it('durations: 60s, 2m, 500ms, or seconds', () => {
    expect([parseDuration('60s', 't'), parseDuration('2m', 't'), parseDuration('500ms', 't'), parseDuration(5, 't'), parseDuration(undefined, 't')]).toEqual([60_000, 120_000, 500, 5000, 60_000]);
    expect(() => parseDuration('soon', 'test[0].timeout')).toThrow('test[0].timeout soon: expected a duration such as 60s, 2m or 500ms');
  });
});

describe('the JSON match', () => {
  it('every expected key, $UNAME standing for any of the platform machines', () => {
    expect(matchesJson({ machine: '$UNAME' }, { machine: 'armv7l', hostname: 'x' }, ['armv7l'])).toBeUndefined();
    expect(matchesJson({ machine: '$UNAME' }, { machine: 'x86_64' }, ['aarch64'])).toBe('machine: expected aarch64, got "x86_64"');
    expect(matchesJson({ a: { b: [1, 2] } }, { a: { b: [1, 2], c: 3 } }, [])).toBeUndefined();
    expect(matchesJson({ a: 1 }, [1], [])).toBe('expected an object, got [1]');
  });
});

describe('JUnit XML', () => {
  it('one suite per platform, one case per test, failures with reason and output, escaped', () => {
    const r = (platform: string, verdict: 'pass' | 'fail', extra: Partial<TestResult> = {}): TestResult => ({ name: 'GET / <ok>', kind: 'http', platform, verdict, seconds: 1.5, ...extra });
    const xml = toJunit([r('linux/amd64', 'pass', { output: 'a & b' }), r('linux/arm/v7', 'fail', { reason: 'answered "500"', output: 'boom\u001b[0m' })], 'crossbuild run');
    expect(xml).toContain('<testsuites name="crossbuild run" tests="2" failures="1" time="3.0">');
    expect(xml).toContain('<testcase classname="linux/amd64" name="GET / &lt;ok&gt;" time="1.5"><system-out>a &amp; b</system-out></testcase>');
    expect(xml).toContain('<failure message="answered &quot;500&quot;" type="http">boom[0m</failure>');
    expect(xml.match(/<testsuite /g)).toHaveLength(2);
  });
});
