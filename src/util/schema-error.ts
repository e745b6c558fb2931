// One clear ConfigError from a failed zod parse of a user's file: the field path as people write
// it (platforms[1].suffix), unknown fields first (a misspelt field explains a missing one) with
// the fields that are allowed there.
import type { core } from 'zod/mini';
import { ConfigError } from '../errors.js';

export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

export function configErrorFromZod(file: string, error: core.$ZodError, allowedAt: (path: readonly PropertyKey[]) => string): ConfigError {
  const issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0]!;
  let msg = issue.message;
  if (issue.code === 'unrecognized_keys') {
    msg = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (allowed: ${allowedAt(issue.path)})`;
  }
  return new ConfigError(file, fieldPath(issue.path), msg);
}
