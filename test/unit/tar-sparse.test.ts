// GNU tar's sparse files, long names and PAX records, made by GNU tar itself and read back as a
// container runtime reads them: the real name, the logical content with its holes as zeros, and
// an arm64 binary hidden that way caught by the binaries check of an amd64 image.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeElf, parseElf } from '../../src/verify/elf.js';
import { TarReader, type TarEntry } from '../../src/verify/tar.js';
import { judgeLayer } from '../helpers/judge.js';
import { parsePlatform } from '../../src/platform/platform.js';

const FIXTURES = join(__dirname, '..', 'fixtures', 'elf');
const trueArm64 = readFileSync(join(FIXTURES, 'true-arm64'));
const REAL_SIZE = 4 * 1024 * 1024;
/** The arm64 binary at 0, then 29 marked 4 KiB regions 64 KiB apart, then a hole to 4 MiB: 30 regions, more than an old GNU header's 4. */
const REGIONS = [{ offset: 0, data: trueArm64 }, ...Array.from({ length: 29 }, (_, k) => ({ offset: 128 * 1024 + k * 64 * 1024, data: Buffer.alloc(4096, k + 1) }))];

let dir: string;
let logical: Buffer;

/** Every entry of a tar, with all of its logical content, fed in `chunk`-byte pieces. */
async function readAll(tar: Buffer, chunk = tar.length): Promise<{ entry: TarEntry; content: Buffer }[]> {
  const out: { entry: TarEntry; content: Buffer }[] = [];
  const reader = new TarReader({
    onEntry: (entry) => {
      const parts: Buffer[] = [];
      let have = 0;
      const item = { entry, content: Buffer.alloc(0) };
      out.push(item);
      return {
        wanted: () => entry.size - have,
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
  const pieces = function* () {
    for (let i = 0; i < tar.length; i += chunk) yield tar.subarray(i, i + chunk);
  };
  await pipeline(Readable.from(pieces(), { objectMode: false }), reader);
  return out;
}

const judgeAmd64 = judgeLayer;

const gnuTar = (args: string[]) => execFileSync('tar', args, { cwd: dir, maxBuffer: 64 * 1024 * 1024 });

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeAll(() => {
  expect(execFileSync('tar', ['--version']).toString()).toMatch(/^tar \(GNU tar\) 1\.\d+/);
  dir = mkdtempSync(join(tmpdir(), 'cb-tar-sparse-'));
  mkdirSync(join(dir, 'root', 'usr', 'bin'), { recursive: true });
  // Written region by region into a file truncated to its size: everything else is a hole.
  const path = join(dir, 'root', 'usr', 'bin', 'tool');
  const fd = openSync(path, 'w', 0o755);
  ftruncateSync(fd, REAL_SIZE);
  for (const r of REGIONS) writeSync(fd, r.data, 0, r.data.length, r.offset);
  closeSync(fd);
  logical = Buffer.alloc(REAL_SIZE);
  for (const r of REGIONS) r.data.copy(logical, r.offset);
});

const formats = [
  { format: 'PAX 0.0', args: ['--format=pax', '--sparse-version=0.0'], stored: 'GNU.sparse.offset=' },
  { format: 'PAX 0.1', args: ['--format=pax', '--sparse-version=0.1'], stored: 'GNU.sparse.map=' },
  { format: 'PAX 1.0', args: ['--format=pax', '--sparse-version=1.0'], stored: 'GNUSparseFile.' },
  { format: 'old GNU', args: ['--format=gnu'], stored: undefined },
] as const;

describe.each(formats)('GNU tar --sparse, $format', ({ format, args, stored }) => {
  let tar: Buffer;
  beforeAll(() => {
    tar = gnuTar(['--sparse', ...args, '-C', 'root', '-cf', '-', 'usr/bin/tool']);
    // GNU tar stored it sparse (the holes are not in the archive), in the format asked for.
    expect(tar.length).toBeLessThan(REAL_SIZE / 2);
    if (stored) expect(tar.includes(stored)).toBe(true);
    else {
      expect(String.fromCharCode(tar[156]!)).toBe('S');
      expect(tar[482]).toBe(1); // more regions than the header holds: extension blocks follow
    }
    // GNU tar itself lists the real name and size.
    expect(execFileSync('tar', ['-tvf', '-'], { input: tar }).toString()).toMatch(new RegExp(`${REAL_SIZE} .* usr/bin/tool\n$`));
  });

  it('reads the real name and the logical content, holes as zeros, in any chunking', async () => {
    for (const chunk of [tar.length, 333, 512]) {
      const entries = await readAll(tar, chunk);
      expect(entries.map((e) => e.entry.name)).toEqual(['usr/bin/tool']);
      const [{ entry, content }] = entries as [{ entry: TarEntry; content: Buffer }];
      expect(entry).toMatchObject({ kind: 'file', size: REAL_SIZE, sparse: format });
      expect(entry.unreadable).toBeUndefined();
      expect(content.length).toBe(REAL_SIZE);
      expect(content.equals(logical)).toBe(true);
      expect(describeElf(parseElf(content.subarray(0, 64))!)).toBe('ELF64 LSB AArch64');
    }
  });

  it('an amd64 image with it fails, naming the file', async () => {
    const r = await judgeAmd64(tar);
    expect(r.check.verdict).toBe('fail');
    expect(r.check.evidence).toContain('1 of 2 ELF files are not linux/amd64: /usr/bin/tool is ELF64 LSB AArch64');
    expect(r.stats).toMatchObject({ elfChecked: 2, mismatches: 1 });
    if (format === 'old GNU') expect(r.check.evidence).toContain("/usr/bin/tool is an old GNU sparse file (typeflag 'S'), which containerd and moby refuse to extract");
    else expect(r.check.evidence).not.toContain('refuse');
  });
});

describe('GNU tar long names and PAX records', () => {
  const long = `usr/share/${'a'.repeat(60)}/${'b'.repeat(60)}/tool`;
  const target = `../../${'c'.repeat(120)}`;
  beforeAll(() => {
    mkdirSync(join(dir, 'names', long, '..'), { recursive: true });
    writeFileSync(join(dir, 'names', long), trueArm64);
    symlinkSync(target, join(dir, 'names', 'usr', 'share', 'link'));
  });

  it.each([
    ['gnu', "'L' and 'K' entries"],
    ['pax', 'path and linkpath records'],
  ])('--format=%s (%s)', async (fmt) => {
    const tar = gnuTar([`--format=${fmt}`, '-C', 'names', '-cf', '-', long, 'usr/share/link']);
    expect(tar.includes(fmt === 'gnu' ? '././@LongLink' : 'path=')).toBe(true);
    const entries = await readAll(tar, 100);
    expect(entries.map((e) => [e.entry.name, e.entry.kind, e.entry.linkname])).toEqual([
      [long, 'file', ''],
      ['usr/share/link', 'symlink', target],
    ]);
    expect(entries[0]!.content.equals(trueArm64)).toBe(true);
  });
});
