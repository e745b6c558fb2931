import { createHash } from 'node:crypto';

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function isDigest(s: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(s) || /^sha512:[a-f0-9]{128}$/.test(s);
}
