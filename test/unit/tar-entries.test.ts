// Tar entries written by hand (test/helpers/tar-sparse.mjs) where no tool writes them: a PAX 1.0
// sparse file as Go's archive/tar reads it, sparse formats and maps that cannot be read, unknown
// typeflags, the rules where Go and tar-stream part ways, and malformed ELF headers — each read
// through the layer scanner and judged as the binaries check judges an image.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { judgeBinaries } from '../../src/verify/binaries.js';
import { describeElf, elfHeaderProblem, parseElf } from '../../src/verify/elf.js';
import { TarReader, type TarEntry } from '../../src/verify/tar.js';
import { parsePlatform } from '../../src/platform/platform.js';
import { judgeLayer } from '../helpers/judge.js';
import { checksummed, END, file, header, pax, sparse10 } from '../helpers/tar-sparse.mjs';

const FIXTURES = join(__dirname, '..', 'fixtures', 'elf');
const trueArm64 = readFileSync(join(FIXTURES, 'true-arm64'));
const armHead = trueArm64.subarray(0, 4096);
const amd64 = parsePlatform('linux/amd64');
const cfg = { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] } };

/** What the reader makes of a tar: each entry and up to `want` bytes of its content. */
async function read(tar: Buffer, want = Infinity): Promise<{ entry: TarEntry; content: Buffer }[]> {
  const out: { entry: TarEntry; content: Buffer }[] = [];
  const reader = new TarReader({
    onEntry: (entry) => {
      const item = { entry, content: Buffer.alloc(0) };
      out.push(item);
      const parts: Buffer[] = [];
      let have = 0;
      return {
        wanted: () => Math.min(want, entry.size) - have,
        write: (c) => {
          parts.push(Buffer.from(c));
          have += c.length;
        },
        end: () => {
          item.content = Buffer.concat(parts);
        },
      };
    },
  });
  await pipeline(Readable.from([tar], { objectMode: false }), reader);
  return out;
}

const judge = judgeLayer;

const tarOf = (...entries: Buffer[]) => Buffer.concat([...entries, END]);
const names = async (tar: Buffer) => (await read(tar)).map((e) => e.entry.name);

describe('PAX 1.0 sparse files, as Go writes the records', () => {
  const marker = Buffer.from('the middle');
  const tool = sparse10('usr/bin/tool', 1024 * 1024, [
    { offset: 0, data: armHead },
    { offset: 512 * 1024, data: marker },
  ]);

  it('is the real file: its GNU.sparse.name, GNU.sparse.realsize, the regions in place and zeros between', async () => {
    const [t] = await read(tarOf(tool));
    expect(t!.entry).toMatchObject({ name: 'usr/bin/tool', kind: 'file', size: 1024 * 1024, sparse: 'PAX 1.0', mode: 0o755 });
    const c = t!.content;
    expect(c.length).toBe(1024 * 1024);
    expect(c.subarray(0, 4096).equals(armHead)).toBe(true);
    expect(c.subarray(4096, 512 * 1024).every((b) => b === 0)).toBe(true);
    expect(c.subarray(512 * 1024, 512 * 1024 + marker.length).toString()).toBe('the middle');
    expect(c.subarray(512 * 1024 + marker.length).every((b) => b === 0)).toBe(true);
  });

  it('hidden in an amd64 image, fails the binaries check by its real name', async () => {
    const r = await judge(tarOf(tool));
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('/usr/bin/tool is ELF64 LSB AArch64');
    expect(r.fs.entries.has('usr/bin/GNUSparseFile.0/tool')).toBe(false);
    expect(r.stats).toMatchObject({ filesScanned: 2, elfChecked: 2, mismatches: 1 });
  });

  it('of a terabyte: only what the verifier keeps is made of its hole', async () => {
    const huge = sparse10('usr/bin/huge', 2 ** 40, [{ offset: 0, data: armHead }]);
    const [t] = await read(tarOf(huge), 256 * 1024);
    expect(t!.entry.size).toBe(2 ** 40);
    expect(t!.content.length).toBe(256 * 1024);
    const r = await judge(tarOf(huge));
    expect(r.fs.entries.get('usr/bin/huge')).toMatchObject({ size: 2 ** 40, elf: { machine: 183 } });
    expect(r.check.evidence).toContain('/usr/bin/huge is ELF64 LSB AArch64');
  });

  it('a map that spans blocks, and one region per line, are read as Go reads them', async () => {
    const regions = Array.from({ length: 300 }, (_, k) => ({ offset: k * 8192, data: Buffer.from([k & 0xff]) }));
    const [t] = await read(tarOf(sparse10('data/many', 300 * 8192, regions)));
    expect(t!.entry.unreadable).toBeUndefined();
    for (const k of [0, 1, 150, 299]) expect(t!.content[k * 8192]).toBe(k & 0xff);
    expect(t!.content[8191]).toBe(0);
  });
});

