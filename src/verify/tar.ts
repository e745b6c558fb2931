// A tar reader that sees a layer as container runtimes extract it. containerd and moby unpack
// layers with Go's archive/tar, so this follows its rules (not tar-stream's, which differ where
// it matters): PAX records (path, linkpath, size) apply to the one entry they precede and global
// ones to none; GNU long names ('L', 'K') win over both; header-only types (links, devices,
// directories, fifos) have no data whatever their size field says; the archive ends at two zero
// blocks. GNU sparse files — old GNU ('S', its map in the header), PAX 0.0, 0.1 and 1.0 (the
// real name in GNU.sparse.name, the 1.0 map at the start of the data) — are reassembled into
// their real name and logical content, holes as zeros. Anything else Go's reader rejects fails
// the layer. It is a Writable fed the decompressed layer: each entry goes to `onEntry`, the first
// bytes of its content (as many as its sink wants) to the sink; meta data and sparse maps are
// capped at 1 MiB, as Go caps them, so memory stays bounded whatever a header claims.
import { Writable } from 'node:stream';

export type TarKind = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'unknown';
export type SparseFormat = 'old GNU' | 'PAX 0.0' | 'PAX 0.1' | 'PAX 1.0';

export interface TarEntry {
  /** As Go's reader names it: GNU long name, else PAX path, else the header's; GNU.sparse.name for a sparse file. */
  readonly name: string;
  readonly linkname: string;
  /** The header's typeflag, shown printable ('0', '\0', 'S', 0x01 …). */
  readonly typeflag: string;
  readonly kind: TarKind;
  readonly mode: number;
  /** Logical size: a sparse file's real size. */
  readonly size: number;
  readonly sparse?: SparseFormat;
  /** Why its content cannot be read as a runtime extracts it; none is delivered. */
  readonly unreadable?: string;
}

/** Receives a file's logical content from its start, holes as zeros. */
export interface EntrySink {
  /** How many more bytes it wants; 0 skips the rest. */
  wanted(): number;
  write(chunk: Buffer): void;
  /** The file's content ended (or was cut at what was wanted). */
  end(): void;
}

export interface TarReaderOptions {
  /** Every entry that is not meta data; a sink to receive its content, if wanted. */
  readonly onEntry: (entry: TarEntry) => EntrySink | undefined;
}

const BLOCK = 512;
/** Go's archive/tar reads at most this much of a PAX header, a GNU long name or a 1.0 sparse map. */
const MAX_META = 1 << 20;
/** Zeros of a hole are handed over in pieces of at most this size. */
const ZERO_PIECE = 1 << 20;

interface Fragment {
  readonly offset: number;
  readonly length: number;
}

/** What the reader expects next in the stream. */
type State = 'header' | 'zero' | 'meta' | 'ext' | 'map' | 'body' | 'pad' | 'end';

/** Entry under construction: its header read, waiting for extension blocks or a sparse map. */
interface Pending {
  name: string;
  linkname: string;
  typeflag: string;
  kind: TarKind;
  mode: number;
  size: number;
  physical: number;
  sparse?: SparseFormat;
  unreadable?: string;
  fragments?: Fragment[];
}

const flagName = (b: number): string => (b === 0 ? '\\0' : b > 0x20 && b < 0x7f ? String.fromCharCode(b) : `0x${b.toString(16).padStart(2, '0')}`);

function kindOf(flag: number): TarKind {
  switch (String.fromCharCode(flag)) {
    case '0':
    case '7': // contiguous file, and 'S' old GNU sparse: files to Go's reader (runtimes then refuse both; layers.ts warns)
    case 'S':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    default:
      return 'unknown';
  }
}

const headerOnly = (k: TarKind) => k !== 'file' && k !== 'unknown';

/** Up to the first NUL, as Go's parseString. */
function str(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** A numeric field as Go's parseNumeric: base-256 when the high bit is set, else octal padded with spaces or NULs. */
function numeric(b: Buffer, off: number, len: number): number | undefined {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    const inv = f[0]! & 0x40 ? 0xff : 0;
    let x = 0n;
    for (let i = 0; i < f.length; i++) {
      let c = f[i]! ^ inv;
      if (i === 0) c &= 0x7f;
      if (x >> 56n) return undefined;
      x = (x << 8n) | BigInt(c);
    }
    if (x >> 63n) return undefined;
    return Number(inv ? -x - 1n : x);
  }
  let s = f.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (s.includes('\0')) s = s.slice(0, s.indexOf('\0'));
  if (s === '') return 0;
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : undefined;
}

