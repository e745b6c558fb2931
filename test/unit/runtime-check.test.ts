// The runtime check's `docker run … uname -m`, through a docker CLI stand-in (a script) that can
// lose the output of the first runs: an empty answer with exit 0 is asked once more.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Docker } from '../../src/docker/docker.js';
import { parsePlatform } from '../../src/platform/platform.js';
import { checkRuntime } from '../../src/verify/checks.js';

const dir = mkdtempSync(join(tmpdir(), 'cb-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = join(dir, 'docker');
// `run` prints nothing for the first $LOSE runs, then the machine; anything else (rm) succeeds.
writeFileSync(cli, '#!/bin/sh\nif [ "$1" = run ]; then\n  n=$(cat "$STATE" 2>/dev/null || echo 0)\n  echo $((n + 1)) > "$STATE"\n  [ "$n" -ge "$LOSE" ] && echo aarch64\nfi\nexit 0\n');
chmodSync(cli, 0o755);

async function check(lose: number) {
  const state = join(dir, `runs-${lose}`);
  const result = await checkRuntime(new Docker(cli, { STATE: state, LOSE: String(lose) }), 'localhost:5000/app@sha256:' + 'a'.repeat(64), parsePlatform('linux/arm64'), { timeoutMs: 10_000 });
  return { result, runs: Number(readFileSync(state, 'utf8')) };
}

describe('uname -m that printed nothing', () => {
  it('is asked once more: a lost answer then the machine passes', async () => {
    expect(await check(1)).toEqual({ result: { check: 'runtime', verdict: 'pass', evidence: 'uname -m printed aarch64' }, runs: 2 });
  });
  it('nothing twice fails, saying so', async () => {
    expect(await check(2)).toEqual({ result: { check: 'runtime', verdict: 'fail', evidence: 'uname -m printed nothing, expected aarch64' }, runs: 2 });
  });
  it('an answer at once is asked once', async () => {
    expect(await check(0)).toEqual({ result: { check: 'runtime', verdict: 'pass', evidence: 'uname -m printed aarch64' }, runs: 1 });
  });
});
