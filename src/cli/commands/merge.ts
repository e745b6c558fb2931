// `crossbuild merge`: join legs built elsewhere into one verified list (see pipeline/merge.ts).
import { loadConfig } from '../../config/config.js';
import { CrossbuildError, UsageError } from '../../errors.js';
import type { Docker } from '../../docker/docker.js';
import type { ListKind } from '../../oci/types.js';
import { runMerge, type LegSource, type MergeResult } from '../../pipeline/merge.js';
import { annotate } from '../../util/annotations.js';
import { mdCell, verdictIcon } from '../../util/markdown.js';
import { worst } from '../../verdict.js';
import { Cosign } from '../../sign/cosign.js';
import { VERSION } from '../../version.js';
import { layerCacheOption } from '../../verify/layer-cache.js';
import { clientFromFlags, platformsFromFlags, printJson, writeReportFile, type RegistryFlags } from '../common.js';
import { failed, OK, type Outcome } from '../failure.js';

interface MergeFlags extends RegistryFlags {
  config: string;
  image?: string;
  tag?: string;
  platform?: string[];
  type?: ListKind;
  runtime?: boolean;
  /** false with --no-layer-cache. */
  layerCache?: boolean;
  timeout: string;
  fromReport?: string[];
  fromDigests?: string;
  report?: string;
  summary?: string;
  json?: boolean;
  sign?: boolean;
  key?: string;
}

export function mergeMarkdown(r: MergeResult): string {
  const out = [`## crossbuild merge ${r.ok ? '✅' : '❌'} ${r.list ? `\`${r.list.ref}\`` : ''}`.trimEnd(), ''];
  if (r.list) out.push(`Manifest list \`${r.list.ref}\`: \`${r.list.digest}\` (${r.list.size} bytes, ${r.list.mediaType})`, '');
  else out.push(`**No manifest list was written.** ${r.error ? mdCell(r.error) : ''}`.trimEnd(), '');
  out.push('| Platform | Leg | Digest | Verdict |', '|---|---|---|---|');
  for (const l of r.legs) {
    const v = l.checks.length ? worst(l.checks) : 'fail';
    out.push(`| ${l.platform} | \`${l.ref}\` | ${l.digest ? `\`${l.digest.slice(0, 19)}…\`` : '—'} | ${verdictIcon(v)} ${mdCell(l.error ?? l.checks.map((c) => c.evidence).join('; '))} |`);
  }
  return `${out.join('\n')}\n`;
}

export async function mergeCommand(flags: MergeFlags): Promise<Outcome> {
  if (flags.fromReport && flags.fromDigests) throw new UsageError('give --from-report or --from-digests, not both');
  const platforms = platformsFromFlags(flags.platform);
  const config = loadConfig(flags.config, {
    ...(flags.image !== undefined ? { image: flags.image } : {}),
    ...(flags.tag !== undefined ? { tag: flags.tag } : {}),
    ...(platforms ? { platforms } : {}),
  });
  const timeout = Number(flags.timeout);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout ${flags.timeout}: expected a whole number of seconds ≥ 1`);
  const source: LegSource = flags.fromReport ? { kind: 'reports', files: flags.fromReport } : flags.fromDigests ? { kind: 'digests', dir: flags.fromDigests } : { kind: 'tags' };
  const client = clientFromFlags(flags, config.image.registry);
  let cosign: Cosign | undefined;
  let runtime: Docker | undefined;
  let release: (() => void) | undefined;
  try {
    if (flags.runtime) {
      const claimed = await (await import('../../pipeline/sweep.js')).claimedDocker();
      runtime = claimed.docker;
      release = claimed.release;
      for (const n of claimed.notes) process.stderr.write(`note: ${n}\n`);
      await runtime.engine();
    }
    const wantSign = flags.sign === true || flags.key !== undefined || config.sign !== undefined;
    cosign = wantSign ? new Cosign(flags.key !== undefined ? { ref: flags.key } : config.sign?.key !== undefined ? { ref: config.sign.key } : {}, flags.dockerCfg ? { DOCKER_CONFIG: flags.dockerCfg } : {}) : undefined;
    const sign = cosign ? { cosign, access: { registry: config.image.registry, plainHttp: flags.plainHttp === true, insecure: flags.insecure === true }, version: VERSION } : undefined;
    const r = await runMerge({ config, client, ...(flags.type ? { type: flags.type } : {}), source, ...(runtime ? { runtime } : {}), timeoutMs: timeout * 1000, ...(sign ? { sign } : {}), ...layerCacheOption(flags.layerCache === false) });
    // The report is the legs and the list; the thrown error is said once, below.
    const { failure: _failure, ...report } = r;
    if (flags.report) writeReportFile(flags.report, `${JSON.stringify(report, null, 2)}\n`);
    if (flags.summary) writeReportFile(flags.summary, mergeMarkdown(r));
    annotate(r.legs.filter((l) => !l.ok).map((l) => ({ kind: 'error' as const, title: `crossbuild merge ${l.platform}`, message: l.error ?? 'failed' })));
    if (flags.json) printJson(report);
    else {
      const w = Math.max(...r.legs.map((l) => l.platform.length));
      for (const l of r.legs) process.stderr.write(`${l.ok ? 'ok  ' : 'FAIL'} ${l.platform.padEnd(w)}  ${l.ok ? `${l.ref} ${l.digest}  ${l.checks.map((c) => c.evidence).join('; ')}` : l.error}\n`);
      for (const n of r.notes ?? []) process.stderr.write(`note: ${n}\n`);
      if (r.list) process.stdout.write(`Digest: ${r.list.digest} ${r.list.size}\n`);
    }
    if (!r.ok) return failed(r.failure ?? new CrossbuildError(r.error ?? 'merge failed', { hint: 'no manifest list was written' }));
    return OK;
  } finally {
    cosign?.close();
    if (runtime) await (await import('../../docker/docker.js')).settleRemovals();
    release?.();
    await client.close();
  }
}