/** A decimal as Go's strconv.ParseInt(s, 10, 64), within what a JavaScript number holds exactly. */
function decimal(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Go accepts the header checksum as an unsigned or a signed sum (old tars used signed chars). */
function checksumOk(b: Buffer): boolean {
  const want = numeric(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c < 0x80 ? c : c - 0x100;
  }
  return want === unsigned || want === signed;
}

type Format = 'v7' | 'ustar' | 'star' | 'gnu';

function formatOf(b: Buffer): Format {
  const magic = b.toString('latin1', 257, 263);
  if (magic === 'ustar\0') return b.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && b[263] === 0x20 && b[264] === 0) return 'gnu';
  return 'v7';
}

/**
 * Go before 1.8 wrote a USTAR prefix into GNU headers, where atime and ctime live; Go's reader
 * still takes it as a prefix when those fields are not numbers and it is ASCII.
 */
function goPrefix(b: Buffer): string {
  const timesOk = (b[345] === 0 || numeric(b, 345, 12) !== undefined) && (b[357] === 0 || numeric(b, 357, 12) !== undefined);
  if (timesOk) return '';
  const p = str(b, 345, 155);
  return /^[\x00-\x7f]*$/.test(p) ? p : '';
}

/**
 * The records of a PAX header, as Go's parsePAX: "LEN KEY=VALUE\n" each, anything malformed
 * fails. GNU sparse 0.0's repeated GNU.sparse.offset/numbytes pairs (which a map of records
 * would collapse to the last pair) become one GNU.sparse.map, as Go turns 0.0 into 0.1.
 */
function parsePax(buf: Buffer): { records: Map<string, string>; pairs: boolean } {
  const records = new Map<string, string>();
  const pairs: string[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    const n = sp < 0 ? undefined : decimal(buf.toString('latin1', pos, sp));
    if (n === undefined || n < 5 || n > buf.length - pos || pos + n - 1 <= sp || buf[pos + n - 1] !== 0x0a) throw new Error(`malformed PAX record at byte ${pos} of its header`);
    const rec = buf.subarray(sp + 1, pos + n - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new Error(`malformed PAX record at byte ${pos} of its header`);
    const key = rec.toString('utf8', 0, eq);
    const value = rec.toString('utf8', eq + 1);
    const nulIn = ['path', 'linkpath', 'uname', 'gname'].includes(key) ? value : key;
    if (nulIn.includes('\0')) throw new Error(`PAX record ${JSON.stringify(key.replace(/\0.*/s, ''))} holds a NUL`);
    pos += n;
    if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      if ((key === 'GNU.sparse.offset') !== (pairs.length % 2 === 0) || value.includes(',')) throw new Error('GNU sparse 0.0 records out of order');
      pairs.push(value);
    } else records.set(key, value);
  }
  if (pairs.length > 0) records.set('GNU.sparse.map', pairs.join(','));
  return { records, pairs: pairs.length > 0 };
}

/** Why a sparse map cannot describe a file of `size` bytes holding `physical` bytes of data, as Go's validateSparseEntries (and its reader's data checks). */
function badMap(frags: readonly Fragment[], size: number, physical: number): string | undefined {
  let end = 0;
  let data = 0;
  for (const f of frags) {
    if (f.offset < 0 || f.length < 0) return 'sparse map has a negative offset or length';
    if (f.offset + f.length > size) return `sparse map runs past the file's size (${size})`;
    if (f.offset < end) return 'sparse map regions overlap or are out of order';
    end = f.offset + f.length;
    data += f.length;
  }
  if (data !== physical) return `sparse map names ${data} bytes of data, the entry holds ${physical}`;
  return undefined;
}

