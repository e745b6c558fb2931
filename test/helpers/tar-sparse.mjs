// Tar entries written by hand, byte for byte as GNU tar writes them and Go's archive/tar reads
// them, for what no tool can be told to write: a PAX 1.0 sparse file with chosen regions, a
// broken sparse map, an unknown typeflag, a symlink whose size field lies. Plain JavaScript, like
// ustar.mjs.

const BLOCK = 512;

/** @param {number} n */
export const padding = (n) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** The two zero blocks that end an archive. */
export const END = Buffer.alloc(2 * BLOCK);

/**
 * A ustar header block.
 * @param {string} name
 * @param {number} size
 * @param {{ typeflag?: string, mode?: number, linkname?: string, magic?: 'ustar' | 'gnu' }} [opts]
 * @returns {Buffer}
 */
export function header(name, size, opts = {}) {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0);
  h.write(`${(opts.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('14000000000\0', 136);
  h.write(opts.typeflag ?? '0', 156, 'latin1');
  if (opts.linkname) h.write(opts.linkname, 157);
  h.write(opts.magic === 'gnu' ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  return checksummed(h);
}

/** @param {Buffer} h */
export function checksummed(h) {
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/**
 * PAX records, each "LEN KEY=VALUE\n" where LEN counts itself.
 * @param {[string, string][]} records
 */
export function paxData(records) {
  return Buffer.concat(
    records.map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(rest) + 1;
      while (String(len).length + Buffer.byteLength(rest) !== len) len++;
      return Buffer.from(`${len}${rest}`);
    }),
  );
}

/**
 * A PAX extended header ('x', or 'g' for a global one) with its data and padding.
 * @param {[string, string][]} records
 * @param {{ typeflag?: string, name?: string }} [opts]
 */
export function pax(records, opts = {}) {
  const data = paxData(records);
  return Buffer.concat([header(opts.name ?? 'PaxHeaders.0/entry', data.length, { typeflag: opts.typeflag ?? 'x' }), data, padding(data.length)]);
}

/**
 * A regular file (or any entry) with its data and padding.
 * @param {string} name
 * @param {Buffer} data
 * @param {{ typeflag?: string, mode?: number, linkname?: string, magic?: 'ustar' | 'gnu' }} [opts]
 */
export function file(name, data, opts = {}) {
  return Buffer.concat([header(name, data.length, opts), data, padding(data.length)]);
}

/**
 * A PAX 1.0 sparse file as GNU tar writes it (and Go reads it): the records name the real file
 * and size, the header carries a `GNUSparseFile.0/` name, and the data starts with the map — the
 * region count, then each region's offset and length, one decimal a line, padded to a block —
 * followed by the regions' bytes.
 * @param {string} realName
 * @param {number} realSize
 * @param {{ offset: number, data: Buffer }[]} regions
 * @param {{ mode?: number, records?: [string, string][], map?: string }} [opts] `map` replaces the map text (to break it)
 */
export function sparse10(realName, realSize, regions, opts = {}) {
  const slash = realName.lastIndexOf('/');
  const stored = `${realName.slice(0, slash + 1)}GNUSparseFile.0/${realName.slice(slash + 1)}`;
  const records = opts.records ?? [
    ['GNU.sparse.major', '1'],
    ['GNU.sparse.minor', '0'],
    ['GNU.sparse.name', realName],
    ['GNU.sparse.realsize', String(realSize)],
  ];
  const mapText = opts.map ?? `${regions.length}\n${regions.map((r) => `${r.offset}\n${r.data.length}\n`).join('')}`;
  const map = Buffer.concat([Buffer.from(mapText), padding(Buffer.byteLength(mapText))]);
  const body = Buffer.concat([map, ...regions.map((r) => r.data)]);
  return Buffer.concat([pax(records, { name: `${realName.slice(0, slash + 1)}PaxHeaders.0/${realName.slice(slash + 1)}` }), header(stored, body.length, { mode: opts.mode ?? 0o755 }), body, padding(body.length)]);
}
