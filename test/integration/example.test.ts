// The main example end to end: the Flask nodeinfo service, whose Dockerfile installs Flask with
// apt-get from Debian's mirror inside a RUN step under QEMU, built FROM the Debian base that
// provisioning seeds. Each platform's container, started from the one list, answers with its own
// machine.
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, DOCKER, requireInfrastructure, ROOT, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { freePort } from '../helpers/registries.js';
import { imageEntries, platformOf, type Index } from '../helpers/oci.js';

beforeAll(requireInfrastructure);

/**
 * Start the list's image for one platform on a loopback port. One at a time: `docker run --pull
 * always --platform` of one tag moves the engine's local tag, so concurrent starts would race.
 */
async function start(ref: string, platform: string): Promise<{ name: string; port: number }> {
  const port = await freePort();
  const name = `cb-it-nodeinfo-${port}`;
  const run = await execa(DOCKER, ['run', '-d', '--rm', '--name', name, '--network', 'host', '-e', `PORT=${port}`, '--pull', 'always', '--platform', platform, ref], { reject: false, timeout: 180_000 });
  if (run.exitCode !== 0) throw new Error(`docker run ${platform}: ${run.stderr}`);
  return { name, port };
}

/** Ask a started container GET /, polling while Python and Flask start under QEMU (up to 2 minutes). */
async function ask(c: { name: string; port: number }): Promise<{ hostname: string; machine: string }> {
  try {
    const until = Date.now() + 120_000;
    for (;;) {
      try {
        const r = await fetch(`http://127.0.0.1:${c.port}/`);
        if (r.ok) return (await r.json()) as { hostname: string; machine: string };
      } catch {
        // not listening yet
      }
      if (Date.now() > until) {
        const logs = await execa(DOCKER, ['logs', c.name], { reject: false });
        throw new Error(`${c.name}: no answer on port ${c.port} within 120 s: ${logs.stdout}${logs.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await execa(DOCKER, ['rm', '-f', c.name], { reject: false, timeout: 60_000 });
  }
}

describe('the Flask example (README command 1)', () => {
  it('builds on 3 platforms with apt-get under QEMU, tests each (HTTP under QEMU) before pushing, and each container answers GET / with its own machine', async () => {
    const repo = uniqueRepo('nodeinfo');
    const r = await cli(['run', '--config', join(ROOT, 'platforms.json'), '--image', repo, '--network', 'host', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    // The test gate ran before anything was pushed: each platform's service answered with its own machine.
    const run = JSON.parse(r.stdout) as { platforms: { platform: string; tests: { name: string; verdict: string; output: string }[] }[] };
    for (const p of run.platforms) {
      expect(p.tests, p.platform).toHaveLength(1);
      expect(p.tests[0]).toMatchObject({ name: 'GET / answers with its own machine', verdict: 'pass' });
      expect(JSON.parse(p.tests[0]!.output.split('\n').slice(1).join('\n')).machine).toBe({ 'linux/amd64': 'x86_64', 'linux/arm/v7': 'armv7l', 'linux/arm64': 'aarch64' }[p.platform]);
    }
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(imageEntries(list.manifests).map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    const started = [];
    for (const p of ['linux/amd64', 'linux/arm/v7', 'linux/arm64']) started.push(await start(`${repo}:multiarch`, p));
    const answers = await Promise.all(started.map(ask));
    expect(answers.map((a) => a.machine)).toEqual(['x86_64', 'armv7l', 'aarch64']);
    for (const a of answers) expect(a.hostname).toMatch(/\S/);

    // The whole Debian userland of every platform passes: every ELF file, loader and library.
    const v = await cli(['verify', `${repo}:multiarch`, '--static', '--json']);
    expect(v.exitCode, v.stdout).toBe(0);
    const report = JSON.parse(v.stdout) as { platforms: { platform: string; files: { elfChecked: number; mismatches: number } }[] };
    for (const p of report.platforms) {
      expect(p.files.mismatches, p.platform).toBe(0);
      expect(p.files.elfChecked, p.platform).toBeGreaterThan(100);
    }
  });
});