describe('what cannot be read is a failure naming the file, and the entries after it are still read', () => {
  const after = file('usr/bin/after', armHead, { mode: 0o755 });

  it('an unknown GNU sparse version: reported under the name Go gives it', async () => {
    const v2 = sparse10('usr/bin/tool', 4096, [{ offset: 0, data: armHead }], {
      records: [
        ['GNU.sparse.major', '2'],
        ['GNU.sparse.minor', '0'],
        ['GNU.sparse.name', 'usr/bin/tool'],
      ],
    });
    const entries = await read(tarOf(v2, after));
    expect(entries.map((e) => [e.entry.name, e.entry.unreadable])).toEqual([
      ['usr/bin/GNUSparseFile.0/tool', 'GNU sparse format 2.0 (for usr/bin/tool) is not supported'],
      ['usr/bin/after', undefined],
    ]);
    const r = await judge(tarOf(v2, after));
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('1 file could not be read as container runtimes extract it: /usr/bin/GNUSparseFile.0/tool (GNU sparse format 2.0 (for usr/bin/tool) is not supported)');
    expect(r.check.evidence).toContain('/usr/bin/after is ELF64 LSB AArch64');
    expect(r.stats).toMatchObject({ unreadable: 1, mismatches: 1 });
  });

  it.each([
    ['more data than the map names', { map: '1\n0\n10\n' }, 'sparse map names 10 bytes of data, the entry holds 4096'],
    ['a region past the real size', { map: '1\n8000\n4096\n' }, "sparse map runs past the file's size (4096)"],
    ['a map that is not numbers', { map: 'one\n0\n4096\n' }, 'GNU sparse 1.0 map starts with "one", not a region count'],
    ['a map longer than the entry', { map: '9\n0\n4096\n' }, 'GNU sparse 1.0 map runs past the data of the entry'],
  ])('a 1.0 map with %s', async (_what, opts, why) => {
    const bad = sparse10('usr/bin/tool', 4096, [{ offset: 0, data: armHead }], opts);
    const entries = await read(tarOf(bad, after));
    expect(entries.map((e) => [e.entry.name, e.entry.unreadable])).toEqual([
      ['usr/bin/tool', why],
      ['usr/bin/after', undefined],
    ]);
    const r = await judge(tarOf(bad, after));
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain(`/usr/bin/tool (${why})`);
  });

  it('PAX 0.1 maps with the wrong count or overlapping regions', async () => {
    const v01 = (map: string, numblocks: string) =>
      Buffer.concat([
        pax([
          ['GNU.sparse.major', '0'],
          ['GNU.sparse.minor', '1'],
          ['GNU.sparse.name', 'usr/bin/tool'],
          ['GNU.sparse.size', '8192'],
          ['GNU.sparse.numblocks', numblocks],
          ['GNU.sparse.map', map],
        ]),
        file('usr/bin/GNUSparseFile.0/tool', armHead),
      ]);
    const entries = await read(tarOf(v01('0,4096', '2'), v01('0,4096,100,0', '2'), v01('4096,4096', '1'), after));
    expect(entries.map((e) => e.entry.unreadable)).toEqual(['GNU sparse map has 2 numbers for 2 regions', 'sparse map regions overlap or are out of order', undefined, undefined]);
    expect(entries[2]!.content.subarray(4096).equals(armHead)).toBe(true);
  });
});

