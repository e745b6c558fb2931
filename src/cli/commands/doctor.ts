// `crossbuild doctor`: what is wrong with this host, one line per check, each with its fix.
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { BINFMT_DIR, binfmtMounted, platformStatus, qemuVersion, readHandlers } from '../../binfmt/binfmt.js';
import { loadConfig } from '../../config/config.js';
import { describeBuilder } from '../../docker/builder.js';
import { describeNode, Docker, honoursPlatform, nodeArgs } from '../../docker/docker.js';
import { formatPlatform, isNative, parsePlatform, type Platform } from '../../platform/platform.js';
import { formatReference, withTag, type ImageRef } from '../../oci/reference.js';
import { clientFromFlags, platformsFromFlags, printJson, type RegistryFlags } from '../common.js';
import { OK, REPORTED, type Outcome } from '../failure.js';

type Status = 'OK' | 'WARN' | 'FAIL';
interface Line {
  readonly status: Status;
  readonly check: string;
  readonly detail: string;
  readonly fix?: string;
}

const DEFAULT_PLATFORMS = ['linux/arm64', 'linux/arm/v7', 'linux/arm/v6', 'linux/ppc64le', 'linux/s390x', 'linux/riscv64'];

export async function doctorCommand(flags: RegistryFlags & { config: string; platform?: string[]; json?: boolean }): Promise<Outcome> {
  const lines: Line[] = [];
  const add = (status: Status, check: string, detail: string, fix?: string) => lines.push({ status, check, detail, ...(fix ? { fix } : {}) });

  let platforms: Platform[] | undefined = platformsFromFlags(flags.platform);
  let image: { ref: ImageRef; tag: string } | undefined;
  let onNodes: { platform: Platform; node: string }[] = [];
  if (existsSync(flags.config)) {
    try {
      const cfg = loadConfig(flags.config);
      platforms ??= cfg.platforms.filter((t) => t.node === undefined).map((t) => t.platform);
      onNodes = cfg.platforms.filter((t) => t.node !== undefined).map((t) => ({ platform: t.platform, node: t.node! }));
      image = { ref: cfg.image, tag: cfg.tag };
    } catch (e) {
      add('FAIL', 'config', (e as Error).message, 'fix the file as the message says');
    }
  }
  platforms ??= DEFAULT_PLATFORMS.map((p) => parsePlatform(p));

  // Kernel and binfmt_misc.
  const fsList = existsSync('/proc/filesystems') ? readFileSync('/proc/filesystems', 'utf8') : '';
  if (/\bbinfmt_misc\b/.test(fsList)) add('OK', 'kernel', 'binfmt_misc is supported');
  else add('FAIL', 'kernel', 'this kernel does not list binfmt_misc in /proc/filesystems', 'a kernel with CONFIG_BINFMT_MISC (or modprobe binfmt_misc)');
  const mounted = await binfmtMounted();
  if (mounted) add('OK', 'binfmt_misc', `mounted at ${BINFMT_DIR}`);
  else add('FAIL', 'binfmt_misc', `not mounted at ${BINFMT_DIR}`, `mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}`);
  const handlers = mounted ? await readHandlers() : [];
  for (const p of platforms) {
    const st = platformStatus(p, handlers);
    if (st.state === 'native' || st.state === 'ok') {
      add('OK', `handler ${st.platform}`, st.state === 'native' ? 'native' : `${st.handler!.name}: ${st.handler!.interpreter}, flags ${st.handler!.flags || '(none)'}, enabled`);
    } else {
      add('FAIL', `handler ${st.platform}`, st.detail, `crossbuild binfmt install --platform ${st.platform}`);
    }
  }
  // QEMU.
  const q = platforms.find((p) => !isNative(p));
  if (q) {
    const v = await qemuVersion(q);
    if (v.version) add('OK', 'qemu', v.version);
    else add('FAIL', 'qemu', `${v.bin} not found`, 'apt-get install qemu-user-static');
  }
  // Docker engine and builder.
  const docker = new Docker();
  let rootDir = '/';
  try {
    const e = await docker.engine();
    add('OK', 'docker engine', `${e.serverVersion} (API ${e.apiVersion}) via ${e.cli} ${e.clientVersion}`);
    add('OK', 'image store', e.imageStore === 'containerd' ? 'containerd image store (images are indexes: attestations are kept, buildx exports a registry cache)' : `${e.imageStore ?? 'unknown'} (classic store: buildx's docker driver keeps no attestations and caches inline only)`);
    const honours = honoursPlatform(e);
    const b = (await docker.builders())[0]!;
    add(honours ? 'OK' : 'FAIL', 'builder', `${describeBuilder(b)}${honours ? '; the engine honours --platform' : `; API ${e.apiVersion} is too old for --platform`}`, honours ? undefined : 'upgrade the engine to 18.06 or later');
    rootDir = (await docker.rootDir()) ?? rootDir;
  } catch (e) {
    add('FAIL', 'docker engine', (e as Error).message.split('\n')[0]!, 'start it: dockerd --bridge=none --iptables=false (or bash ci/provision.sh)');
  }
  // Build nodes: each answers, and each emulated platform on one needs a QEMU handler there.
  for (const name of [...new Set(onNodes.map((n) => n.node))]) {
    const node = docker.on(nodeArgs(name));
    try {
      const e = await node.engine();
      add('OK', `node ${name}`, `${describeNode(name)}: engine ${e.serverVersion} ${e.os}/${e.arch}`);
      for (const { platform } of onNodes.filter((n) => n.node === name)) {
        const p = formatPlatform(platform);
        if (e.os === platform.os && e.arch === platform.architecture) add('OK', `node ${name} ${p}`, 'native: no QEMU handler needed');
        else if (name.startsWith('unix://')) {
          // A local socket: the same kernel, so this host's handlers are the node's.
          const st = platformStatus(platform, handlers);
          if (st.state === 'ok' || st.state === 'native') add('OK', `node ${name} ${p}`, `emulated, handler ${st.handler?.name ?? 'native'} (this host's kernel)`);
          else add('FAIL', `node ${name} ${p}`, `emulated on ${e.arch}: ${st.detail}`, `crossbuild binfmt install --platform ${p}`);
        } else {
          add('WARN', `node ${name} ${p}`, `emulated on ${e.os}/${e.arch}: the node needs a QEMU binfmt handler with the F flag for ${p}`, `on that host: crossbuild binfmt install --platform ${p}`);
        }
      }
    } catch (err) {
      add('FAIL', `node ${name}`, `${describeNode(name)} is unreachable: ${(err as Error).message.split('\n')[0]}`, 'check the context (docker context inspect) or the URL, and that its engine runs');
    }
  }
  // Registry of the configured image.
  if (image) {
    const client = clientFromFlags(flags, image.ref.registry);
    const where = formatReference(withTag(image.ref, image.tag));
    try {
      await client.headManifest(image.ref.registry, image.ref.repository, image.tag);
      add('OK', 'registry', `${image.ref.registry} answers and lets us read ${where}`);
    } catch (e) {
      const err = e as Error & { hint?: string };
      add('FAIL', 'registry', err.message.split('\n')[0]!, err.hint ?? `check that ${image.ref.registry} is up`);
    } finally {
      await client.close();
    }
  }
  // Disk.
  try {
    const st = statfsSync(existsSync(rootDir) ? rootDir : '/');
    const free = (st.bavail * st.bsize) / 2 ** 30;
    const detail = `${free.toFixed(1)} GiB free under ${rootDir}`;
    if (free < 1) add('FAIL', 'disk', detail, 'free space: docker system prune');
    else if (free < 5) add('WARN', 'disk', detail, 'builds of several platforms need room: docker system prune');
    else add('OK', 'disk', detail);
  } catch (e) {
    add('WARN', 'disk', `cannot read free space: ${(e as Error).message}`);
  }

  if (flags.json) printJson({ ok: lines.every((l) => l.status !== 'FAIL'), checks: lines });
  else {
    const w = Math.max(...lines.map((l) => l.check.length));
    for (const l of lines) process.stdout.write(`${l.status.padEnd(4)}  ${l.check.padEnd(w)}  ${l.detail}${l.fix ? `\n      ${''.padEnd(w)}  fix: ${l.fix}` : ''}\n`);
  }
  return lines.some((l) => l.status === 'FAIL') ? REPORTED : OK;
}
