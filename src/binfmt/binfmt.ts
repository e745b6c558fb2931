// binfmt_misc handlers for QEMU: status, install (F flag, never clobbering a working handler),
// uninstall. ELF headers for each platform come from the arch table, so the magic/mask we register
// and the check of existing handlers use the same definition.
import { constants } from 'node:fs';
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { CrossbuildError, UsageError } from '../errors.js';
import { archInfo } from '../platform/platform.js';
import { formatPlatform, isNative, type Platform } from '../platform/platform.js';
import { entryMatches, escapeBytes, parseBinfmtEntry, type BinfmtEntry } from './entry.js';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** First 20 bytes of an executable ELF file for this platform (ident, e_type, e_machine). */
export function elfHeaderFor(p: Platform): Buffer {
  const a = archInfo(p.architecture);
  if (!a) throw new UsageError(`no ELF definition for architecture ${p.architecture}`);
  const h = Buffer.alloc(20);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = a.elfClass === 64 ? 2 : 1;
  h[5] = a.endian === 'le' ? 1 : 2;
  h[6] = 1;
  if (a.endian === 'le') {
    h.writeUInt16LE(2, 16);
    h.writeUInt16LE(a.elfMachine, 18);
  } else {
    h.writeUInt16BE(2, 16);
    h.writeUInt16BE(a.elfMachine, 18);
  }
  return h;
}

/** Mask: ignore EI_OSABI/ABIVERSION padding, accept ET_EXEC and ET_DYN. */
export function elfMaskFor(p: Platform): Buffer {
  const a = archInfo(p.architecture)!;
  const m = Buffer.alloc(20, 0xff);
  m[7] = 0x00;
  if (a.endian === 'le') m[16] = 0xfe;
  else m[17] = 0xfe;
  return m;
}

export async function readHandlers(dir = BINFMT_DIR): Promise<BinfmtEntry[]> {
  const names = (await readdir(dir)).filter((n) => n !== 'register' && n !== 'status');
  const out: BinfmtEntry[] = [];
  for (const n of names.sort()) {
    try {
      out.push(parseBinfmtEntry(n, await readFile(`${dir}/${n}`, 'utf8')));
    } catch {
      // removed between readdir and read
    }
  }
  return out;
}

