// Stream an image's layers from the registry, top layer first, into an ImageFs: decompress
// (gzip, plain tar, zstd where Node has it), read the tar as container runtimes do (tar.ts:
// Go's rules, sparse files reassembled), keep only the first bytes of each visible file
// (whole small files only where ARM attributes are wanted), verify each blob's digest as it
// flows, and stop early once the caller has what it needs. Memory stays bounded whatever the
// layer size; nothing is written to disk.
import { Readable, type Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { CrossbuildError, RegistryError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { elfHeaderProblem, isElf, parseElf } from './elf.js';
import { tracked } from '../util/inflight.js';
import { ImageFs, normalizeTarPath, type EntryType, type FsEntry } from './image-fs.js';
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

export interface ScanOptions {
  /** Checked after each layer: true stops the scan. */
  readonly done?: (fs: ImageFs) => boolean;
}

export interface ScanResult {
  readonly fs: ImageFs;
  /** Every layer was read. */
  readonly complete: boolean;
}

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

/** Pick the decompressor from the first bytes, not the media type (which may be wrong). */
function decompressorFor(first: Buffer, mediaType: string): Transform | undefined {
  // Big output chunks: far fewer threadpool round trips than the 16 KiB default.
  if (first[0] === 0x1f && first[1] === 0x8b) return zlib.createGunzip({ chunkSize: 256 * 1024 });
  if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) {
    const z = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
    if (!z) throw new CrossbuildError(`zstd layer (${mediaType}): this Node.js (${process.version}) has no zstd; use Node ≥ 22.15 to check this image's binaries`);
    return z();
  }
  return undefined; // plain tar
}

/** Keeps a file's first bytes: all of an ELF file (to a limit), the first line of anything else. */
class Head implements EntrySink {
  private readonly chunks: Buffer[] = [];
  private have = 0;
  private keep: number;
  private decided = false;

  constructor(
    private readonly size: number,
    private readonly done: (head: Buffer) => void,
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
    this.chunks.push(take);
    this.have += take.length;
  }

  end(): void {
    this.done(Buffer.concat(this.chunks));
  }
}

/** What a file's first bytes say: its ELF header (or why it cannot be read), or its #! line. */
function classify(e: FsEntry, head: Buffer): void {
  if (head.length === 0) return;
  if (isElf(head)) {
    // All of an ELF file up to WHOLE_FILE_LIMIT was kept, so it is parsed as a whole file.
    const info = parseElf(head, head.length === e.size);
    if (info) e.elf = info;
    else e.malformedElf = elfHeaderProblem(head) ?? 'unreadable ELF header';
  } else if (head[0] === 0x23 && head[1] === 0x21) {
    e.shebang = head.subarray(2, Math.min(head.length, 256)).toString('utf8').split('\n')[0]!.trim();
  }
}

/** Read one layer's stream (compressed or not) into `fs`, whose layer the caller begins and ends. */
export async function scanLayer(source: Readable, layerDesc: Pick<Descriptor, 'mediaType'>, fs: ImageFs): Promise<void> {
  // A body that broke off, or was too short or too long, fails the scan with that reason, which
  // says more than the tar parser's; the listener also keeps it from failing the process.
  let sourceError: Error | undefined;
  source.on('error', (e) => {
    sourceError ??= e;
  });
  // Peek at the first bytes to choose the decompressor.
  const first: Buffer = await new Promise((resolve, reject) => {
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
  const reader = new TarReader({
    onEntry: (t) => {
      if (t.kind === 'unknown') {
        fs.addUnknown(t.name, t.typeflag);
        return undefined;
      }
      const type = typeOf(t.kind);
      // Refused whether or not an upper layer hides it: the whole layer fails to extract.
      const refused = REFUSED[t.typeflag];
      if (refused) fs.warn(`/${normalizeTarPath(t.name).path} is ${refused} (typeflag '${t.typeflag}'), which containerd and moby refuse to extract ("unhandled tar header type")`);
      const visible = fs.add(t.name, { type, ...(t.linkname ? { link: t.linkname } : {}), size: t.size, mode: t.mode, ...(t.unreadable ? { unreadable: t.unreadable } : {}) });
      if (!visible) return undefined;
      return type === 'file' ? new Head(t.size, (head) => classify(visible, head)) : undefined;
    },
  });
  const dec = decompressorFor(first, layerDesc.mediaType);
  const piped = dec ? pipeline(source, dec, reader) : pipeline(source, reader);
  try {
    await piped;
  } catch (e) {
    // The parser may fail first on a body that ends early: give the body's own verdict a moment.
    if (!sourceError) await Promise.race([finished(source).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    throw sourceError ?? e;
  }
  if (sourceError) throw sourceError;
}

export async function scanImage(client: RegistryClient, registry: string, repository: string, layers: readonly Descriptor[], opts: ScanOptions): Promise<ScanResult> {
  const fs = new ImageFs();
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const what = `layer ${i} of ${layers.length} of ${registry}/${repository}`;
    const path = `/v2/${repository}/blobs/${layer.digest}`;
    fs.beginLayer(i);
    try {
      await client.transport.retry(
        'GET',
        registry,
        path,
        async () => {
          const stream = await client.getBlob(registry, repository, layer.digest, { size: layer.size, what });
          try {
            await tracked(`reading ${what} (${layer.digest})`, () => scanLayer(stream, layer, fs));
          } catch (e) {
            stream.destroy();
            // A stream that broke off is read again from the start, the layer's partial entries dropped.
            fs.resetLayer();
            throw e;
          }
        },
        (e) => (e instanceof RegistryError && e.retriable && e.status === undefined ? { reason: e.message.replace(/^GET \S+ /, '') } : undefined),
      );
    } catch (e) {
      if (e instanceof CrossbuildError) throw e;
      throw new CrossbuildError(`${what} (${layer.digest}) could not be read as a tar stream: ${(e as Error).message}`);
    }
    fs.endLayer();
    if (i > 0 && opts.done?.(fs)) return { fs, complete: false };
  }
  return { fs, complete: true };
}
