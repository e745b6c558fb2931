// The binaries check of one layer under test, on top of a base that holds busybox's amd64 head as
// /bin/sh: what the verifier makes of the layer, without a registry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { judgeBinaries } from '../../src/verify/binaries.js';
import { parseElf } from '../../src/verify/elf.js';
import { ImageFs } from '../../src/verify/image-fs.js';
import { scanLayer } from '../../src/verify/layer-facts.js';
import { parsePlatform } from '../../src/platform/platform.js';

export const busyboxAmd64 = readFileSync(join(__dirname, '..', 'fixtures', 'elf', 'busybox-amd64.head'));
export const AMD64_CONFIG = { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] } };

export async function judgeLayer(tar: Buffer, config: object = AMD64_CONFIG) {
  const fs = new ImageFs();
  fs.beginLayer(1);
  await scanLayer(Readable.from([tar], { objectMode: false }), { mediaType: 'application/vnd.oci.image.layer.v1.tar' }, fs);
  fs.endLayer();
  fs.beginLayer(0);
  fs.add('bin/sh', { type: 'file', size: busyboxAmd64.length, mode: 0o755 })!.elf = parseElf(busyboxAmd64, true)!;
  fs.endLayer();
  return { fs, ...judgeBinaries(fs, parsePlatform('linux/amd64'), config as never, true) };
}
