// The merged filesystem of an image, built from its layers top-down without writing anything to
// disk: the first time a path is seen it is final; whiteouts and opaque markers hide what lower
// layers hold. Paths are normalised inside the image root, so hostile names ("../x", "/abs",
// links pointing out) can't lead anywhere but inside it.
import { posix } from 'node:path';
import type { ElfInfo } from './elf.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface FsEntry {
  readonly type: EntryType;
  /** Symlink target (as written) or hardlink target path (normalised). */
  readonly link?: string;
  readonly size: number;
  readonly mode: number;
  /** Layer index (0 = base). */
  readonly layer: number;
  elf?: ElfInfo;
  /** "#!" interpreter line of a script. */
  shebang?: string;
  /** An ELF-looking file (it starts with \x7fELF) whose header cannot be read: why. */
  malformedElf?: string;
  /** Why its content could not be read as a runtime extracts it (an unsupported sparse format …). */
  readonly unreadable?: string;
}

/** A tar entry of a type the verifier does not know: runtimes refuse to extract it, so it is reported, never read. */
export interface UnknownEntry {
  readonly path: string;
  readonly typeflag: string;
  readonly layer: number;
}

/**
 * A name that needs no normalising: nothing at either end, no "//", no "." or ".." component (a
 * "/." also catches dot-files, which take the careful way).
 */
function plain(name: string): boolean {
  const c0 = name.charCodeAt(0);
  return c0 !== 46 && c0 !== 47 && name.charCodeAt(name.length - 1) !== 47 && !name.includes('//') && !name.includes('/.');
}

