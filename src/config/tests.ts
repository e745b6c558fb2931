// The test gate's tests, as platforms.json `test` (and `platforms[].test`) and `--test` give them:
// a command run inside the built image, an HTTP request to the image started as itself, or a
// Dockerfile stage built for the platform. Parsed here, once; every error names the field.
import { UsageError } from '../errors.js';
import { escapeControl } from '../util/text.js';
import { z, type Infer } from '../util/zod.js';

const Env = z.record(z.string(), z.pipe(z.union([z.string(), z.number(), z.boolean()]), z.transform(String)));
const Timeout = z.optional(z.union([z.string(), z.number()]));
const TestNetwork = z.optional(z.literal(['none', 'host'], { error: 'must be none or host' }));

export const TestSchema = z.union(
  [
    z.strictObject({ name: z.optional(z.string()), run: z.array(z.string()).check(z.minLength(1, { error: 'must name a command, e.g. ["python3", "-c", "import flask"]' })), env: z._default(Env, {}), timeout: Timeout, network: TestNetwork }),
    z.strictObject({
      name: z.optional(z.string()),
      http: z.strictObject({
        port: z.number().check(z.int()),
        path: z._default(z.string(), '/'),
        status: z._default(z.number().check(z.int()), 200),
        expect: z.optional(z.strictObject({ json: z.optional(z.record(z.string(), z.unknown())), contains: z.optional(z.string()) })),
      }),
      env: z._default(Env, {}),
      timeout: Timeout,
    }),
    z.strictObject({ name: z.optional(z.string()), target: z.string() }),
  ],
  { error: 'a test is {"run": [...]}, {"http": {"port": N, ...}} or {"target": "STAGE"}' },
);
export type TestInput = Infer<typeof TestSchema>;

interface Common {
  /** As shown in the view, the report and JUnit: the given name, else one made from the test. */
  readonly name: string;
  readonly timeoutMs: number;
}
export type PlatformTest =
  | (Common & { readonly kind: 'run'; readonly argv: readonly string[]; readonly env: Readonly<Record<string, string>>; readonly network: 'none' | 'host' })
  | (Common & { readonly kind: 'http'; readonly port: number; readonly path: string; readonly status: number; readonly expectJson?: Readonly<Record<string, unknown>>; readonly expectContains?: string; readonly env: Readonly<Record<string, string>> })
  | (Common & { readonly kind: 'target'; readonly target: string });

export const DEFAULT_TEST_TIMEOUT_MS = 60_000;

/** "60s", "2m", "500ms", or seconds as a number. */
export function parseDuration(v: string | number | undefined, where: string): number {
  if (v === undefined) return DEFAULT_TEST_TIMEOUT_MS;
  if (typeof v === 'number' && v > 0) return Math.round(v * 1000);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v).trim());
  if (!m || Number(m[1]) <= 0) throw new UsageError(`${where} ${escapeControl(String(v))}: expected a duration such as 60s, 2m or 500ms`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

const short = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}…` : s);

/** A parsed test input, with its defaults. */
export function toTest(t: TestInput, where: string): PlatformTest {
  if ('run' in t) {
    return { kind: 'run', name: t.name ?? short(`run ${t.run.join(' ')}`), argv: t.run, env: t.env, network: t.network ?? 'none', timeoutMs: parseDuration(t.timeout, `${where}.timeout`) };
  }
  if ('http' in t) {
    const h = t.http;
    if (h.port < 1 || h.port > 65535) throw new UsageError(`${where}.http.port ${h.port}: expected a port from 1 to 65535`);
    return {
      kind: 'http',
      name: t.name ?? short(`http GET :${h.port}${h.path} → ${h.status}`),
      port: h.port,
      path: h.path.startsWith('/') ? h.path : `/${h.path}`,
      status: h.status,
      ...(h.expect?.json ? { expectJson: h.expect.json } : {}),
      ...(h.expect?.contains !== undefined ? { expectContains: h.expect.contains } : {}),
      env: t.env,
      timeoutMs: parseDuration(t.timeout, `${where}.timeout`),
    };
  }
  return { kind: 'target', name: t.name ?? `target ${t.target}`, target: t.target, timeoutMs: 6 * 60 * 60_000 };
}

/**
 * `--test VALUE`: a test as JSON (`{"run": [...]}` …), or a shell command line run with `sh -c`
 * inside the image (`--test 'python3 -c "import flask"'`).
 */
export function parseTestFlag(value: string, where = '--test'): PlatformTest {
  const text = value.trim();
  if (text.startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${where} ${escapeControl(text.slice(0, 200))}: not valid JSON (${(e as Error).message})`);
    }
    const parsed = TestSchema.safeParse(raw);
    if (!parsed.success) throw new UsageError(`${where}: ${parsed.error.issues[0]?.message ?? 'not a test'}; a test is {"run": [...]}, {"http": {"port": N, ...}} or {"target": "STAGE"}`);
    return toTest(parsed.data, where);
  }
  if (text === '') throw new UsageError(`${where}: empty; give a command, e.g. --test 'python3 -c "import flask"', or a JSON test`);
  return toTest({ run: ['sh', '-c', text], env: {} }, where);
}
