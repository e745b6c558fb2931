// binfmt_misc handlers on the real kernel: uninstall, status, install with the F flag, idempotence.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/env.js';

// riscv64 is used by no other test, so removing its handler disturbs nothing running in parallel.
const P = 'linux/riscv64';

describe('crossbuild binfmt', () => {
  it('uninstalls, reports missing, installs with F, keeps a working handler', async () => {
    const un = await cli(['binfmt', 'uninstall', '--platform', P]);
    expect(un.exitCode).toBe(0);

    const missing = await cli(['binfmt', 'status', '--platform', P, '--json']);
    expect(missing.exitCode).toBe(1);
    expect(JSON.parse(missing.stdout).platforms[0].state).toBe('missing');

    const inst = await cli(['binfmt', 'install', '--platform', P]);
    expect(inst.exitCode).toBe(0);
    expect(inst.stdout).toMatch(/linux\/riscv64: registered qemu-riscv64/);
    const entry = readFileSync('/proc/sys/fs/binfmt_misc/qemu-riscv64', 'utf8');
    expect(entry).toMatch(/^enabled$/m);
    expect(entry).toMatch(/^flags: .*F/m);

    const ok = await cli(['binfmt', 'status', '--platform', P, '--json']);
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.stdout).platforms[0]).toMatchObject({ platform: P, state: 'ok', handler: { name: 'qemu-riscv64', enabled: true } });

    const again = await cli(['binfmt', 'install', '--platform', P]);
    expect(again.stdout).toMatch(/linux\/riscv64: kept qemu-riscv64/);
  });

  it('does not clobber a handler without F: registers its own beside it', async () => {
    await cli(['binfmt', 'uninstall', '--platform', P]);
    // A handler as binfmt-support registers it without F (the interpreter must exist in the container).
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/proc/sys/fs/binfmt_misc/register', ':qemu-riscv64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xf3\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-riscv64-static:');
    const st = await cli(['binfmt', 'status', '--platform', P, '--json']);
    expect(JSON.parse(st.stdout).platforms[0].state).toBe('no-fix-binary');
    const inst = await cli(['binfmt', 'install', '--platform', P]);
    expect(inst.stdout).toMatch(/registered crossbuild-qemu-riscv64/);
    expect(readFileSync('/proc/sys/fs/binfmt_misc/qemu-riscv64', 'utf8')).toMatch(/^flags: $/m);
    const after = await cli(['binfmt', 'status', '--platform', P, '--json']);
    expect(JSON.parse(after.stdout).platforms[0]).toMatchObject({ state: 'ok', handler: { name: 'crossbuild-qemu-riscv64' } });
    // Leave the host as the first test does: one working handler.
    await cli(['binfmt', 'uninstall', '--platform', P]);
    expect((await cli(['binfmt', 'install', '--platform', P])).exitCode).toBe(0);
  });
});