/** Normalise a tar path inside the root: no leading "/", no "..", no trailing "/". */
export function normalizeTarPath(name: string): { path: string; escaped: boolean } {
  // Most names are plain ("usr/bin/x"), or plain once Debian's and most rootfs tarballs' "./"
  // comes off the front and a folder's "/" off the end ("./usr/bin/x", "./usr/lib/").
  if (plain(name)) return { path: name, escaped: false };
  if (name.startsWith('./')) {
    const core = name.slice(2, name.endsWith('/') ? -1 : undefined);
    if (plain(core)) return { path: core, escaped: false };
  }
  // Other names without "." or ".." components need only their ends trimmed.
  if (!/(^|\/)\.\.?(\/|$)|\/\//.test(name.replace(/^\.\//, ''))) return { path: name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, ''), escaped: false };
  const n = posix.normalize(`/${name}`);
  // posix.normalize of "/../x" is "/x": escapes are clamped at the root, as a chroot would.
  const rel = posix.normalize(name);
  // Escaped: a relative name that climbs above the root ("..", "../x"; not a file named "..d").
  const escaped = name.split('/').includes('..') && (rel === '..' || rel.startsWith('../'));
  return { path: n.replace(/^\/+/, '').replace(/\/+$/, ''), escaped };
}

export type Resolution =
  | { readonly status: 'found'; readonly path: string; readonly entry: FsEntry; readonly chain: readonly string[] }
  | { readonly status: 'deleted'; readonly path: string; readonly layer: number; readonly chain: readonly string[] }
  | { readonly status: 'absent'; readonly path: string; readonly chain: readonly string[] }
  | { readonly status: 'loop'; readonly path: string; readonly chain: readonly string[] };

export class ImageFs {
  readonly entries = new Map<string, FsEntry>();
  /** Path → layer whose whiteout deleted it (for everything below that layer). */
  private readonly deleted = new Map<string, number>();
  private readonly opaque = new Map<string, number>();
  private pendingDeleted = new Map<string, number>();
  private pendingOpaque = new Map<string, number>();
  /**
   * hiddenBy of directories, remembered: the same parents come up for every entry below them.
   * What hides stays hidden (the maps only grow within a layer; add() puts nothing under a hidden
   * path), and what is not hidden can only become so by a non-directory added at a remembered path:
   * then, and whenever whiteouts change or a layer is read again, it is forgotten.
   */
  private readonly hiddenMemo = new Map<string, number | null>(); // null: not hidden
  private layer = -1;
  readonly warnings: string[] = [];
  /** Entries of unknown types, in every layer (they shadow nothing: no runtime creates them). */
  readonly unknown: UnknownEntry[] = [];
  private layerStart = { warnings: 0, unknown: 0 };

  beginLayer(index: number): void {
    this.layer = index;
    this.hiddenMemo.clear();
    this.layerStart = { warnings: this.warnings.length, unknown: this.unknown.length };
  }

  /** Forget what the current layer added so far (its stream broke off and is read again). */
  resetLayer(): void {
    this.hiddenMemo.clear();
    for (const [p, e] of this.entries) if (e.layer === this.layer) this.entries.delete(p);
    this.pendingDeleted = new Map();
    this.pendingOpaque = new Map();
    this.warnings.length = this.layerStart.warnings;
    this.unknown.length = this.layerStart.unknown;
  }

  /** A warning about the current layer. */
  warn(message: string): void {
    this.warnings.push(`layer ${this.layer}: ${message}`);
  }

  addUnknown(name: string, typeflag: string): void {
    this.unknown.push({ path: normalizeTarPath(name).path, typeflag, layer: this.layer });
  }

  /** Whiteouts apply to the layers below the one that carries them. */
  endLayer(): void {
    for (const [p, l] of this.pendingDeleted) if (!this.deleted.has(p)) this.deleted.set(p, l);
    for (const [p, l] of this.pendingOpaque) if (!this.opaque.has(p)) this.opaque.set(p, l);
    this.pendingDeleted = new Map();
    this.pendingOpaque = new Map();
    this.hiddenMemo.clear();
  }

  /**
   * Which layer's whiteout hides this path, if any: a whiteout of the path or of an ancestor, an
   * opaque marker in its parent, or a non-directory above it (which hides everything under it).
   */
  hiddenBy(path: string): number | undefined {
    const d = this.deleted.size === 0 ? undefined : this.deleted.get(path);
    if (d !== undefined || path === '') return d;
    const slash = path.lastIndexOf('/');
    return this.hiddenUnder(slash < 0 ? '' : path.slice(0, slash));
  }

  /** hiddenBy of a path in `parent`, past the path's own whiteout (the part its siblings share). */
  private hiddenUnder(parent: string): number | undefined {
    const o = this.opaque.size === 0 ? undefined : this.opaque.get(parent);
    if (o !== undefined) return o;
    if (parent === '') return this.deleted.get('');
    const anc = this.entries.get(parent);
    if (anc && anc.type !== 'dir') return anc.layer;
    const known = this.hiddenMemo.get(parent);
    if (known !== undefined) return known ?? undefined;
    const up = this.hiddenBy(parent);
    this.hiddenMemo.set(parent, up ?? null);
    return up;
  }

  /**
   * Record a tar entry of the current layer. Returns the entry if it is the visible version of
   * its path (so the caller may read its content), undefined if shadowed, hidden or a marker.
   */
  add(name: string, e: Omit<FsEntry, 'layer'>): FsEntry | undefined {
    const { path, escaped } = normalizeTarPath(name);
    if (escaped) this.warn(`entry "${name}" points outside the root; read as /${path}`);
    // Runs for every entry of every layer: the name is cut into folder and base only once, and
    // only a whiteout needs its base as a string of its own.
    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? '' : path.slice(0, slash);
    if (path.startsWith('.wh.', slash + 1)) {
      const base = path.slice(slash + 1);
      if (base === '.wh..wh..opq') {
        if (!this.pendingOpaque.has(dir)) this.pendingOpaque.set(dir, this.layer);
        return undefined;
      }
      const target = dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`;
      if (!this.entries.has(target) && !this.pendingDeleted.has(target)) this.pendingDeleted.set(target, this.layer);
      return undefined;
    }
    if (path === '' || this.entries.has(path)) return undefined;
    if (this.deleted.size > 0 && this.deleted.has(path)) return undefined;
    if (this.hiddenUnder(dir) !== undefined) return undefined;
    // Built field by field: this runs for every entry of every layer.
    const entry: { -readonly [K in keyof FsEntry]: FsEntry[K] } = { type: e.type, size: e.size, mode: e.mode, layer: this.layer };
    if (e.link !== undefined) entry.link = e.type === 'hardlink' ? normalizeTarPath(e.link).path : e.link;
    if (e.unreadable !== undefined) entry.unreadable = e.unreadable;
    if (e.elf) entry.elf = e.elf;
    if (e.shebang !== undefined) entry.shebang = e.shebang;
    if (e.malformedElf !== undefined) entry.malformedElf = e.malformedElf;
    // A non-directory where a remembered parent was: what is under it is hidden from now on.
    if (e.type !== 'dir' && this.hiddenMemo.has(path)) this.hiddenMemo.clear();
    this.entries.set(path, entry);
    return entry;
  }

  /** Resolve a path as the kernel would inside the image: symlinks (≤ 40 hops), hardlinks, clamped at root. */
  resolve(input: string): Resolution {
    const chain: string[] = [];
    let hops = 0;
    let pending = normalizeTarPath(input).path.split('/').filter(Boolean);
    let cur = '';
    while (pending.length > 0) {
      const comp = pending.shift()!;
      const candidate = cur === '' ? comp : `${cur}/${comp}`;
      const entry = this.entries.get(candidate);
      if (!entry && pending.length > 0 && this.hiddenBy(candidate) === undefined) {
        // Layers need not carry their parent directories: an intermediate one is implied.
        cur = candidate;
        continue;
      }
      if (!entry) {
        const by = this.hiddenBy(candidate);
        const rest = [candidate, ...pending].join('/');
        if (by !== undefined) return { status: 'deleted', path: rest, layer: by, chain };
        return { status: 'absent', path: rest, chain };
      }
      if (entry.type === 'symlink' || entry.type === 'hardlink') {
        if (++hops > 40) return { status: 'loop', path: candidate, chain };
        chain.push(`/${candidate}`);
        const link = entry.link ?? '';
        const target = entry.type === 'hardlink' || link.startsWith('/') ? link : `${cur}/${link}`;
        pending = [...normalizeTarPath(target).path.split('/').filter(Boolean), ...pending];
        cur = '';
        continue;
      }
      cur = candidate;
      if (pending.length === 0) return { status: 'found', path: cur, entry, chain };
      if (entry.type !== 'dir') return { status: 'absent', path: [cur, ...pending].join('/'), chain };
    }
    return { status: 'found', path: cur, entry: this.entries.get(cur) ?? { type: 'dir', size: 0, mode: 0o755, layer: -1 }, chain };
  }

  /** PATH lookup of a bare command: the first directory that has it. */
  which(cmd: string, path: readonly string[]): Resolution {
    if (cmd.includes('/')) return this.resolve(cmd);
    const misses: Resolution[] = [];
    for (const dir of path) {
      const r = this.resolve(`${dir}/${cmd}`);
      if (r.status === 'found' && r.entry.type !== 'dir') return r;
      misses.push(r);
    }
    // Not found anywhere: say so through the most telling miss (a whiteout beats plain absence).
    return misses.find((m) => m.status === 'deleted') ?? misses.find((m) => m.status === 'loop') ?? { status: 'absent', path: cmd, chain: [] };
  }
}
