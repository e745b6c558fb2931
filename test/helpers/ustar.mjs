// A ustar header for a regular file, written by hand so a test or a benchmark can claim any size
// (or make a hostile header) without building the body. Plain JavaScript: tests and bench share it.

/**
 * @param {string} name
 * @param {number} size
 * @param {{ typeflag?: string }} [opts]
 * @returns {Buffer}
 */
export function ustarHeader(name, size, opts = {}) {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.fill(' ', 148, 156);
  h.write(opts.typeflag ?? '0', 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}
