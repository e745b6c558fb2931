// One clear ConfigError from a failed zod parse of a user's file: the field path as people write
// it (platforms[1].suffix), unknown fields first (a misspelt field explains a missing one) with
// "did you mean" and the fields that are allowed there, and type errors in our words.
import type { core } from 'zod/mini';
import { ConfigError } from '../errors.js';
import { didYouMean } from './suggest.js';

export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v} (${String(v)})`;
}

const ARTICLE: Record<string, string> = { object: 'an object', array: 'a list', string: 'a string', number: 'a number', boolean: 'true or false' };

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/**
 * `allowedAt` names the fields allowed at a path (a comma-separated list); `example` may give a
 * valid value for a path, shown when the value there has the wrong type.
 */
export function configErrorFromZod(file: string, error: core.$ZodError, allowedAt: (path: readonly PropertyKey[]) => string, raw?: unknown, example?: (path: readonly PropertyKey[]) => string | undefined): ConfigError {
  const issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0]!;
  let msg = issue.message;
  let path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedAt(issue.path);
    const names = allowed.split(',').map((s) => s.trim());
    const [first] = issue.keys;
    msg = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}${issue.keys.length === 1 ? didYouMean(first!, names) : ''} (allowed: ${allowed})`;
    if (issue.keys.length === 1) path = [...issue.path];
  } else if (issue.code === 'invalid_type' && raw !== undefined) {
    const v = valueAt(raw, issue.path);
    // A missing field keeps the schema's own words ("required: …").
    if (v !== undefined) {
      const ex = example?.(issue.path);
      msg = `expected ${ARTICLE[issue.expected] ?? issue.expected}${ex ? ` such as ${ex}` : ''}, found ${kindOf(v)}`;
    }
  }
  return new ConfigError(file, fieldPath(path), msg);
}
