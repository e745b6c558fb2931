// `crossbuild verify REF`: coverage, metadata, binaries (static) and uname (runtime) per platform.
import { loadConfig } from '../../config/config.js';
import { UsageError } from '../../errors.js';
import { formatPlatform, type Platform } from '../../platform/platform.js';
import { parseReference } from '../../oci/reference.js';
import { formatReport, reportMarkdown, verifyReference } from '../../verify/verify.js';
import { clientFromFlags, platformsFromFlags, printJson, writeReportFile, type RegistryFlags } from '../common.js';

interface VerifyFlags extends RegistryFlags {
  platforms?: string[];
  config?: string;
  static?: boolean;
  json?: boolean;
  timeout: string;
  report?: string;
  summary?: string;
}

export async function verifyCommand(refText: string, flags: VerifyFlags): Promise<number> {
  const ref = parseReference(refText, 'reference');
  if (flags.platforms && flags.config) throw new UsageError('give --platforms or --config, not both');
  let targets: Platform[] | undefined = platformsFromFlags(flags.platforms, '--platforms');
  let uname: Map<string, string> | undefined;
  if (flags.config) {
    const cfg = loadConfig(flags.config);
    targets = cfg.platforms.map((t) => t.platform);
    uname = new Map(cfg.platforms.filter((t) => t.uname).map((t) => [formatPlatform(t.platform), t.uname!]));
  }
  const timeout = Number(flags.timeout);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout ${flags.timeout}: expected a whole number of seconds ≥ 1`);
  const client = clientFromFlags(flags);
  try {
    // --static needs no Docker at all, so its module (and execa) is not even loaded.
    const docker = flags.static ? undefined : new (await import('../../docker/docker.js')).Docker();
    if (docker) await docker.engine();
    const report = await verifyReference(client, ref, {
      ...(targets ? { targets } : {}),
      ...(uname ? { uname } : {}),
      staticOnly: flags.static === true,
      ...(docker ? { docker } : {}),
      timeoutMs: timeout * 1000,
    });
    if (flags.report) writeReportFile(flags.report, `${JSON.stringify(report, null, 2)}\n`);
    if (flags.summary) writeReportFile(flags.summary, reportMarkdown(report));
    if (flags.json) printJson(report);
    else process.stdout.write(formatReport(report));
    return report.ok ? 0 : 1;
  } finally {
    await client.close();
  }
}
