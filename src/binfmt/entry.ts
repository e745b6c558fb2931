// Parsing /proc/sys/fs/binfmt_misc/<name> files. Pure: fixtures in test/fixtures/binfmt are real.

export interface BinfmtEntry {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  /** Flag letters as the kernel prints them, e.g. "POCF". */
  readonly flags: string;
  readonly offset: number;
  /** Magic handlers only. */
  readonly magic?: Buffer;
  readonly mask?: Buffer;
  /** Extension handlers only. */
  readonly extension?: string;
}

/**
 * Entry file format (fs/binfmt_misc.c entry_status):
 *   enabled|disabled
 *   interpreter /usr/bin/qemu-aarch64-static
 *   flags: POCF
 *   offset 0
 *   magic 7f454c46...
 *   mask ffffffff...
 * or `extension .jar` instead of offset/magic/mask.
 */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const first = lines[0];
  if (first !== 'enabled' && first !== 'disabled') {
    throw new Error(`binfmt_misc entry ${name}: first line is "${first ?? ''}", expected enabled or disabled`);
  }
  let interpreter = '';
  let flags = '';
  let offset = 0;
  let magic: Buffer | undefined;
  let mask: Buffer | undefined;
  let extension: string | undefined;
  for (const line of lines.slice(1)) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1).trim();
    switch (key) {
      case 'interpreter':
        interpreter = value;
        break;
      case 'flags:':
        flags = value;
        break;
      case 'offset':
        offset = Number.parseInt(value, 10);
        break;
      case 'magic':
        magic = Buffer.from(value, 'hex');
        break;
      case 'mask':
        mask = Buffer.from(value, 'hex');
        break;
      case 'extension':
        extension = value;
        break;
      default:
        break; // newer kernels may add fields; ignore what we don't need
    }
  }
  return {
    name,
    enabled: first === 'enabled',
    interpreter,
    flags,
    offset,
    ...(magic ? { magic } : {}),
    ...(mask ? { mask } : {}),
    ...(extension !== undefined ? { extension } : {}),
  };
}

/** Does this handler claim a file that starts with `header`? Bytes past the header are not judged. */
export function entryMatches(entry: BinfmtEntry, header: Buffer): boolean {
  if (!entry.magic) return false;
  let compared = 0;
  for (let i = 0; i < entry.magic.length; i++) {
    const pos = entry.offset + i;
    if (pos >= header.length) break;
    const m = entry.mask ? (entry.mask[i] ?? 0xff) : 0xff;
    if ((header[pos]! & m) !== (entry.magic[i]! & m)) return false;
    compared++;
  }
  return compared > 0;
}

/** Escape bytes as the register file wants them: \xHH for every byte, so ':' and newlines are safe. */
export function escapeBytes(b: Buffer): string {
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
}