export async function binfmtMounted(dir = BINFMT_DIR): Promise<boolean> {
  try {
    await access(`${dir}/register`, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export type HandlerState = 'native' | 'ok' | 'missing' | 'disabled' | 'no-fix-binary';

export interface PlatformBinfmtStatus {
  readonly platform: string;
  readonly state: HandlerState;
  /** The handler the kernel would use, if any. */
  readonly handler?: BinfmtEntry;
  readonly detail: string;
}

export function platformStatus(p: Platform, handlers: readonly BinfmtEntry[]): PlatformBinfmtStatus {
  const platform = formatPlatform(p);
  if (isNative(p)) return { platform, state: 'native', detail: 'runs natively on this host' };
  const header = elfHeaderFor(p);
  const matching = handlers.filter((h) => entryMatches(h, header));
  const good = matching.find((h) => h.enabled && h.flags.includes('F'));
  if (good) return { platform, state: 'ok', handler: good, detail: `${good.name}: ${good.interpreter} (flags ${good.flags})` };
  const enabled = matching.find((h) => h.enabled);
  if (enabled) {
    return { platform, state: 'no-fix-binary', handler: enabled, detail: `${enabled.name} has no F flag: containers can't see ${enabled.interpreter}` };
  }
  if (matching[0]) return { platform, state: 'disabled', handler: matching[0], detail: `${matching[0].name} is disabled` };
  return { platform, state: 'missing', detail: 'no handler registered' };
}

/** Where the host's qemu-user-static for this arch lives, and which flags it supports. */
/** `qemu-ARCH-static --version`'s first line, or undefined when it is not installed. */
export async function qemuVersion(p: Platform): Promise<{ bin: string; version?: string }> {
  const bin = `qemu-${archInfo(p.architecture)?.qemu ?? p.architecture}-static`;
  const v = await execa(bin, ['--version'], { reject: false, timeout: 10_000 });
  return v.exitCode === 0 ? { bin, version: v.stdout.split('\n')[0]!.trim() } : { bin };
}

export async function findEmulator(p: Platform): Promise<{ interpreter: string; flags: string } | undefined> {
  const q = archInfo(p.architecture)!.qemu;
  // Debian's -binfmt-P link makes qemu preserve argv[0] (the P flag).
  for (const [path, flags] of [
    [`/usr/libexec/qemu-binfmt/${q}-binfmt-P`, 'POCF'],
    [`/usr/bin/qemu-${q}-static`, 'OCF'],
    [`/usr/local/bin/qemu-${q}-static`, 'OCF'],
  ] as const) {
    try {
      await access(path, constants.X_OK);
      return { interpreter: path, flags };
    } catch {
      // try the next
    }
  }
  return undefined;
}

export function registrationLine(name: string, p: Platform, interpreter: string, flags: string): string {
  return `:${name}:M:0:${escapeBytes(elfHeaderFor(p))}:${escapeBytes(elfMaskFor(p))}:${interpreter}:${flags}`;
}

async function ensureMounted(dir: string): Promise<void> {
  if (await binfmtMounted(dir)) return;
  if (process.getuid?.() !== 0) {
    throw new CrossbuildError(`${dir} is not mounted`, { hint: `as root: mount -t binfmt_misc binfmt_misc ${dir}` });
  }
  const r = await execa('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], { reject: false, timeout: 10_000 });
  if (r.exitCode !== 0) throw new CrossbuildError(`cannot mount binfmt_misc on ${dir}: ${r.stderr}`, { hint: 'does this kernel have CONFIG_BINFMT_MISC?' });
}

export interface InstallResult {
  readonly platform: string;
  readonly action: 'native' | 'kept' | 'registered';
  readonly name?: string;
  readonly detail: string;
}

/** Make sure every platform can run: register a handler where none works, keep those that do. */
export async function installHandlers(platforms: readonly Platform[], dir = BINFMT_DIR): Promise<InstallResult[]> {
  const foreign = platforms.filter((p) => !isNative(p));
  if (foreign.length === 0) return platforms.map((p) => ({ platform: formatPlatform(p), action: 'native', detail: 'runs natively' }));
  await ensureMounted(dir);
  const results: InstallResult[] = [];
  for (const p of platforms) {
    const handlers = await readHandlers(dir);
    const st = platformStatus(p, handlers);
    if (st.state === 'native') {
      results.push({ platform: st.platform, action: 'native', detail: st.detail });
      continue;
    }
    if (st.state === 'ok') {
      results.push({ platform: st.platform, action: 'kept', name: st.handler!.name, detail: st.detail });
      continue;
    }
    if (process.getuid?.() !== 0) {
      throw new CrossbuildError(`no working binfmt_misc handler for ${st.platform} (${st.detail}), and registering one needs root`, {
        hint: `run \`sudo crossbuild binfmt install --platform ${st.platform}\``,
      });
    }
    const emu = await findEmulator(p);
    if (!emu) {
      const q = archInfo(p.architecture)!.qemu;
      throw new CrossbuildError(`no QEMU emulator for ${st.platform}: /usr/bin/qemu-${q}-static not found`, { hint: 'install it: apt-get install qemu-user-static' });
    }
    // Never overwrite someone else's handler: a new one registered later takes precedence.
    const base = `qemu-${archInfo(p.architecture)!.qemu}`;
    const taken = new Set(handlers.map((h) => h.name));
    const name = taken.has(base) ? `crossbuild-${base}` : base;
    if (taken.has(name)) {
      throw new CrossbuildError(`binfmt_misc handler ${name} exists but does not work for ${st.platform} (${st.detail})`, {
        hint: `remove it with \`crossbuild binfmt uninstall --platform ${st.platform}\` and install again`,
      });
    }
    try {
      await writeFile(`${dir}/register`, registrationLine(name, p, emu.interpreter, emu.flags));
    } catch (e) {
      throw new CrossbuildError(`registering ${name} for ${st.platform} failed: ${(e as Error).message}`);
    }
    results.push({ platform: st.platform, action: 'registered', name, detail: `${emu.interpreter} (flags ${emu.flags})` });
  }
  return results;
}

/** Remove every QEMU handler that claims these platforms. */
export async function uninstallHandlers(platforms: readonly Platform[], dir = BINFMT_DIR): Promise<{ platform: string; removed: string[] }[]> {
  if (!(await binfmtMounted(dir))) return platforms.map((p) => ({ platform: formatPlatform(p), removed: [] }));
  const out: { platform: string; removed: string[] }[] = [];
  for (const p of platforms) {
    const header = elfHeaderFor(p);
    const removed: string[] = [];
    for (const h of await readHandlers(dir)) {
      if (!entryMatches(h, header) || !/qemu/.test(h.interpreter)) continue;
      try {
        await writeFile(`${dir}/${h.name}`, '-1');
        removed.push(h.name);
      } catch (e) {
        throw new CrossbuildError(`removing binfmt_misc handler ${h.name} failed: ${(e as Error).message}`, { hint: 'this needs root' });
      }
    }
    out.push({ platform: formatPlatform(p), removed });
  }
  return out;
}
