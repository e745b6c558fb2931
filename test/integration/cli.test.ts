// The CLI as a user meets it: usage and config errors exit 2 with the file, field and what is valid.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli } from '../helpers/env.js';

const dir = scratchDir('cb-cli-');
const cfg = (name: string, body: unknown) => {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(body));
  return f;
};

describe('crossbuild CLI', () => {
  it('prints its version and help with exit codes', async () => {
    const v = await cli(['--version']);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const h = await cli(['run', '--help']);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toMatch(/Exit codes:/);
    expect(h.stdout).toMatch(/--platform <platform>/);
  });

  it('exits 2 for an unknown platform in platforms.json, naming file and field', async () => {
    const f = cfg('bad-platform.json', { image: 'localhost:5000/x', platforms: [{ platform: 'linux/armv9', suffix: 'a' }] });
    const r = await cli(['run', '--config', f]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${f}: platforms[0].platform: unknown architecture "armv9"`);
  });

  it('exits 2 for a bad --platform flag and an unknown flag', async () => {
    const f = cfg('ok.json', { image: 'localhost:5000/x', platforms: [{ platform: 'linux/arm64', suffix: 'a' }] });
    const r = await cli(['run', '--config', f, '--platform', 'linux/arm/v12']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--platform linux\/arm\/v12: variant "v12" is not valid for architecture arm \(valid: v5, v6, v7, v8\)/);
    const u = await cli(['run', '--frobnicate']);
    expect(u.exitCode).toBe(2);
    expect(u.stderr).toMatch(/unknown option '--frobnicate'/);
  });

  it('exits 2 for a missing config file and a bad image reference', async () => {
    const r = await cli(['run', '--config', join(dir, 'absent.json')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/absent\.json: cannot read: ENOENT/);
    const f = cfg('ok2.json', { image: 'localhost:5000/x', platforms: [{ platform: 'linux/arm64', suffix: 'a' }] });
    const b = await cli(['run', '--config', f, '--image', 'localhost:5000/Bad Name']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/--image: invalid reference/);
  });
});
