// Stream an image's layers from the registry, top layer first, into an ImageFs: decompress
// (gzip, plain tar, zstd where Node has it), read only the first bytes of each visible file
// (whole small files only where ARM attributes are wanted), verify each blob's digest as it
// flows, and stop early once the caller has what it needs. Memory stays bounded whatever the
// layer size; nothing is written to disk.
import { Readable, type Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { extract, type Header as Headers } from "tar-stream";
import { CrossbuildError, RegistryError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { isElf, parseElf } from './elf.js';
import { tracked } from '../util/inflight.js';
import { ImageFs, type EntryType } from './image-fs.js';

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

function typeOf(h: Headers): EntryType {
  switch (h.type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'dir';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    default:
      return 'other';
  }
}

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

/** Consume a tar entry, keeping its first bytes: all of an ELF file (to a limit), the first line of anything else. */
function consumeEntry(entry: Readable, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let keep = size === 0 ? 0 : Math.min(size, 4096);
    let decided = false;
    entry.on('data', (c: Buffer) => {
      if (!decided && have + c.length >= 4) {
        decided = true;
        const head = have === 0 ? c : Buffer.concat([...chunks, c]);
        keep = isElf(head) ? (size <= WHOLE_FILE_LIMIT ? size : ELF_HEAD_LIMIT) : OTHER_HEAD_LIMIT;
      }
      if (have < keep) {
        const take = c.subarray(0, keep - have);
        chunks.push(take);
        have += take.length;
      }
    });
    entry.on('end', () => resolve(Buffer.concat(chunks)));
    entry.on('error', reject);
  });
}

async function scanLayer(source: Readable, layerDesc: Descriptor, fs: ImageFs): Promise<void> {
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
  const ex = extract();
  const dec = decompressorFor(first, layerDesc.mediaType);
  const piped = dec ? pipeline(source, dec, ex) : pipeline(source, ex);
  const consume = (async () => {
    for await (const entry of ex) {
      const h = entry.header;
      const type = typeOf(h);
      const visible = fs.add(h.name, { type, ...(h.linkname ? { link: h.linkname } : {}), size: h.size ?? 0, mode: h.mode ?? 0 });
      const head = await consumeEntry(entry as unknown as Readable, visible && type === 'file' ? (h.size ?? 0) : 0);
      if (visible && head.length > 0) {
        if (isElf(head)) {
          // All of an ELF file up to WHOLE_FILE_LIMIT was kept, so it is parsed as a whole file.
          const info = parseElf(head, head.length === (h.size ?? 0));
          if (info) visible.elf = info;
        } else if (head[0] === 0x23 && head[1] === 0x21) {
          visible.shebang = head.subarray(2, Math.min(head.length, 256)).toString('utf8').split('\n')[0]!.trim();
        }
      }
    }
  })();
  try {
    await Promise.all([piped, consume]);
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
    for (let attempt = 1; ; attempt++) {
      fs.beginLayer(i);
      try {
        const stream = await client.getBlob(registry, repository, layer.digest, { size: layer.size, what });
        try {
          await tracked(`reading ${what} (${layer.digest})`, () => scanLayer(stream, layer, fs));
        } catch (e) {
          stream.destroy();
          throw e;
        }
        break;
      } catch (e) {
        // A stream that broke off is read again from the start, the layer's partial entries dropped.
        const retriable = e instanceof RegistryError && e.retriable && e.status === undefined;
        if (retriable && attempt < client.transport.attempts) {
          fs.resetLayer();
          await client.transport.backoff('GET', registry, `/v2/${repository}/blobs/${layer.digest}`, attempt, (e as Error).message.replace(/^GET \S+ /, ''));
          continue;
        }
        if (e instanceof CrossbuildError) throw e;
        throw new CrossbuildError(`${what} (${layer.digest}) could not be read as a tar stream: ${(e as Error).message}`);
      }
    }
    fs.endLayer();
    if (i > 0 && opts.done?.(fs)) return { fs, complete: false };
  }
  return { fs, complete: true };
}