export class TarReader extends Writable {
  private readonly onEntry: TarReaderOptions['onEntry'];
  private state: State = 'header';
  /** Bytes of the stream consumed (for messages). */
  private pos = 0;
  /** Accumulator for headers, meta data, extension blocks and 1.0 maps. */
  private acc = Buffer.alloc(BLOCK);
  private accLen = 0;
  private need = BLOCK;
  /** Meta data being read: its typeflag. */
  private metaFlag = 0;
  /** What the next entry inherits from the meta entries before it. */
  private pax: { records: Map<string, string>; pairs: boolean } | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pending: Pending | undefined;
  /** Old GNU extension blocks, or 1.0 map blocks, read so far. */
  private extBlocks = 0;
  private mapBlocks: Buffer[] = [];
  private mapLines = 0;
  private mapCount: number | undefined;
  /** The body being read: physical bytes left, padding after it, where its content goes. */
  private remaining = 0;
  private pad = 0;
  private sink: EntrySink | undefined;
  private fragments: Fragment[] | undefined;
  private fragIndex = 0;
  private logical = 0;
  private logicalSize = 0;
  private bodyName = '';

  constructor(opts: TarReaderOptions) {
    super();
    this.onEntry = opts.onEntry;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      this.feed(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    // Go's reader takes an end at any header boundary (zero blocks or not) or in the last padding.
    const clean = this.state === 'end' || this.state === 'pad' || ((this.state === 'header' || this.state === 'zero') && this.accLen === 0);
    if (clean) return cb();
    const where = this.state === 'body' ? `the data of ${this.bodyName} (${this.remaining} bytes short)` : this.state === 'header' || this.state === 'zero' ? 'a header' : `the ${this.state === 'meta' ? 'meta data' : 'sparse map'} of an entry`;
    cb(new Error(`the tar stream ends inside ${where}, at byte ${this.pos}`));
  }

  private feed(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      // After the archive's end the rest only flows by (its digest is still checked).
      if (this.state === 'end') return;
      const avail = chunk.length - off;
      if (this.state === 'body') {
        const n = Math.min(this.remaining, avail);
        this.content(chunk.subarray(off, off + n));
        this.remaining -= n;
        this.pos += n;
        off += n;
        if (this.remaining === 0) this.endBody();
      } else if (this.state === 'pad') {
        const n = Math.min(this.pad, avail);
        this.pad -= n;
        this.pos += n;
        off += n;
        if (this.pad === 0) this.collect('header', BLOCK);
      } else {
        const n = Math.min(this.need - this.accLen, avail);
        chunk.copy(this.acc, this.accLen, off, off + n);
        this.accLen += n;
        this.pos += n;
        off += n;
        if (this.accLen === this.need) {
          const b = this.acc.subarray(0, this.need);
          this.accLen = 0;
          this.filled(b);
        }
      }
    }
  }

  /** Expect `n` bytes into the accumulator next. */
  private collect(state: State, n: number): void {
    this.state = state;
    this.need = n;
    if (this.acc.length < n) this.acc = Buffer.alloc(n);
  }

  private filled(b: Buffer): void {
    switch (this.state) {
      case 'header':
      case 'zero':
        return this.header(b);
      case 'meta':
        return this.meta(b);
      case 'ext':
        return this.extension(b);
      case 'map':
        return this.mapBlock(b);
      default:
        throw new Error(`tar reader: unexpected state ${this.state}`);
    }
  }

