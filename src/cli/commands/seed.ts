// `crossbuild seed`: images from rootfs folders, pushed with their platform set right, then a list.
import { UsageError } from '../../errors.js';
import { buildList } from '../../oci/list.js';
import { imageFromRootfs } from '../../oci/rootfs-image.js';
import type { ListKind } from '../../oci/types.js';
import { formatPlatform, platformSuffix } from '../../platform/platform.js';
import { parseReference } from '../../oci/reference.js';
import { clientFromFlags, platformsFromFlags, type RegistryFlags } from '../common.js';
import { OK, type Outcome } from '../failure.js';

interface SeedOpts extends RegistryFlags {
  image: string;
  rootfs: string[];
  type: ListKind;
  cmd: string;
}

export async function seedCommand(opts: SeedOpts): Promise<Outcome> {
  const ref = parseReference(opts.image, '--image');
  const tag = ref.tag ?? 'latest';
  const pairs = opts.rootfs.map((r) => {
    const i = r.indexOf('=');
    if (i < 0) throw new UsageError(`--rootfs ${r}: expected platform=folder`);
    const [platform] = platformsFromFlags([r.slice(0, i)], '--rootfs')!;
    return { platform: platform!, dir: r.slice(i + 1) };
  });
  const client = clientFromFlags(opts, ref.registry);
  try {
    const images = await Promise.all(
      pairs.map(async ({ platform, dir }) => {
        const img = await imageFromRootfs(dir, platform, { kind: opts.type, cmd: [opts.cmd] });
        await client.pushBlob(ref.registry, ref.repository, img.layer.digest, img.layer.bytes.length, img.layer.bytes);
        await client.pushBlob(ref.registry, ref.repository, img.config.digest, img.config.bytes.length, img.config.bytes);
        await client.putManifest(ref.registry, ref.repository, `${tag}-${platformSuffix(platform)}`, img.manifest.bytes, img.manifest.mediaType);
        process.stderr.write(`seeded ${formatPlatform(platform)} ${ref.registry}/${ref.repository}:${tag}-${platformSuffix(platform)} ${img.manifest.digest}\n`);
        return img;
      }),
    );
    const list = buildList(
      opts.type,
      images.map((i) => ({
        mediaType: i.manifest.mediaType,
        digest: i.manifest.digest,
        size: i.manifest.bytes.length,
        platform: { os: i.platform.os, architecture: i.platform.architecture, ...(i.platform.variant ? { variant: i.platform.variant } : {}) },
      })),
    );
    await client.putManifest(ref.registry, ref.repository, tag, list.bytes, list.mediaType);
    process.stdout.write(`Digest: ${list.digest} ${list.size}\n`);
    return OK;
  } finally {
    await client.close();
  }
}
