// `crossbuild run`: flags → config → pipeline → summary and exit code.
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/config.js';
import { Docker, type BuilderKind } from '../../docker/docker.js';
import { CrossbuildError, UsageError } from '../../errors.js';
import type { ListKind } from '../../oci/types.js';
import { runPipeline } from '../../pipeline/run.js';
import { clientFromFlags, platformsFromFlags, printJson, type RegistryFlags } from '../common.js';

interface RunFlags extends RegistryFlags {
  config: string;
  image?: string;
  tag?: string;
  platform?: string[];
  type: ListKind;
  push: boolean;
  concurrency: string;
  buildArg?: string[];
  cache: boolean;
  timeout: string;
  builder?: BuilderKind;
  logDir?: string;
  json?: boolean;
}

function parseKv(values: readonly string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} ${v}: expected KEY=VALUE`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${v}: expected a whole number ≥ 1`);
  return n;
}

export async function runCommand(flags: RunFlags): Promise<void> {
  const platforms = platformsFromFlags(flags.platform);
  const config = loadConfig(flags.config, {
    ...(flags.image !== undefined ? { image: flags.image } : {}),
    ...(flags.tag !== undefined ? { tag: flags.tag } : {}),
    ...(platforms ? { platforms } : {}),
  });
  const concurrency = flags.concurrency === '' ? Math.min(config.platforms.length, Math.max(2, availableParallelism())) : positiveInt(flags.concurrency, '--concurrency');
  const timeoutSec = positiveInt(flags.timeout, '--timeout');
  const client = clientFromFlags(flags);
  const logDir = flags.logDir ?? join(tmpdir(), 'crossbuild-logs', new Date().toISOString().replace(/[:.]/g, '-'));
  const interactive = process.stdout.isTTY === true && !process.env.CI;
  try {
    const result = await runPipeline({
      config,
      client,
      docker: new Docker(process.env.CROSSBUILD_DOCKER ?? 'docker'),
      push: flags.push,
      type: flags.type,
      concurrency,
      noCache: !flags.cache,
      verifyTimeoutMs: timeoutSec * 1000,
      ...(flags.builder ? { builder: flags.builder } : {}),
      logDir,
      extraBuildArgs: parseKv(flags.buildArg, '--build-arg'),
      renderer: flags.json ? 'silent' : interactive ? 'default' : 'simple',
    });
    if (flags.json) {
      printJson(result);
    } else {
      const w = Math.max(...result.platforms.map((p) => p.platform.length));
      for (const p of result.platforms) {
        const status = p.ok ? 'ok  ' : 'FAIL';
        const detail = p.ok ? `${p.digest ?? 'not pushed'}  ${p.checks.map((c) => c.evidence).join('; ')}` : `${p.failedAt}: ${p.error?.split('\n')[0] ?? ''}`;
        process.stderr.write(`${status} ${p.platform.padEnd(w)}  ${detail}\n`);
      }
      process.stderr.write(`build logs: ${result.logDir}\n`);
      if (result.list) process.stdout.write(`Digest: ${result.list.digest} ${result.list.size}\n`);
    }
    if (!result.ok) {
      if (!flags.json) {
        for (const p of result.platforms.filter((x) => !x.ok && x.error)) process.stderr.write(`\n${p.platform}: ${p.error}\n`);
      }
      throw new CrossbuildError(result.error ?? 'run failed', { hint: result.platforms.some((p) => !p.ok) ? 'no manifest list was written' : undefined });
    }
  } finally {
    await client.close();
  }
}