  private header(b: Buffer): void {
    const at = this.pos - BLOCK;
    if (b.every((x) => x === 0)) {
      // One zero block, then another: the end. Then anything else: a broken archive (as Go).
      if (this.state === 'zero') this.state = 'end';
      else this.collect('zero', BLOCK);
      return;
    }
    if (this.state === 'zero') throw new Error(`tar header at byte ${at} follows a zero block (the end-of-archive marker is half there)`);
    if (!checksumOk(b)) throw new Error(`tar header at byte ${at} has a bad checksum (not a tar stream, or corrupted)`);
    const format = formatOf(b);
    const fields = { mode: numeric(b, 100, 8), uid: numeric(b, 108, 8), gid: numeric(b, 116, 8), size: numeric(b, 124, 12), mtime: numeric(b, 136, 12) };
    const bad = Object.entries(fields).find(([, v]) => v === undefined);
    if (bad) throw new Error(`tar header at byte ${at} has an invalid ${bad[0]} field`);
    if (format !== 'v7' && (numeric(b, 329, 8) === undefined || numeric(b, 337, 8) === undefined)) throw new Error(`tar header at byte ${at} has an invalid device number`);
    let name = str(b, 0, 100);
    const prefix = format === 'ustar' ? str(b, 345, 155) : format === 'star' ? str(b, 345, 131) : format === 'gnu' ? goPrefix(b) : '';
    if (prefix) name = `${prefix}/${name}`;
    const flag = b[156]!;
    const size = fields.size!;
    const kind = kindOf(flag);
    if (size < 0 && !headerOnly(kind)) throw new Error(`tar header at byte ${at} (${name}) has a negative size`);
    if (!Number.isSafeInteger(size)) throw new Error(`tar header at byte ${at} (${name}) has a size beyond 2^53`);

    const meta = String.fromCharCode(flag);
    if (meta === 'x' || meta === 'g' || meta === 'L' || meta === 'K') {
      // The message keeps tar-stream's words, which reports and tests know.
      if (size > MAX_META) throw new Error(`Header exceeds max size: ${name} (typeflag '${meta}') is ${size} bytes, over the 1 MiB Go's archive/tar reads`);
      this.metaFlag = flag;
      this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (size === 0) return this.meta(Buffer.alloc(0));
      return this.collect('meta', size);
    }
    this.entry(b, format, { name, linkname: str(b, 157, 100), flag, kind, mode: fields.mode!, size });
  }

  private meta(data: Buffer): void {
    const flag = String.fromCharCode(this.metaFlag);
    if (flag === 'x') this.pax = parsePax(data);
    else if (flag === 'g') {
      // Go returns a global header as an entry of its own, which runtimes ignore; it ends what
      // the meta entries before it said.
      parsePax(data);
      this.pax = this.longName = this.longLink = undefined;
    } else if (flag === 'L') this.longName = str(data, 0, data.length);
    else this.longLink = str(data, 0, data.length);
    this.afterBody();
  }

  private entry(b: Buffer, format: Format, h: { name: string; linkname: string; flag: number; kind: TarKind; mode: number; size: number }): void {
    const records = this.pax?.records ?? new Map<string, string>();
    const pairs = this.pax?.pairs ?? false;
    let { name, linkname, size } = h;
    // Empty PAX values keep the header's, as in Go's mergePAX.
    if (records.get('path')) name = records.get('path')!;
    if (records.get('linkpath')) linkname = records.get('linkpath')!;
    if (records.get('size')) {
      const s = decimal(records.get('size')!);
      if (s === undefined) throw new Error(`PAX size of ${name} is not a number: ${JSON.stringify(records.get('size'))}`);
      size = s;
    }
    if (this.longName) name = this.longName;
    if (this.longLink) linkname = this.longLink;
    this.pax = this.longName = this.longLink = undefined;
    let kind = h.kind;
    const typeflag = flagName(h.flag);
    if (h.flag === 0) kind = name.endsWith('/') ? 'dir' : 'file'; // pre-POSIX tars: '\0', a trailing "/" for directories
    const physical = headerOnly(kind) ? 0 : size;
    if (physical < 0) throw new Error(`the entry ${name} has a negative size`);
    const p: Pending = { name, linkname, typeflag, kind, mode: h.mode, size, physical };

    if (h.flag === 0x53) {
      // Old GNU sparse: up to 4 regions in the header, 21 more per extension block after it
      // (outside the size field), the real size at 483.
      if (format !== 'gnu') throw new Error(`${name}: a sparse entry (typeflag 'S') in a ${format} header, which Go's archive/tar refuses`);
      p.sparse = 'old GNU';
      p.fragments = [];
      const real = numeric(b, 483, 12);
      if (real === undefined || !Number.isSafeInteger(real)) p.unreadable = 'old GNU sparse real size is not a number';
      else p.size = real;
      this.pending = p;
      this.regions(b, 386, 4, p);
      if (b[482]! > 0) {
        this.extBlocks = 0;
        return this.collect('ext', BLOCK);
      }
      return this.ready();
    }

    const major = records.get('GNU.sparse.major') ?? '';
    const minor = records.get('GNU.sparse.minor') ?? '';
    const v1 = major === '1' && minor === '0';
    const v0 = (major === '0' && (minor === '0' || minor === '1')) || (major === '' && minor === '' && !!records.get('GNU.sparse.map'));
    const sparseName = records.get('GNU.sparse.name');
    if (kind === 'file' && (major !== '' || minor !== '') && !v0 && !v1) {
      // Go reads it as a plain file (its map and data as content, under the header's name).
      p.unreadable = `GNU sparse format ${major || '?'}.${minor || '?'}${sparseName ? ` (for ${sparseName})` : ''} is not supported`;
    } else if ((v0 || v1) && kind !== 'unknown') {
      if (kind !== 'file') throw new Error(`${name}: GNU sparse records on a ${kind}, which Go's archive/tar refuses`);
      if (sparseName) p.name = sparseName;
      const realSize = records.get('GNU.sparse.size') || records.get('GNU.sparse.realsize');
      if (realSize) {
        const s = decimal(realSize);
        if (s === undefined) p.unreadable = `GNU sparse real size is not a number: ${JSON.stringify(realSize)}`;
        else p.size = s;
      }
      p.sparse = v1 ? 'PAX 1.0' : pairs || minor === '0' ? 'PAX 0.0' : 'PAX 0.1';
      if (v1) {
        this.pending = p;
        this.mapBlocks = [];
        this.mapLines = 0;
        this.mapCount = undefined;
        // The map's blocks count in the entry's size (its padding is the same without them).
        if (p.physical >= BLOCK) return this.collect('map', BLOCK);
        p.unreadable = 'GNU sparse 1.0 map runs past the data of the entry';
        return this.ready();
      }
      p.fragments = this.map01(records, p);
    }
    this.pending = p;
    this.ready();
  }