describe('entry types: understood or reported', () => {
  const arm = (name: string) => file(name, armHead, { mode: 0o755 });

  it('an unknown typeflag on a PATH folder fails, elsewhere warns; both counted, their data skipped', async () => {
    const tar = tarOf(file('usr/bin/y', armHead, { typeflag: 'V' }), file('opt/z', Buffer.from('data'), { typeflag: 'X' }), arm('opt/after'));
    expect(await names(tar)).toEqual(['usr/bin/y', 'opt/z', 'opt/after']);
    const r = await judge(tar);
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain("1 tar entry of an unknown type, which runtimes refuse to extract on a program path (the entrypoint, PATH, a loader or a library): /usr/bin/y (typeflag 'V', layer 1)");
    expect(r.check.evidence).toContain("1 tar entry of an unknown type, which runtimes refuse to extract: /opt/z (typeflag 'X', layer 1)");
    expect(r.stats).toMatchObject({ unknownTypes: 2 });
    const elsewhere = await judge(tarOf(file('opt/z', Buffer.from('data'), { typeflag: 'X' })));
    expect(elsewhere.check.verdict).toBe('warn');
  });

  it("a contiguous file ('7') is read as a file, with a warning that runtimes refuse it", async () => {
    const r = await judge(tarOf(file('usr/bin/seven', armHead, { typeflag: '7' })));
    expect(r.check.evidence).toContain('/usr/bin/seven is ELF64 LSB AArch64');
    expect(r.check.evidence).toContain("layer 1: /usr/bin/seven is a contiguous file (typeflag '7'), which containerd and moby refuse to extract");
  });

  it('links, devices, directories and fifos have no data, whatever their size field says (as in Go)', async () => {
    // tar-stream would read 512 bytes of "data" after the symlink and miss the file hidden there.
    const hidden = header('usr/bin/hidden', armHead.length, { mode: 0o755 });
    const tar = tarOf(header('usr/bin/link', 512, { typeflag: '2', linkname: 'hidden' }), hidden, armHead, header('dev/null', 512, { typeflag: '3' }), arm('usr/bin/after'));
    expect(await names(tar)).toEqual(['usr/bin/link', 'usr/bin/hidden', 'dev/null', 'usr/bin/after']);
    const r = await judge(tar);
    expect(r.check.evidence).toContain('/usr/bin/hidden is ELF64 LSB AArch64');
  });

  it("PAX path and linkpath name the next entry only; GNU 'L' wins over a PAX path; a global header names nothing", async () => {
    const tar = tarOf(
      pax([['path', 'usr/bin/real']]),
      arm('short'),
      pax([['linkpath', '/usr/bin/real']]),
      header('usr/bin/ln', 0, { typeflag: '2', linkname: 'x' }),
      pax([['path', 'from-pax']]),
      file('././@LongLink', Buffer.from('usr/bin/from-gnu\0'), { typeflag: 'L', magic: 'gnu' }),
      arm('short2'),
      pax([['path', 'usr/bin/global']], { typeflag: 'g' }),
      arm('usr/bin/own'),
      arm('usr/bin/plain'),
    );
    const entries = await read(tar);
    expect(entries.map((e) => [e.entry.name, e.entry.linkname])).toEqual([
      ['usr/bin/real', ''],
      ['usr/bin/ln', '/usr/bin/real'],
      ['usr/bin/from-gnu', ''],
      ['usr/bin/own', ''],
      ['usr/bin/plain', ''],
    ]);
  });

  it('a V7 header (no magic) and a base-256 size are read as Go reads them', async () => {
    const v7 = header('usr/bin/v7', armHead.length);
    v7.fill(0, 257, 265);
    const b256 = header('usr/bin/b256', 0);
    b256.fill(0, 124, 136);
    b256[124] = 0x80;
    b256.writeUInt32BE(armHead.length, 132);
    const tar = tarOf(checksummed(v7), armHead, checksummed(b256), armHead);
    const entries = await read(tar);
    expect(entries.map((e) => [e.entry.name, e.entry.size])).toEqual([
      ['usr/bin/v7', 4096],
      ['usr/bin/b256', 4096],
    ]);
    expect(entries.every((e) => e.content.equals(armHead))).toBe(true);
  });
});

describe('the archive itself', () => {
  it('ends at two zero blocks (what follows is not read), or at any header boundary', async () => {
    expect(await names(Buffer.concat([file('a', Buffer.from('x')), END, file('b', Buffer.from('y'))]))).toEqual(['a']);
    expect(await names(file('a', Buffer.from('x')))).toEqual(['a']);
  });

  it('fails on a header after one zero block, a bad checksum, a cut-off body and an oversized header', async () => {
    await expect(read(Buffer.concat([file('a', Buffer.from('x')), Buffer.alloc(512), file('b', Buffer.from('y'))]))).rejects.toThrow(/follows a zero block/);
    const bad = header('a', 1);
    bad[0] = 0x62;
    await expect(read(tarOf(bad, Buffer.alloc(512)))).rejects.toThrow(/bad checksum/);
    await expect(read(Buffer.concat([header('usr/bin/x', 4096), armHead.subarray(0, 100)]))).rejects.toThrow(/ends inside the data of usr\/bin\/x \(3996 bytes short\)/);
    await expect(read(Buffer.concat([header('PaxHeaders/x', 8 * 1024 * 1024, { typeflag: 'x' }), Buffer.alloc(4096)]))).rejects.toThrow(/Header exceeds max size/);
  });
});

