// Running one test of the gate against one platform's image, under QEMU where it is emulated:
// a command (exit 0 = pass), an HTTP request to the image started as itself, or a Dockerfile
// stage built for the platform. Every container gets a time limit and is always removed.
import { request } from 'node:http';
import { createServer } from 'node:net';
import type { Docker } from '../docker/docker.js';
import { formatPlatform, type Platform } from '../platform/platform.js';
import { scrub } from '../util/secrets.js';
import { sleep } from '../util/retry.js';
import type { PlatformTest } from '../config/tests.js';

export interface TestResult {
  readonly name: string;
  readonly kind: PlatformTest['kind'];
  readonly platform: string;
  readonly verdict: 'pass' | 'fail';
  readonly seconds: number;
  /** Why it failed, in one line. */
  readonly reason?: string;
  /** The last lines of what it printed (and, for HTTP, what the service answered). */
  readonly output?: string;
}

export interface TestContext {
  readonly docker: Docker;
  /** The image to test: the run's own image by ID, or a published one by digest. */
  readonly image: string;
  readonly platform: Platform;
  /** What `uname -m` prints there: `$UNAME` in a test stands for it. */
  readonly machines: readonly string[];
  /** QEMU settings the platform needs (QEMU_CPU for ARMv6/v5). */
  readonly qemuEnv: Readonly<Record<string, string>>;
  /** Pull the image when missing (a published one). */
  readonly pull: boolean;
  /** Does the engine have a bridge network to publish ports on (else the service gets the host's)? */
  readonly engineHasBridge: boolean | undefined;
  /** Build this Dockerfile stage for the platform: ok, or the tail of the build log. */
  readonly buildTarget?: (target: string) => Promise<{ ok: boolean; tail: string }>;
}

const tail = (text: string, lines = 20) => scrub(text).trimEnd().split('\n').slice(-lines).join('\n');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n <= 1024 * 1024) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Does `actual` hold every key of `expected` with that value ($UNAME: any of the platform's machines)? */
export function matchesJson(expected: unknown, actual: unknown, machines: readonly string[]): string | undefined {
  if (expected === '$UNAME') return typeof actual === 'string' && machines.includes(actual) ? undefined : `expected ${machines.join(' or ')}, got ${JSON.stringify(actual)}`;
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return `expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const why = matchesJson(v, (actual as Record<string, unknown>)[k], machines);
      if (why) return `${k}: ${why}`;
    }
    return undefined;
  }
  return JSON.stringify(expected) === JSON.stringify(actual) ? undefined : `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

/** `$UNAME` and `$PORT` in a test's environment. */
function expand(env: Readonly<Record<string, string>>, vars: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(/\$(UNAME|PORT)\b/g, (_m, n: string) => vars[n] ?? '')]));
}

export async function runTest(test: PlatformTest, ctx: TestContext): Promise<TestResult> {
  const started = Date.now();
  const base = { name: test.name, kind: test.kind, platform: formatPlatform(ctx.platform) };
  const done = (verdict: 'pass' | 'fail', extra: { reason?: string; output?: string } = {}): TestResult => ({ ...base, verdict, seconds: Math.round((Date.now() - started) / 100) / 10, ...extra });
  if (test.kind === 'target') {
    if (!ctx.buildTarget) return done('fail', { reason: 'a target test needs the build (not available when verifying a published image)' });
    const b = await ctx.buildTarget(test.target);
    return b.ok ? done('pass') : done('fail', { reason: `stage ${test.target} failed to build for ${base.platform}`, output: tail(b.tail) });
  }
  const vars = { UNAME: ctx.machines[0] ?? '' };
  if (test.kind === 'run') {
    const [entrypoint, ...args] = test.argv;
    const r = await ctx.docker.runOnce({ image: ctx.image, platform: ctx.platform, entrypoint: entrypoint!, args, env: { ...ctx.qemuEnv, ...expand(test.env, vars) }, network: test.network, pull: ctx.pull ? 'missing' : 'never' }, test.timeoutMs, 'crossbuild-test');
    const output = tail(`${r.stdout}${r.stderr ? `\n${r.stderr}` : ''}`);
    if (r.timedOut) return done('fail', { reason: `did not finish within ${Math.round(test.timeoutMs / 1000)}s; container removed`, output });
    return r.exitCode === 0 ? done('pass', { output }) : done('fail', { reason: `exited ${r.exitCode ?? 'abnormally'}`, output });
  }
  // HTTP: the image as its own entrypoint. On a bridge the port is published to a free host port;
  // on an engine without one the service shares the host's network on a free port, told by $PORT.
  const bridge = ctx.engineHasBridge !== false;
  const listen = bridge ? test.port : await freePort();
  const env = expand(Object.fromEntries(Object.entries(test.env).map(([k, v]) => [k, !bridge && v === String(test.port) ? '$PORT' : v])), { ...vars, PORT: String(listen) });
  let service;
  try {
    service = await ctx.docker.start({ image: ctx.image, platform: ctx.platform, args: [], env: { ...ctx.qemuEnv, ...env }, network: bridge ? 'bridge' : 'host', ...(bridge ? { publish: [test.port] } : {}), pull: ctx.pull ? 'missing' : 'never' });
  } catch (e) {
    return done('fail', { reason: `could not start: ${(e as Error).message.split('\n').pop()}` });
  }
  try {
    const hostPort = bridge ? await service.hostPort(test.port) : listen;
    if (hostPort === undefined) return done('fail', { reason: `port ${test.port} was not published`, output: tail(await service.logs()) });
    const deadline = started + test.timeoutMs;
    let last = '';
    for (;;) {
      if (Date.now() > deadline) return done('fail', { reason: `no answer on port ${test.port} within ${Math.round(test.timeoutMs / 1000)}s (${last}); container removed`, output: tail(await service.logs()) });
      if (!(await service.running())) return done('fail', { reason: `the service exited before answering on port ${test.port}`, output: tail(await service.logs()) });
      let res: { status: number; body: string };
      try {
        res = await get(hostPort, test.path, Math.max(1000, Math.min(10_000, deadline - Date.now())));
      } catch (e) {
        last = (e as Error).message;
        await sleep(500);
        continue;
      }
      const output = tail(`GET ${test.path} → ${res.status}\n${res.body}`);
      if (res.status !== test.status) return done('fail', { reason: `GET ${test.path} answered ${res.status}, expected ${test.status}`, output });
      if (test.expectContains !== undefined && !res.body.includes(test.expectContains)) return done('fail', { reason: `the body does not contain ${JSON.stringify(test.expectContains)}`, output });
      if (test.expectJson) {
        let json: unknown;
        try {
          json = JSON.parse(res.body);
        } catch {
          return done('fail', { reason: 'the body is not JSON', output });
        }
        const why = matchesJson(test.expectJson, json, ctx.machines);
        if (why) return done('fail', { reason: `the JSON body does not match: ${why}`, output });
      }
      return done('pass', { output });
    }
  } finally {
    await service.remove();
  }
}
