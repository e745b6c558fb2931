// The main example end to end: the Flask nodeinfo service, whose Dockerfile installs Flask with
// apt-get from Debian's mirror inside a RUN step under QEMU, built FROM the Debian base that
// provisioning seeds. Each platform's container, started from the one list, answers with its own
// machine.
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, requireInfrastructure, ROOT, skopeoRaw, uniqueRepo } from '../helpers/env.js';
import { freePort } from '../helpers/registries.js';
import { platformOf, type Index } from '../helpers/oci.js';

beforeAll(requireInfrastructure);

/** Start the list's image for one platform on a loopback port and ask it GET /. */
async function ask(ref: string, platform: string): Promise<{ hostname: string; machine: string }> {
  const port = await freePort();
  const name = `cb-it-nodeinfo-${port}`;
  const run = await execa('docker', ['run', '-d', '--rm', '--name', name, '--network', 'host', '-e', `PORT=${port}`, '--pull', 'always', '--platform', platform, ref], { reject: false, timeout: 180_000 });
  if (run.exitCode !== 0) throw new Error(`docker run ${platform}: ${run.stderr}`);
  try {
    // Python and Flask start slowly under QEMU: poll for up to 2 minutes.
    const until = Date.now() + 120_000;
    for (;;) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/`);
        if (r.ok) return (await r.json()) as { hostname: string; machine: string };
      } catch {
        // not listening yet
      }
      if (Date.now() > until) {
        const logs = await execa('docker', ['logs', name], { reject: false });
        throw new Error(`${platform}: no answer on port ${port} within 120 s: ${logs.stdout}${logs.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await execa('docker', ['rm', '-f', name], { reject: false, timeout: 60_000 });
  }
}

describe('the Flask example (README command 1)', () => {
  it('builds on 3 platforms with apt-get under QEMU, and each container answers GET / with its own machine', async () => {
    const repo = uniqueRepo('nodeinfo');
    const r = await cli(['run', '--config', join(ROOT, 'platforms.json'), '--image', repo, '--network', 'host']);
    expect(r.exitCode, r.stderr).toBe(0);
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    expect(list.manifests.map((m) => platformOf(m.platform))).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);
    const answers = await Promise.all([
      ask(`${repo}:multiarch`, 'linux/amd64'),
      ask(`${repo}:multiarch`, 'linux/arm/v7'),
      ask(`${repo}:multiarch`, 'linux/arm64'),
    ]);
    expect(answers.map((a) => a.machine)).toEqual(['x86_64', 'armv7l', 'aarch64']);
    for (const a of answers) expect(a.hostname).toMatch(/\S/);
  });
});