  /** Old GNU sparse regions: `n` (offset, length) pairs of 12-byte numbers from `off`, ended by an empty offset. */
  private regions(b: Buffer, off: number, n: number, p: Pending): void {
    for (let i = 0; i < n; i++) {
      const o = off + i * 24;
      if (b[o] === 0) break;
      const offset = numeric(b, o, 12);
      const length = numeric(b, o + 12, 12);
      if (offset === undefined || length === undefined) p.unreadable ??= 'old GNU sparse map holds something not a number';
      else p.fragments!.push({ offset, length });
    }
  }

  private extension(b: Buffer): void {
    const p = this.pending!;
    if (++this.extBlocks > MAX_META / BLOCK) throw new Error(`${p.name}: old GNU sparse map longer than 1 MiB`);
    this.regions(b, 0, 21, p);
    if (b[504]! > 0) return this.collect('ext', BLOCK);
    this.ready();
  }

  /** A PAX 0.0/0.1 map: GNU.sparse.numblocks regions in GNU.sparse.map "offset,length,…". */
  private map01(records: Map<string, string>, p: Pending): Fragment[] | undefined {
    const count = decimal(records.get('GNU.sparse.numblocks') ?? '');
    const map = records.get('GNU.sparse.map') ?? '';
    const nums = map === '' ? [] : map.split(',');
    if (count === undefined || count < 0 || nums.length !== 2 * count) {
      p.unreadable ??= `GNU sparse map has ${nums.length} numbers for ${records.get('GNU.sparse.numblocks') ?? 'no'} regions`;
      return undefined;
    }
    return this.pairsOf(nums, p);
  }

  private pairsOf(nums: readonly string[], p: Pending): Fragment[] | undefined {
    const out: Fragment[] = [];
    for (let i = 0; i + 1 < nums.length; i += 2) {
      const offset = decimal(nums[i]!);
      const length = decimal(nums[i + 1]!);
      if (offset === undefined || length === undefined) {
        p.unreadable ??= `GNU sparse map holds something not a number: ${JSON.stringify(offset === undefined ? nums[i] : nums[i + 1])}`;
        return undefined;
      }
      out.push({ offset, length });
    }
    return out;
  }

