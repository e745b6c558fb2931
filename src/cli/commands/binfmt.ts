// `crossbuild binfmt status|install|uninstall`.
import { ARCHES } from '../../platform/arch.js';
import { makePlatform, type Platform } from '../../platform/platform.js';
import { BINFMT_DIR, binfmtMounted, findEmulator, installHandlers, platformStatus, readHandlers, uninstallHandlers } from '../../binfmt/binfmt.js';
import { platformsFromFlags, printJson } from '../common.js';
import { OK, REPORTED, type Outcome } from '../failure.js';

function allPlatforms(): Platform[] {
  return Object.values(ARCHES).map((a) => makePlatform('linux', a.name, a.defaultVariant));
}

export async function binfmtStatus(opts: { platform?: string[]; json?: boolean }): Promise<Outcome> {
  const platforms = platformsFromFlags(opts.platform) ?? allPlatforms();
  const mounted = await binfmtMounted();
  const handlers = mounted ? await readHandlers() : [];
  const rows = platforms.map((p) => platformStatus(p, handlers));
  if (opts.json) {
    printJson({
      mounted,
      dir: BINFMT_DIR,
      platforms: rows.map((r) => ({ platform: r.platform, state: r.state, detail: r.detail, handler: r.handler ? { name: r.handler.name, interpreter: r.handler.interpreter, flags: r.handler.flags, enabled: r.handler.enabled } : null })),
    });
  } else {
    if (!mounted) process.stdout.write(`${BINFMT_DIR} is not mounted (as root: mount -t binfmt_misc binfmt_misc ${BINFMT_DIR})\n`);
    const w = Math.max(...rows.map((r) => r.platform.length));
    for (const r of rows) process.stdout.write(`${r.platform.padEnd(w)}  ${r.state.padEnd(13)}  ${r.detail}\n`);
  }
  return rows.some((r) => r.state !== 'ok' && r.state !== 'native') ? REPORTED : OK;
}

export async function binfmtInstall(opts: { platform?: string[] }): Promise<Outcome> {
  let platforms = platformsFromFlags(opts.platform);
  if (!platforms) {
    platforms = [];
    for (const p of allPlatforms()) if (await findEmulator(p)) platforms.push(p);
  }
  for (const r of await installHandlers(platforms)) {
    process.stdout.write(`${r.platform}: ${r.action}${r.name ? ` ${r.name}` : ''} — ${r.detail}\n`);
  }
  return OK;
}

export async function binfmtUninstall(opts: { platform: string[] }): Promise<Outcome> {
  const platforms = platformsFromFlags(opts.platform)!;
  for (const r of await uninstallHandlers(platforms)) {
    process.stdout.write(`${r.platform}: ${r.removed.length ? `removed ${r.removed.join(', ')}` : 'no qemu handler'}\n`);
  }
  return OK;
}
