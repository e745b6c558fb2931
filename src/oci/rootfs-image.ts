// Make an image from a root filesystem folder without Docker: one gzip layer, a config with the
// platform we are told (not the host's), a manifest. Deterministic, so re-running gives the same
// digests. Used to seed base images where no registry on the internet can be reached.
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { sha256Digest } from './digest.js';
import { MediaType } from './types.js';
import { formatPlatform, type Platform } from '../platform/platform.js';
import type { ListKind } from './types.js';

export interface BuiltImage {
  readonly platform: Platform;
  readonly layer: { bytes: Buffer; digest: string; diffId: string };
  readonly config: { bytes: Buffer; digest: string };
  readonly manifest: { bytes: Buffer; digest: string; mediaType: string };
}

const EPOCH = new Date(0);

/** Tar a folder (sorted, owner root, fixed mtime) into memory. Fine for small base images. */
export async function tarDirectory(dir: string): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const full = join(dir, r);
      const st = await lstat(full);
      const common = { name: r, mode: st.mode & 0o7777, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EPOCH };
      if (st.isSymbolicLink()) {
        p.entry({ ...common, type: 'symlink', linkname: await readlink(full) });
      } else if (st.isDirectory()) {
        p.entry({ ...common, name: `${r}/`, type: 'directory' });
        await walk(r);
      } else if (st.isFile()) {
        p.entry({ ...common, type: 'file', size: st.size }, await readFile(full));
      }
    }
  };
  await walk('');
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * `source` is a folder (tarred here, owner root) or a tar file made by a rootfs builder such as
 * mmdebstrap, taken as it is: it keeps the owners, modes and device nodes it was made with.
 */
export async function imageFromRootfs(
  source: string,
  platform: Platform,
  opts: { kind: ListKind; cmd?: string[]; env?: string[] },
): Promise<BuiltImage> {
  const isDir = (await stat(source)).isDirectory();
  const tar = isDir ? await tarDirectory(source) : await readFile(source);
  const gz = gzipSync(tar, { level: isDir ? 9 : 6 });
  const layer = { bytes: gz, digest: sha256Digest(gz), diffId: sha256Digest(tar) };
  const cfg: Record<string, unknown> = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: EPOCH.toISOString(),
    config: {
      Env: opts.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: opts.cmd ?? ['sh'],
    },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created: EPOCH.toISOString(), created_by: `crossbuild seed: rootfs of ${formatPlatform(platform)}` }],
  };
  const configBytes = Buffer.from(JSON.stringify(cfg));
  const oci = opts.kind === 'oci';
  const manifest = {
    schemaVersion: 2,
    mediaType: oci ? MediaType.OciManifest : MediaType.DockerManifest,
    config: { mediaType: oci ? MediaType.OciConfig : MediaType.DockerConfig, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: [{ mediaType: oci ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip, digest: layer.digest, size: gz.length }],
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 3));
  return {
    platform,
    layer,
    config: { bytes: configBytes, digest: sha256Digest(configBytes) },
    manifest: { bytes: manifestBytes, digest: sha256Digest(manifestBytes), mediaType: manifest.mediaType },
  };
}