  /**
   * A PAX 1.0 map at the start of the data, read a block at a time as Go does: the number of
   * regions, then offset and length, one decimal per line, padded to a block. Parsed once enough
   * lines are in (newlines are counted per block, so a long map costs no re-reading).
   */
  private mapBlock(b: Buffer): void {
    const p = this.pending!;
    this.mapBlocks.push(Buffer.from(b));
    p.physical -= BLOCK;
    for (const c of b) if (c === 0x0a) this.mapLines++;
    if (this.mapCount === undefined && this.mapLines >= 1) {
      const first = this.mapText().slice(0, this.mapText().indexOf('\n'));
      const count = decimal(first);
      if (count === undefined || count < 0) p.unreadable = `GNU sparse 1.0 map starts with ${JSON.stringify(first.slice(0, 20))}, not a region count`;
      else this.mapCount = count;
    }
    if (p.unreadable) return this.ready();
    if (this.mapCount !== undefined && this.mapLines >= 1 + 2 * this.mapCount) {
      p.fragments = this.pairsOf(this.mapText().split('\n').slice(1, 1 + 2 * this.mapCount), p);
      return this.ready();
    }
    if (this.mapBlocks.length * BLOCK >= MAX_META) p.unreadable = 'GNU sparse 1.0 map longer than 1 MiB';
    else if (p.physical < BLOCK) p.unreadable = 'GNU sparse 1.0 map runs past the data of the entry';
    if (p.unreadable) return this.ready();
    this.collect('map', BLOCK);
  }

  private mapText(): string {
    return Buffer.concat(this.mapBlocks).toString('latin1');
  }

  /** The entry is known: hand it over, then read (or skip) its data. */
  private ready(): void {
    const p = this.pending!;
    this.pending = undefined;
    this.mapBlocks = [];
    if (p.kind === 'file' && p.sparse && !p.unreadable) {
      if (!p.fragments) p.unreadable = 'GNU sparse map could not be read';
      else p.unreadable = badMap(p.fragments, p.size, p.physical);
    }
    const entry: TarEntry = {
      name: p.name,
      linkname: p.linkname,
      typeflag: p.typeflag,
      kind: p.kind,
      mode: p.mode,
      size: p.size,
      ...(p.sparse ? { sparse: p.sparse } : {}),
      ...(p.unreadable ? { unreadable: p.unreadable } : {}),
    };
    const sink = this.onEntry(entry);
    this.sink = p.kind === 'file' && !p.unreadable ? sink : undefined;
    this.fragments = p.sparse ? p.fragments : undefined;
    this.fragIndex = 0;
    this.logical = 0;
    this.logicalSize = p.size;
    this.bodyName = p.name;
    this.remaining = p.physical;
    this.pad = (BLOCK - (p.physical % BLOCK)) % BLOCK;
    if (this.remaining === 0) this.endBody();
    else this.state = 'body';
  }

  /** Physical data of the current body: to the sink as logical content. */
  private content(c: Buffer): void {
    if (!this.sink || this.sink.wanted() <= 0) return;
    const frags = this.fragments;
    if (!frags) return this.give(c);
    let off = 0;
    while (off < c.length) {
      const f = frags[this.fragIndex]!;
      if (this.logical < f.offset) {
        this.zeros(f.offset - this.logical);
        this.logical = f.offset;
      }
      const n = Math.min(c.length - off, f.offset + f.length - this.logical);
      this.give(c.subarray(off, off + n));
      off += n;
      this.logical += n;
      if (this.logical === f.offset + f.length) this.fragIndex++;
    }
  }

  private give(c: Buffer): void {
    let off = 0;
    while (off < c.length) {
      const w = this.sink!.wanted();
      if (w <= 0) return;
      const n = Math.min(w, c.length - off);
      this.sink!.write(c.subarray(off, off + n));
      off += n;
    }
  }

  /** Zeros of a hole, only as many as the sink still wants (a hole may be terabytes). */
  private zeros(n: number): void {
    let left = n;
    while (left > 0) {
      const w = Math.min(left, this.sink!.wanted(), ZERO_PIECE);
      if (w <= 0) return;
      this.sink!.write(Buffer.alloc(w));
      left -= w;
    }
  }

  private endBody(): void {
    if (this.sink) {
      // A hole at the end of a sparse file.
      if (this.fragments && this.logical < this.logicalSize) this.zeros(this.logicalSize - this.logical);
      this.sink.end();
    }
    this.sink = undefined;
    this.fragments = undefined;
    this.afterBody();
  }

  private afterBody(): void {
    if (this.pad > 0) this.state = 'pad';
    else this.collect('header', BLOCK);
  }
}
