// Helpers shared by the commands: registry clients from global flags, platform lists from flags.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { escapeControl } from '../util/text.js';
import { parsePlatform, PlatformError, type Platform } from '../platform/platform.js';
import { RegistryClient, timeoutsFromSeconds, type RequestInfo, type Timeouts } from '../registry/client.js';
import { CredentialStore } from '../registry/credentials.js';
import { registerSecret, scrub } from '../util/secrets.js';

export interface RegistryFlags {
  insecure?: boolean;
  plainHttp?: boolean;
  dockerCfg?: string;
  username?: string;
  passwordStdin?: boolean;
  registryTimeout?: string;
  debug?: boolean;
}

/** A registry client; `--username` credentials apply to `targetRegistry` (the image's) alone. */
export function clientFromFlags(flags: RegistryFlags, targetRegistry?: string, signal?: AbortSignal): RegistryClient {
  let password: string | undefined;
  if (flags.passwordStdin) {
    if (flags.username === undefined) throw new UsageError('--password-stdin needs --username');
    password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
    registerSecret(password);
  } else if (flags.username !== undefined) {
    throw new UsageError('--username needs --password-stdin (passwords are never taken as flags)');
  }
  const credentials = new CredentialStore({
    ...(flags.dockerCfg !== undefined ? { dockerCfg: flags.dockerCfg } : {}),
    ...(flags.username !== undefined ? { username: flags.username, password, ...(targetRegistry !== undefined ? { registry: targetRegistry } : {}) } : {}),
  });
  let timeouts: Timeouts | undefined;
  if (flags.registryTimeout !== undefined) {
    const n = Number(flags.registryTimeout);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--registry-timeout ${escapeControl(flags.registryTimeout)}: expected seconds > 0`);
    timeouts = timeoutsFromSeconds(n);
  }
  return new RegistryClient({
    insecure: flags.insecure === true,
    plainHttp: flags.plainHttp === true,
    credentials,
    ...(timeouts ? { timeouts } : {}),
    ...(signal ? { signal } : {}),
    // Every retry is said, with the request and the reason, so a slow run is never a silent one.
    onRetry: (r) => process.stderr.write(`crossbuild: retrying ${r.method} ${r.registry}${r.path} (attempt ${r.attempt} of ${r.attempts}) in ${r.delayMs} ms: ${scrub(r.reason).split('\n')[0]}\n`),
    // The request log: when each request left (ms since start) and how long its answer took, so
    // the requests that waited for each other can be counted. Never a header or a query.
    ...(flags.debug ? { onRequest: (r: RequestInfo) => process.stderr.write(`debug: +${r.startedMs}ms ${r.method} ${r.registry}${r.path} → ${typeof r.outcome === 'number' ? r.outcome : scrub(r.outcome).split('\n')[0]} (${r.ms} ms)\n`) } : {}),
  });
}

/** "--platform a,b --platform c" → platforms, with a usage error naming the bad one. */
export function platformsFromFlags(values: readonly string[] | undefined, flag = '--platform'): Platform[] | undefined {
  if (!values || values.length === 0) return undefined;
  const out: Platform[] = [];
  for (const v of values.flatMap((x) => x.split(','))) {
    if (v.trim() === '') continue;
    try {
      out.push(parsePlatform(v));
    } catch (e) {
      if (e instanceof PlatformError) throw new UsageError(`${flag} ${v}: ${e.message}`);
      throw e;
    }
  }
  return out;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** KEY=VALUE flags (build args, labels, annotations) → a record; a usage error names the bad one. */
export function parseKeyValues(values: readonly string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} ${escapeControl(v.slice(0, 200))}: expected KEY=VALUE`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** Write a report file, creating its folder. */
export function writeReportFile(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/**
 * SIGINT/SIGTERM while a command runs: the first one calls `onFirst` (stop and clean up) and is
 * remembered, so the command can finish its report and exit 128 + the signal's number.
 */
export function watchInterrupts(onFirst: (sig: NodeJS.Signals) => void): { readonly by: () => NodeJS.Signals | undefined; readonly exitCode: () => number | undefined; dispose(): void } {
  let by: NodeJS.Signals | undefined;
  const handle = (sig: NodeJS.Signals) => {
    if (by) return;
    by = sig;
    onFirst(sig);
  };
  const onInt = () => handle('SIGINT');
  const onTerm = () => handle('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    by: () => by,
    exitCode: () => (by === 'SIGINT' ? 130 : by === 'SIGTERM' ? 143 : undefined),
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}
