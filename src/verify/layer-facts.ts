// A layer's bytes into its facts, and facts into the merged filesystem: decompress (gzip, plain
// tar, zstd where Node has it), read the tar as container runtimes do (tar.ts: Go's rules,
// sparse files reassembled), keep only the first bytes of each file (whole ELF files to a limit,
// for ARM attributes and the dynamic section). Memory stays bounded whatever the layer size.
// Runs on the main thread or in a worker (facts-worker.ts) alike.
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { CrossbuildError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import { elfHeaderProblem, isElf, parseElf, piecedBytes, type FileBytes } from './elf.js';
import { ImageFs, normalizeTarPath, type EntryType } from './image-fs.js';
import type { ContentFacts, FactEntry, LayerFacts } from './layer-cache.js';
import { TarReader, type EntrySink, type TarKind } from './tar.js';

/**
 * ELF files up to this size are kept whole while they pass (one at a time), so their program
 * headers, dynamic section and ARM attributes can be read; a larger one keeps its first
 * ELF_HEAD_LIMIT bytes (headers and loader name, usually).
 */
const WHOLE_FILE_LIMIT = 16 * 1024 * 1024;
const ELF_HEAD_LIMIT = 256 * 1024;
/** Of anything else, the first line is enough (a #! interpreter). */
const OTHER_HEAD_LIMIT = 256;


function typeOf(kind: TarKind): EntryType {
  switch (kind) {
    case 'file':
      return 'file';
    case 'dir':
      return 'dir';
    case 'symlink':
      return 'symlink';
    case 'hardlink':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** Typeflags Go's archive/tar reads but containerd and moby refuse to extract ("unhandled tar header type"). */
const REFUSED: Record<string, string> = { '7': 'a contiguous file', S: 'an old GNU sparse file' };

/**
 * Joins the body's 64 KiB reads into 1 MiB writes for the decompressor: each write is a trip to
 * the thread pool, and on a busy machine those trips, not the inflating, held the main thread
 * (bench/RESULTS.md, P2-text). The 1 MiB buffers are used again once the decompressor has
 * consumed them (its bytesWritten has passed their end): a fresh buffer for every MiB of a layer
 * cost page faults in the copy and a garbage collection every few dozen MiB (bench P6).
 */
export class Coalesce extends Transform {
  private buf: Buffer | undefined;
  private fill = 0;
  /** Bytes handed on so far. */
  private sent = 0;
  /** Buffers handed on, oldest first, with where each ends in the stream. */
  private readonly handedOn: { buf: Buffer; end: number }[] = [];

  constructor(
    private readonly size: number,
    /**
     * The zlib stream this is piped into directly: its bytesWritten counts the bytes its engine
     * has consumed. Anything between the two that keeps chunks, or a consumer whose count includes
     * what is only queued, would see a reused buffer change under it. Absent: every buffer is new.
     */
    private readonly consumer?: { readonly bytesWritten: number },
  ) {
    super();
    if (!(size > 0)) throw new RangeError(`Coalesce: size ${size} must be positive`);
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    for (let off = 0; off < chunk.length; ) {
      this.buf ??= this.nextBuffer();
      const n = chunk.copy(this.buf, this.fill, off);
      this.fill += n;
      off += n;
      if (this.fill === this.size) this.handOn();
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.handOn();
    cb();
  }

  /** The oldest buffer handed on if its bytes are all consumed, else a new one. */
  private nextBuffer(): Buffer {
    const oldest = this.handedOn[0];
    if (oldest && this.consumer && this.consumer.bytesWritten >= oldest.end) {
      this.handedOn.shift();
      return oldest.buf;
    }
    return Buffer.allocUnsafe(this.size);
  }

  private handOn(): void {
    const buf = this.buf;
    if (!buf || this.fill === 0) return;
    this.sent += this.fill;
    // A few kept for reuse (the decompressor runs at most a couple behind); the rest are let go.
    if (this.handedOn.length < 4) this.handedOn.push({ buf, end: this.sent });
    this.push(this.fill === this.size ? buf : buf.subarray(0, this.fill));
    this.buf = undefined;
    this.fill = 0;
  }
}

/** Loaded when a layer first needs it: a verify served wholly from the cache never loads zlib. */
const zlib = () => process.getBuiltinModule('node:zlib');

/** Pick the decompressor from the first bytes, not the media type (which may be wrong). */
function decompressorFor(first: Buffer, mediaType: string): (Transform & { readonly bytesWritten: number }) | undefined {
  // Big output chunks: far fewer threadpool round trips than the 16 KiB default.
  if (first[0] === 0x1f && first[1] === 0x8b) return zlib().createGunzip({ chunkSize: 1024 * 1024 });
  if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) {
    const z = (zlib() as unknown as { createZstdDecompress?: () => Transform & { readonly bytesWritten: number } }).createZstdDecompress;
    if (!z) throw new CrossbuildError(`zstd layer (${mediaType}): this Node.js (${process.version}) has no zstd; use Node ≥ 22.15 to check this image's binaries`);
    return z();
  }
  return undefined; // plain tar
}

/**
 * Keeps a file's first bytes: all of an ELF file (to a limit), the first line of anything else.
 * The pieces stay as the stream delivered them (views, never joined): the ELF parser reads only
 * the few ranges it needs, so a large binary costs no copy.
 */
class Head implements EntrySink {
  private readonly chunks: Buffer[] = [];
  private have = 0;
  private keep: number;
  private decided = false;

  constructor(
    private readonly size: number,
    private readonly done: (head: FileBytes) => void,
  ) {
    this.keep = size === 0 ? 0 : Math.min(size, 4096);
  }

  wanted(): number {
    return this.keep - this.have;
  }

  write(c: Buffer): void {
    if (!this.decided && this.have + c.length >= 4) {
      this.decided = true;
      const head = this.have === 0 ? c : Buffer.concat([...this.chunks, c]);
      this.keep = isElf(head) ? (this.size <= WHOLE_FILE_LIMIT ? this.size : ELF_HEAD_LIMIT) : OTHER_HEAD_LIMIT;
    }
    const take = c.subarray(0, Math.max(0, this.keep - this.have));
    if (take.length > 0) this.chunks.push(take);
    this.have += take.length;
  }

  end(): void {
    this.done(piecedBytes(this.chunks));
  }
}

/** What a file's first bytes say: its ELF header (or why it cannot be read), or its #! line. */
function classify(size: number, head: FileBytes): ContentFacts {
  if (head.length === 0) return {};
  const first = head.slice(0, 256);
  if (isElf(first)) {
    // All of an ELF file up to WHOLE_FILE_LIMIT was kept, so it is parsed as a whole file.
    const info = parseElf(head, head.length === size);
    return info ? { elf: info } : { malformedElf: elfHeaderProblem(first) ?? 'unreadable ELF header' };
  }
  if (first[0] === 0x23 && first[1] === 0x21) return { shebang: first.subarray(2).toString('utf8').split('\n')[0]!.trim() };
  return {};
}

/** Wait for the first bytes of a stream, put back: they choose the decompressor. */
function peek(source: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      const c = source.read() as Buffer | null;
      if (c !== null) {
        cleanup();
        source.unshift(c);
        resolve(c);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.alloc(0));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      source.off('readable', onReadable);
      source.off('end', onEnd);
      source.off('error', onError);
    };
    source.on('readable', onReadable);
    source.on('end', onEnd);
    source.on('error', onError);
  });
}

