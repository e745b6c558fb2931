// The writes a layer's body reaches the decompressor in (layer-facts.ts Coalesce): 1 MiB
// buffers, used again once the decompressor has consumed them. Whatever the body's pieces,
// however the layer compresses and however slowly the inflated side is read, what comes out of
// a real decompressor is the layer, byte for byte.
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Coalesce } from '../../src/verify/layer-facts.js';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Cut `bytes` into pieces of these sizes in turn. */
function cut(bytes: Buffer, pieces: number[]): Buffer[] {
  const parts: Buffer[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = pieces[i % pieces.length]!;
    parts.push(bytes.subarray(off, off + n));
    off += n;
  }
  return parts;
}

/** 9 MiB that barely compress: many buffers. */
const random = () => randomBytes(9 * MiB);
/** Random runs between long runs of zeros: one MiB in inflates to many, held by the engine over many rounds. */
const sparse = () => Buffer.concat(Array.from({ length: 40 }, () => [randomBytes(128 * 1024), Buffer.alloc(2 * MiB)]).flat());

type Decompressor = zlib.Gunzip | (Writable & { readonly bytesWritten: number });

/**
 * The compressed pieces through Coalesce, piped straight into the decompressor as layer-facts.ts
 * does; the inflated side takes `slow` ms per chunk. Counts what Coalesce handed on.
 */
async function run(parts: Buffer[], dec: Decompressor, slow: number): Promise<{ digest: string; length: number; handedOn: number; distinct: number }> {
  const coalesce = new Coalesce(MiB, dec);
  const seen = new Set<ArrayBufferLike>();
  let handedOn = 0;
  coalesce.on('data', (c: Buffer) => {
    handedOn++;
    seen.add(c.buffer);
  });
  const hash = createHash('sha256');
  let length = 0;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      hash.update(c);
      length += c.length;
      if (slow > 0) setTimeout(cb, slow);
      else cb();
    },
  });
  await pipeline(Readable.from(parts, { objectMode: false }), coalesce, dec as Writable, sink);
  return { digest: hash.digest('hex'), length, handedOn, distinct: seen.size };
}

const gunzip = () => zlib.createGunzip({ chunkSize: MiB });

describe('a layer body joined into 1 MiB writes for the decompressor', () => {
  const cases: [string, () => Buffer, (plain: Buffer) => Buffer, number[], number][] = [
    ['64 KiB pieces, read as fast as it comes', random, (p) => zlib.gzipSync(p, { level: 1 }), [64 * 1024], 0],
    ['odd pieces, some larger than a buffer', random, (p) => zlib.gzipSync(p, { level: 1 }), [1, 4093, 3 * MiB + 7, 65536, 17], 0],
    ['the inflated side read slowly (the decompressor falls behind)', random, (p) => zlib.gzipSync(p, { level: 1 }), [64 * 1024], 15],
    ['a layer that inflates many times over (each buffer held over many rounds)', sparse, (p) => zlib.gzipSync(p, { level: 1 }), [64 * 1024], 2],
    ['three gzip members one after another', random, (p) => Buffer.concat([p.subarray(0, 3 * MiB), p.subarray(3 * MiB, 4 * MiB), p.subarray(4 * MiB)].map((x) => zlib.gzipSync(x, { level: 1 }))), [64 * 1024], 0],
  ];
  for (const [name, make, compress, pieces, slow] of cases) {
    it(`${name}: the layer comes out byte for byte`, async () => {
      const plain = make();
      const r = await run(cut(compress(plain), pieces), gunzip(), slow);
      expect([r.length, r.digest]).toEqual([plain.length, sha(plain)]);
      expect(r.handedOn).toBeGreaterThanOrEqual(4);
    });
  }

  it('zeros after the gzip stream (padding): the layer still comes out byte for byte', async () => {
    const plain = random();
    const r = await run(cut(Buffer.concat([zlib.gzipSync(plain, { level: 1 }), Buffer.alloc(3 * MiB)]), [64 * 1024]), gunzip(), 0);
    expect([r.length, r.digest]).toEqual([plain.length, sha(plain)]);
  });

  const zstd = (zlib as unknown as { createZstdDecompress?: () => Decompressor; zstdCompressSync?: (b: Buffer) => Buffer });
  it.skipIf(!zstd.createZstdDecompress)('a zstd layer (Node ≥ 22.15): byte for byte, its buffers used again', async () => {
    const plain = random();
    const r = await run(cut(zstd.zstdCompressSync!(plain), [64 * 1024]), zstd.createZstdDecompress!(), 0);
    expect([r.length, r.digest]).toEqual([plain.length, sha(plain)]);
    expect(r.distinct).toBeLessThan(r.handedOn);
  });

  it('uses its buffers again once the decompressor has consumed them', async () => {
    const plain = random();
    const r = await run(cut(zlib.gzipSync(plain, { level: 1 }), [64 * 1024]), gunzip(), 0);
    expect(r.digest).toBe(sha(plain));
    // Nine or more MiB handed on in a handful of buffers, not one new buffer per MiB.
    expect(r.handedOn).toBeGreaterThanOrEqual(9);
    expect(r.distinct).toBeLessThanOrEqual(5);
  });
});

describe('when a handed-on buffer is used again', () => {
  /** Write `text`, then let the chunk it completes be handed on. */
  async function feed(c: Coalesce, text: string): Promise<void> {
    c.write(Buffer.from(text));
    await new Promise((r) => setImmediate(r));
  }
  // Small buffers come from Node's shared pool: a buffer is its memory and where in it it starts.
  const same = (a: Buffer, b: Buffer) => a.buffer === b.buffer && a.byteOffset === b.byteOffset;

  it('only once the consumer has consumed up to its very end', async () => {
    const consumer = { bytesWritten: 0 };
    const c = new Coalesce(4, consumer);
    const got: { buf: Buffer; text: string }[] = [];
    c.on('data', (b: Buffer) => got.push({ buf: b, text: b.toString() }));
    await feed(c, 'abcd'); // handed on: bytes 0–4
    consumer.bytesWritten = 3; // one byte of it still unread
    await feed(c, 'efgh');
    consumer.bytesWritten = 4; // all of the first read, none of the second
    await feed(c, 'ijkl');
    expect(got.map((g) => g.text)).toEqual(['abcd', 'efgh', 'ijkl']);
    expect(same(got[1]!.buf, got[0]!.buf)).toBe(false);
    expect(same(got[2]!.buf, got[0]!.buf)).toBe(true);
  });

  it('never, without a consumer to ask', async () => {
    const c = new Coalesce(4);
    const got: Buffer[] = [];
    c.on('data', (b: Buffer) => got.push(b));
    for (const t of ['abcd', 'efgh', 'ijkl']) await feed(c, t);
    expect(got).toHaveLength(3);
    expect(got.some((b, i) => got.some((o, j) => j < i && same(b, o)))).toBe(false);
  });

  it('a size of nothing is refused', () => {
    expect(() => new Coalesce(0)).toThrow(/must be positive/);
  });
});