describe('malformed ELF headers are counted and reported', () => {
  const truncated = armHead.subarray(0, 16);
  const badClass = Buffer.from(armHead.subarray(0, 4096));
  badClass[4] = 7;
  const badData = Buffer.from(armHead.subarray(0, 4096));
  badData[5] = 0;

  it('say why', () => {
    expect(elfHeaderProblem(truncated)).toBe('truncated ELF header (16 of its 64 bytes)');
    expect(elfHeaderProblem(badClass)).toBe('bad EI_CLASS 7');
    expect(elfHeaderProblem(badData)).toBe('bad EI_DATA 0');
    expect(elfHeaderProblem(Buffer.from('\x7fEL'))).toBeUndefined();
    expect(elfHeaderProblem(armHead)).toBeUndefined();
    expect(describeElf(parseElf(armHead)!)).toBe('ELF64 LSB AArch64');
  });

  it('a truncated one at /usr/bin/x fails; a bad EI_CLASS in /opt/x warns; both counted', async () => {
    const r = await judge(tarOf(file('usr/bin/x', truncated, { mode: 0o755 }), file('opt/x', badClass)));
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('1 malformed ELF file on a program path (the entrypoint, PATH, a loader or a library): /usr/bin/x (truncated ELF header (16 of its 64 bytes))');
    expect(r.check.evidence).toContain('1 malformed ELF file: /opt/x (bad EI_CLASS 7)');
    expect(r.stats).toMatchObject({ filesScanned: 3, elfChecked: 1, mismatches: 0, malformed: 2 });
    const opt = await judge(tarOf(file('opt/x', badClass)));
    expect(opt.check.verdict).toBe('warn');
    expect(opt.stats).toMatchObject({ malformed: 1 });
  });

  it('as the entrypoint, a loader or a library they fail, named once', async () => {
    const entry = await judge(tarOf(file('app/run', badData, { mode: 0o755 })), { ...cfg, config: { Cmd: ['/app/run'] } });
    expect(entry.check.verdict).toBe('fail');
    expect(entry.check.evidence).toContain('entrypoint /app/run is a malformed ELF file (bad EI_DATA 0)');
    expect(entry.check.evidence).not.toContain('1 malformed ELF file');
    expect(entry.stats).toMatchObject({ malformed: 1 });
    // /usr/lib is a library folder; --allow excuses what it names.
    const lib = await judge(tarOf(file('usr/lib/libx.so', truncated)));
    expect(lib.check.verdict).toBe('fail');
    const allowed = judgeBinaries(lib.fs, amd64, cfg as never, true, { allow: ['/usr/lib/*.so'] });
    expect(allowed.check.verdict).toBe('pass');
    expect(allowed.stats).toMatchObject({ malformed: 1, excused: 1 });
  });

  it('as the loader of a program it fails once, as that loader', async () => {
    const trueAmd64 = readFileSync(join(FIXTURES, 'true-amd64'));
    const tar = tarOf(header('lib64', 0, { typeflag: '2', linkname: 'opt/ld' }), file('opt/ld/ld-linux-x86-64.so.2', truncated), file('usr/bin/true', trueAmd64, { mode: 0o755 }));
    const r = await judge(tar);
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('loader /lib64/ld-linux-x86-64.so.2 (/opt/ld/ld-linux-x86-64.so.2) is a malformed ELF file (truncated ELF header (16 of its 64 bytes)), expected x86-64 for linux/amd64 (needed by /usr/bin/true)');
    expect(r.check.evidence).not.toContain('1 malformed ELF file');
    expect(r.stats).toMatchObject({ malformed: 1, mismatches: 1 });
  });

  it('the stats of a clean image keep their four fields only', async () => {
    const r = await judge(tarOf(file('usr/bin/y', Buffer.from('#!/bin/sh\n'))));
    expect(r.stats).toEqual({ filesScanned: 2, elfChecked: 1, mismatches: 0, excused: 0 });
  });
});