/**
 * Read one layer's stream (compressed or not) into its facts: every entry in tar order, and for
 * every regular file what its first bytes say. Layer-intrinsic — whatever lies above it — so
 * the facts of a layer can be kept by its digest and merged into any image that has it.
 */
export async function readLayerFacts(source: Readable, layerDesc: Pick<Descriptor, 'mediaType'>): Promise<LayerFacts> {
  // A body that broke off, or was too short or too long, fails the scan with that reason, which
  // says more than the tar parser's; the listener also keeps it from failing the process.
  let sourceError: Error | undefined;
  source.on('error', (e) => {
    sourceError ??= e;
  });
  const first = await peek(source);
  const entries: FactEntry[] = [];
  const reader = new TarReader({
    onEntry: (t) => {
      if (t.kind === 'unknown') {
        entries.push({ name: t.name, unknownTypeflag: t.typeflag });
        return undefined;
      }
      const type = typeOf(t.kind);
      // Refused whether or not an upper layer hides it: the whole layer fails to extract.
      const refused = REFUSED[t.typeflag];
      const fact: FactEntry = {
        name: t.name,
        type,
        ...(t.linkname ? { link: t.linkname } : {}),
        size: t.size,
        mode: t.mode,
        ...(t.unreadable ? { unreadable: t.unreadable } : {}),
        ...(refused ? { warning: `/${normalizeTarPath(t.name).path} is ${refused} (typeflag '${t.typeflag}'), which containerd and moby refuse to extract ("unhandled tar header type")` } : {}),
      };
      entries.push(fact);
      if (type !== 'file') return undefined;
      const at = entries.length - 1;
      return new Head(t.size, (head) => {
        entries[at] = { ...fact, ...classify(t.size, head) };
      });
    },
  });
  const dec = decompressorFor(first, layerDesc.mediaType);
  const piped = dec ? pipeline(source, new Coalesce(1024 * 1024, dec), dec, reader) : pipeline(source, reader);
  try {
    await piped;
  } catch (e) {
    // The parser may fail first on a body that ends early: give the body's own verdict a moment.
    if (!sourceError) await Promise.race([finished(source).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    throw sourceError ?? e;
  }
  if (sourceError) throw sourceError;
  return { entries };
}

/** Merge a layer's facts into `fs` (whose layer the caller begins and ends), as its tar would be. */
export function applyFacts(facts: LayerFacts, fs: ImageFs): void {
  const entries = facts.entries;
  // Indexed, not for-of: this runs for every entry of every layer, mostly before the JIT has
  // optimised anything, and the iterator's objects cost more than the loop (bench P6-warm).
  for (let i = 0; i < entries.length; i++) {
    const f = entries[i]!;
    if ('unknownTypeflag' in f) {
      fs.addUnknown(f.name, f.unknownTypeflag);
      continue;
    }
    if (f.warning) fs.warn(f.warning);
    // add() keeps the fields an entry has (content facts included) only for the visible version.
    fs.add(f.name, f);
  }
}

/** Read one layer's stream into `fs`. */
export async function scanLayer(source: Readable, layerDesc: Pick<Descriptor, 'mediaType'>, fs: ImageFs): Promise<void> {
  applyFacts(await readLayerFacts(source, layerDesc), fs);
}

