// Layer facts, kept by digest. What a layer holds is fixed by its digest, so what the verifier
// learnt from reading it — every entry's path, type, mode, size and link, and each file's ELF
// header, loader and libraries or #! line — never needs reading twice. Entries are written only
// for layers whose bytes matched their digest, atomically (two verifies may share the folder),
// and sealed with an HMAC under a key of this cache's own: an entry that was edited, truncated,
// or written for another digest is ignored (and rewritten), never trusted. The folder is capped
// in size; the least recently used entries go first. Manifests read by digest are kept here too:
// their bytes must hash to the digest they are kept under.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, fstatSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { sha256Digest } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../registry/client.js';
import type { EntryType } from './image-fs.js';
import type { ElfInfo } from './elf.js';

/** What a regular file's first bytes said. */
export interface ContentFacts {
  readonly elf?: ElfInfo;
  readonly malformedElf?: string;
  readonly shebang?: string;
}

/** One tar entry of a layer, as the merged filesystem needs it. Files carry what their first bytes said. */
export type FactEntry =
  | (ContentFacts & {
      readonly name: string;
      readonly type: EntryType;
      readonly link?: string;
      readonly size: number;
      readonly mode: number;
      readonly unreadable?: string;
      /** A layer-level warning this entry raises (a typeflag runtimes refuse). */
      readonly warning?: string;
    })
  | { readonly name: string; readonly unknownTypeflag: string };

export interface LayerFacts {
  readonly entries: readonly FactEntry[];
}

/** Bumped whenever what a scan records changes: older entries are then simply not found. */
const FORMAT = 2;

export const DEFAULT_CACHE_MAX_BYTES = 512 * 1024 * 1024;

export class LayerCache {
  private key: Buffer | undefined;
  /**
   * What the folder holds, least recently used first, read once (on the first write) and kept
   * up to date by this process's own writes: a verify that writes many entries lists the folder
   * once, not once per entry.
   */
  private held: { n: string; size: number; used: number }[] | undefined;

  constructor(
    readonly dir: string,
    readonly maxBytes: number = DEFAULT_CACHE_MAX_BYTES,
  ) {}

  private file(digest: string): string {
    return join(this.dir, `${digest.replace(':', '-')}.json`);
  }

