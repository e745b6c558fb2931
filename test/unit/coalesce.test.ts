// The writes a layer's body reaches the decompressor in (layer-facts.ts Coalesce): 1 MiB
// buffers, used again once a real gunzip has consumed them. Whatever the body's pieces and
// however slowly the inflated side is read, what comes out is the layer, byte for byte.
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Coalesce } from '../../src/verify/layer-facts.js';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A body of 9 MiB (random, so it barely compresses: many buffers), cut into pieces of these sizes in turn. */
function body(pieces: number[]): { plain: Buffer; parts: Buffer[] } {
  const plain = randomBytes(9 * MiB);
  const gz = gzipSync(plain, { level: 1 });
  const parts: Buffer[] = [];
  for (let off = 0, i = 0; off < gz.length; i++) {
    const n = pieces[i % pieces.length]!;
    parts.push(gz.subarray(off, off + n));
    off += n;
  }
  return { plain, parts };
}

/** What passes between two streams, unchanged: how many buffers, and how many distinct ones. */
function counter(): { tap: Transform; handedOn: () => number; distinct: () => number } {
  const seen = new Set<ArrayBufferLike>();
  let n = 0;
  const tap = new Transform({
    transform(c: Buffer, _e, cb) {
      n++;
      seen.add(c.buffer);
      cb(null, c);
    },
  });
  return { tap, handedOn: () => n, distinct: () => seen.size };
}

/** Through Coalesce into a real gunzip, the inflated side taking `slow` ms per chunk. */
async function run(parts: Buffer[], slow: number): Promise<{ out: Buffer; handedOn: number; distinct: number }> {
  const gunzip = createGunzip({ chunkSize: MiB });
  const count = counter();
  const out: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      out.push(Buffer.from(c));
      if (slow > 0) setTimeout(cb, slow);
      else cb();
    },
  });
  await pipeline(Readable.from(parts, { objectMode: false }), new Coalesce(MiB, gunzip), count.tap, gunzip, sink);
  return { out: Buffer.concat(out), handedOn: count.handedOn(), distinct: count.distinct() };
}

describe('a layer body joined into 1 MiB writes for the decompressor', () => {
  const cases: [string, number[], number][] = [
    ['64 KiB pieces, read as fast as it comes', [64 * 1024], 0],
    ['odd pieces, some larger than a buffer', [1, 4093, 3 * MiB + 7, 65536, 17], 0],
    ['64 KiB pieces, the inflated side read slowly (the decompressor falls behind)', [64 * 1024], 15],
  ];
  for (const [name, pieces, slow] of cases) {
    it(`${name}: the layer comes out byte for byte`, async () => {
      const { plain, parts } = body(pieces);
      const r = await run(parts, slow);
      expect(r.out.length).toBe(plain.length);
      expect(sha(r.out)).toBe(sha(plain));
      expect(r.handedOn).toBeGreaterThanOrEqual(9);
    });
  }

  it('uses its buffers again once the decompressor has consumed them', async () => {
    const { plain, parts } = body([64 * 1024]);
    const r = await run(parts, 0);
    expect(sha(r.out)).toBe(sha(plain));
    // Nine or more MiB handed on in a handful of buffers, not one new buffer per MiB.
    expect(r.distinct).toBeLessThan(r.handedOn);
    expect(r.distinct).toBeLessThanOrEqual(5);
  });

  it('without a consumer that counts what it consumed, every buffer is a new one', async () => {
    const { parts } = body([64 * 1024]);
    const count = counter();
    await pipeline(Readable.from(parts, { objectMode: false }), new Coalesce(MiB), count.tap, new Writable({ write: (_c, _e, cb) => cb() }));
    expect(count.handedOn()).toBeGreaterThanOrEqual(9);
    expect(count.distinct()).toBe(count.handedOn());
  });
});
