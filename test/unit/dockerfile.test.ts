// The base image of a Dockerfile's target stage, as the frontend would expand it (docker/dockerfile.ts),
// on the repository's own Dockerfiles and fixtures of the shapes users write.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseImage, expand } from '../../src/docker/dockerfile.js';
import { parsePlatform } from '../../src/platform/platform.js';

const ROOT = join(import.meta.dirname, '..', '..');
const file = (...p: string[]) => readFileSync(join(ROOT, ...p), 'utf8');
const fixture = (name: string) => file('test', 'fixtures', 'dockerfiles', name);
const amd64 = parsePlatform('linux/amd64');
const arm64 = parsePlatform('linux/arm64');
const armv7 = parsePlatform('linux/arm/v7');

describe('baseImage', () => {
  it("the example's ARG BASE: its default, or the --build-arg", () => {
    const text = file('example', 'Dockerfile');
    expect(baseImage(text, { platform: arm64 })).toBe('localhost:5000/debian:bookworm');
    expect(baseImage(text, { platform: arm64, buildArgs: { BASE: 'debian:bookworm-slim' } })).toBe('debian:bookworm-slim');
  });

  it('a plain FROM, as in the busybox example and the bench', () => {
    expect(baseImage(file('example', 'busybox', 'Dockerfile'), { platform: armv7 })).toBe('localhost:5000/busybox:latest');
    expect(baseImage(file('bench', 'p3', 'Dockerfile'), { platform: amd64 })).toBe('localhost:5000/busybox:latest');
  });

  it('multi-stage: the final stage is followed through the stages it is built on, --target picks another', () => {
    const text = fixture('multistage-go.Dockerfile');
    expect(baseImage(text, { platform: arm64 })).toBe('alpine:3.20');
    expect(baseImage(text, { platform: arm64, buildArgs: { RUNTIME: 'localhost:5000/busybox:latest' } })).toBe('localhost:5000/busybox:latest');
    expect(baseImage(text, { platform: arm64, target: 'RUNTIME' })).toBe('alpine:3.20');
    // The build stage runs on the build platform: its base is not the target platform's image.
    expect(baseImage(text, { platform: arm64, target: 'build' })).toBeUndefined();
    expect(baseImage(text, { platform: arm64, target: 'nosuchstage' })).toBeUndefined();
  });

  it('scratch, a heredoc, a build context of the same name, an ARG without a value: unknown', () => {
    expect(baseImage(fixture('static-scratch.Dockerfile'), { platform: arm64 })).toBeUndefined();
    expect(baseImage(fixture('heredoc.Dockerfile'), { platform: arm64 })).toBeUndefined();
    expect(baseImage('FROM base\nRUN true\n', { platform: arm64, contexts: ['base'] })).toBeUndefined();
    expect(baseImage('ARG BASE\nFROM $BASE\n', { platform: arm64 })).toBeUndefined();
    expect(baseImage('ARG BASE\nFROM $BASE\n', { platform: arm64, buildArgs: { BASE: 'localhost:5000/x:1' } })).toBe('localhost:5000/x:1');
    expect(baseImage('RUN true\n', { platform: arm64 })).toBeUndefined();
  });

  it('the escape directive, continuation lines joined as the frontend joins them, comments and empty lines between them', () => {
    expect(baseImage(fixture('escape-backtick.Dockerfile'), { platform: armv7 })).toBe('localhost:5000/debian:bookworm');
    expect(baseImage('FROM \\\n  # a comment inside\n\n  localhost:5000/a:1 \\\n  AS x\n', { platform: armv7 })).toBe('localhost:5000/a:1');
    // No space is put where a line was continued: the tag stays on the name.
    expect(baseImage('ARG B=localhost:5000/a\\\n:1\nFROM $B\n', { platform: armv7 })).toBe('localhost:5000/a:1');
  });

  it('a build context named as the image (written another way), an ARG named like an Object property, another frontend: unknown', () => {
    expect(baseImage('FROM localhost:5000/busybox:latest\n', { platform: arm64, contexts: ['localhost:5000/busybox'] })).toBeUndefined();
    expect(baseImage('FROM localhost:5000/busybox\n', { platform: arm64, contexts: ['localhost:5000/busybox:latest::linux/arm64'] })).toBeUndefined();
    expect(baseImage('FROM localhost:5000/busybox\n', { platform: arm64, contexts: ['other'] })).toBe('localhost:5000/busybox');
    expect(baseImage('ARG constructor\nFROM localhost:5000/x${constructor}\n', { platform: arm64 })).toBeUndefined();
    expect(baseImage('# syntax=example.com/not-a-dockerfile:1\nFROM localhost:5000/a:1\n', { platform: arm64 })).toBeUndefined();
    expect(baseImage('# syntax=docker/dockerfile:1.7\nFROM localhost:5000/a:1\n', { platform: arm64 })).toBe('localhost:5000/a:1');
  });

  it("the platform's own args, declared or not, and FROM --platform=$TARGETPLATFORM", () => {
    const text = fixture('per-arch.Dockerfile');
    expect(baseImage(text, { platform: amd64 })).toBe('localhost:5000/base-amd64:1');
    expect(baseImage(text, { platform: armv7 })).toBe('localhost:5000/base-arm-v7:1');
    expect(baseImage('FROM --platform=$TARGETPLATFORM localhost:5000/a:1\n', { platform: arm64 })).toBe('localhost:5000/a:1');
    expect(baseImage('FROM --platform=linux/amd64 localhost:5000/a:1\n', { platform: arm64 })).toBeUndefined();
    expect(baseImage('FROM --platform=linux/arm64 localhost:5000/a:1\n', { platform: arm64 })).toBe('localhost:5000/a:1');
  });
});

describe('expand', () => {
  const vars = new Map([
    ['A', 'x'],
    ['EMPTY', ''],
  ]);
  it('$X, ${X}, ${X:-word}, ${X:+word}; a name without a value is unknown', () => {
    expect(expand('$A/${A}', vars)).toBe('x/x');
    expect(expand('${EMPTY:-d}${A:-d}', vars)).toBe('dx');
    expect(expand('${A:+y}${EMPTY:+y}', vars)).toBe('y');
    expect(expand('$MISSING', vars)).toBeUndefined();
    expect(expand('${A:?err}', vars)).toBeUndefined();
  });
});
