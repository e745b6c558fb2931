// Which Docker engine the integration tests drive: CROSSBUILD_TEST_ENGINE (default docker-28c,
// Docker 28 + buildx on the containerd image store, what users run), or `host` for Debian 12's
// 20.10. Its DOCKER_HOST, DOCKER_CONFIG and CLI (ci/engines.sh env) go into this process's
// environment, so every `crossbuild` and `docker` the tests start talks to it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';

const root = resolve(__dirname, '..', '..');
export const TEST_ENGINE = process.env.CROSSBUILD_TEST_ENGINE ?? 'docker-28c';

/** `export K=V` lines of `ci/engines.sh env NAME`, as an environment. */
export function engineEnv(name: string): Record<string, string> {
  const out = execFileSync('bash', [join(root, 'ci', 'engines.sh'), 'env', name], { encoding: 'utf8' });
  const env: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    // %q quoting of these paths is plain (no spaces or quotes in them).
    if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return env;
}

Object.assign(process.env, engineEnv(TEST_ENGINE));

const scratch: string[] = [];
/** A temporary directory (prefix as for mkdtemp), removed when the test file's tests are done. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// Each test file gets a layer cache of its own: what one file's verifies learnt cannot answer
// for another file's fault injections (a trickled or cut layer must really be read).
// Removed when the file's tests are done. Named, not made: crossbuild makes it when it first keeps
// something, so a file whose tests are all filtered out (`-t`, which runs no afterAll) leaves nothing.
if (!process.env.CROSSBUILD_LAYER_CACHE) {
  const dir = join(tmpdir(), `cb-layer-cache-${randomBytes(6).toString('hex')}`);
  scratch.push(dir);
  process.env.CROSSBUILD_LAYER_CACHE = dir;
  afterAll(() => {
    if (process.env.CROSSBUILD_LAYER_CACHE === dir) delete process.env.CROSSBUILD_LAYER_CACHE;
  });
}