  /** The cache's own key, made once; linked into place so two processes agree on one. */
  private secret(): Buffer {
    if (this.key) return this.key;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, 'key');
    try {
      this.key = readFileSync(path);
    } catch {
      const tmp = join(this.dir, `.key-${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(tmp, randomBytes(32), { mode: 0o600 });
      try {
        linkSync(tmp, path);
      } catch {
        // another process made it first: theirs it is
      } finally {
        rmSync(tmp, { force: true });
      }
      this.key = readFileSync(path);
    }
    if (this.key.length !== 32) throw new Error(`layer cache key ${path} is not 32 bytes`);
    return this.key;
  }

  private mac(digest: string, body: string): string {
    return createHmac('sha256', this.secret()).update(`${FORMAT}\n${digest}\n`).update(body).digest('hex');
  }

  /** Is there an entry for this digest (sound or not: get() decides)? A cheap look before reading ahead. */
  holds(digest: string): boolean {
    return existsSync(this.file(digest));
  }

  /** The facts of this layer, when a sound entry for exactly this digest is there. */
  get(digest: string): LayerFacts | undefined {
    const f = this.file(digest);
    const text = readEntry(f, this.maxBytes);
    if (text === undefined) return undefined;
    try {
      // Line 1: the seal; the rest: the facts, byte for byte as sealed.
      const nl = text.indexOf('\n');
      const head = JSON.parse(text.slice(0, nl)) as { v?: unknown; digest?: unknown; mac?: unknown };
      const body = text.slice(nl + 1);
      if (head.v !== FORMAT || head.digest !== digest || typeof head.mac !== 'string') return undefined;
      const want = Buffer.from(this.mac(digest, body), 'hex');
      const got = Buffer.from(head.mac, 'hex');
      if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
      const facts = JSON.parse(body) as LayerFacts;
      if (!Array.isArray(facts.entries)) return undefined;
      this.touch(f);
      return facts;
    } catch {
      return undefined;
    }
  }

  /** Keep a layer's facts (its bytes matched its digest); a failure to write costs only the next read. */
  put(digest: string, facts: LayerFacts): void {
    const body = JSON.stringify(facts);
    this.write(`${digest.replace(':', '-')}.json`, `${JSON.stringify({ v: FORMAT, digest, mac: this.mac(digest, body) })}\n${body}`);
  }

  private manifestFile(digest: string): string {
    return `${digest.replace(':', '-')}.manifest.json`;
  }

  /**
   * A manifest kept by its digest: its bytes vouch for themselves (they must hash to it), so no
   * seal is needed. Whether the registry still serves it is for the caller to ask.
   */
  manifest(digest: string): { readonly bytes: Buffer; readonly mediaType: string } | undefined {
    if (!digest.startsWith('sha256:')) return undefined;
    const f = join(this.dir, this.manifestFile(digest));
    try {
      const text = readEntry(f, MANIFEST_ENTRY_MAX);
      if (text === undefined) return undefined;
      const kept = JSON.parse(text) as { mediaType?: unknown; bytes?: unknown };
      if (typeof kept.mediaType !== 'string' || typeof kept.bytes !== 'string') return undefined;
      const bytes = Buffer.from(kept.bytes, 'base64');
      if (sha256Digest(bytes) !== digest) return undefined;
      this.touch(f);
      return { bytes, mediaType: kept.mediaType };
    } catch {
      return undefined;
    }
  }

  /** Keep a manifest read from a registry (its bytes hashed to `digest`). */
  putManifest(digest: string, bytes: Buffer, mediaType: string): void {
    if (!digest.startsWith('sha256:')) return;
    this.write(this.manifestFile(digest), JSON.stringify({ mediaType, bytes: bytes.toString('base64') }));
  }

  /** Atomically, within the cap; a failure to write costs only the next read. */
  private write(name: string, text: string): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, join(this.dir, name));
      this.evict(name, Buffer.byteLength(text));
    } catch {
      // a full or read-only disk: verification goes on uncached
    }
  }

  /** An entry just read is the most recently used one (a read-only shared cache still serves). */
  private touch(file: string): void {
    try {
      const now = new Date();
      utimesSync(file, now, now);
      this.recent(file);
    } catch {
      // not ours to touch
    }
  }

  /** An entry just read is the most recently used one, in the list this process keeps too. */
  private recent(file: string): void {
    if (!this.held) return;
    const n = file.slice(file.lastIndexOf('/') + 1);
    const i = this.held.findIndex((e) => e.n === n);
    if (i >= 0) this.held.push({ ...this.held.splice(i, 1)[0]!, used: Date.now() });
  }

  /** Least recently used entries go until the folder fits its cap (`written` just now, `size` bytes). */
  private evict(written: string, size: number): void {
    if (!this.held) {
      this.held = readdirSync(this.dir)
        .filter((n) => n.startsWith('sha256-') && n.endsWith('.json'))
        .flatMap((n) => {
          try {
            const s = statSync(join(this.dir, n));
            return [{ n, size: s.size, used: s.mtimeMs }];
          } catch {
            return [];
          }
        })
        .sort((a, b) => a.used - b.used);
    } else {
      this.held = this.held.filter((e) => e.n !== written);
      this.held.push({ n: written, size, used: Date.now() });
    }
    let total = this.held.reduce((t, e) => t + e.size, 0);
    while (total > this.maxBytes && this.held.length > 0) {
      const e = this.held.shift()!;
      rmSync(join(this.dir, e.n), { force: true });
      total -= e.size;
    }
  }
}

/** A manifest entry at most: the most a registry read takes, in base64, and its media type. */
const MANIFEST_ENTRY_MAX = Math.ceil((MAX_MANIFEST_BYTES * 4) / 3) + 4096;

/**
 * An entry's text, if it is a regular file of at most `max` bytes: a link, a FIFO or a device put
 * in a shared folder is not followed, waited on or read without end.
 */
function readEntry(path: string, max: number): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > max) return undefined;
    return readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The cache a command uses: `$XDG_CACHE_HOME/crossbuild/layers` (else ~/.cache/…), or
 * `CROSSBUILD_LAYER_CACHE` as a folder; none with `--no-layer-cache` or
 * `CROSSBUILD_LAYER_CACHE=off`. `CROSSBUILD_LAYER_CACHE_MAX` caps it (MiB).
 */
export function layerCache(disabled: boolean, env: NodeJS.ProcessEnv = process.env): LayerCache | undefined {
  const setting = env.CROSSBUILD_LAYER_CACHE;
  if (disabled || setting === 'off' || setting === '0' || setting === 'false') return undefined;
  const dir = setting && !['on', 'true', '1'].includes(setting) ? setting : join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'crossbuild', 'layers');
  const mib = Number(env.CROSSBUILD_LAYER_CACHE_MAX);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Our own folder is private; one the user named is left as they made it.
    if (!setting || ['on', 'true', '1'].includes(setting)) chmodSync(dir, 0o700);
  } catch {
    return undefined; // no writable home: no cache
  }
  return new LayerCache(dir, Number.isFinite(mib) && mib > 0 ? mib * 1024 * 1024 : DEFAULT_CACHE_MAX_BYTES);
}

/** `{ layerCache }` for a command's options, or nothing (exactOptionalPropertyTypes wants it absent, not undefined). */
export function layerCacheOption(disabled: boolean): { layerCache?: LayerCache } {
  const c = layerCache(disabled);
  return c ? { layerCache: c } : {};
}
