import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ImageFs, normalizeTarPath } from '../../src/verify/image-fs.js';

const file = { type: 'file' as const, size: 10, mode: 0o755 };
const dir = { type: 'dir' as const, size: 0, mode: 0o755 };
const link = (to: string) => ({ type: 'symlink' as const, link: to, size: 0, mode: 0o777 });

/** Layers are fed top-down, as the scanner reads them. */
function build(layersTopDown: [string, Parameters<ImageFs['add']>[1]][][]): ImageFs {
  const fs = new ImageFs();
  layersTopDown.forEach((entries, i) => {
    fs.beginLayer(layersTopDown.length - 1 - i);
    for (const [name, e] of entries) fs.add(name, e);
    fs.endLayer();
  });
  return fs;
}

describe('tar paths', () => {
  it('are normalised inside the root', () => {
    expect(normalizeTarPath('./bin/sh')).toEqual({ path: 'bin/sh', escaped: false });
    expect(normalizeTarPath('/abs/x/')).toEqual({ path: 'abs/x', escaped: false });
    expect(normalizeTarPath('../../etc/passwd')).toEqual({ path: 'etc/passwd', escaped: true });
    expect(normalizeTarPath('a/../../b')).toEqual({ path: 'b', escaped: true });
    expect(normalizeTarPath('a/../b')).toEqual({ path: 'b', escaped: false });
  });
});

describe('the merged filesystem', () => {
  it('upper layers shadow lower ones', () => {
    const fs = build([[['bin/sh', { ...file, size: 1 }]], [['bin/', dir], ['bin/sh', { ...file, size: 2 }]]]);
    expect(fs.entries.get('bin/sh')?.size).toBe(1);
    expect(fs.entries.get('bin/sh')?.layer).toBe(1);
  });

  it('a whiteout deletes the file below it, not one beside it in its own layer', () => {
    const fs = build([[['bin/.wh.busybox', file]], [['bin/busybox', file], ['bin/sh', link('/bin/busybox')]]]);
    expect(fs.entries.has('bin/busybox')).toBe(false);
    const r = fs.resolve('/bin/sh');
    expect(r).toMatchObject({ status: 'deleted', path: 'bin/busybox', layer: 1 });
    const same = build([[['x/.wh.f', file], ['x/g', file]]]);
    expect(same.entries.has('x/g')).toBe(true);
  });

  it('an opaque directory hides everything below it', () => {
    const fs = build([[['etc/.wh..wh..opq', file], ['etc/new', file]], [['etc/old', file], ['etcetera', file]]]);
    expect(fs.entries.has('etc/new')).toBe(true);
    expect(fs.entries.has('etc/old')).toBe(false);
    expect(fs.entries.has('etcetera')).toBe(true);
  });

  it('a file above hides a directory tree below', () => {
    const fs = build([[['opt', file]], [['opt/', dir], ['opt/app', file]]]);
    expect(fs.entries.has('opt/app')).toBe(false);
  });

  it('a non-directory that appears where folders were implied hides what comes under it afterwards', () => {
    // Lookups of parent folders are remembered; a file (or link) later written at one of them
    // must hide everything below it from then on, however deep, in its own layer and below.
    const fs = build([
      [['a/b/c/x', file], ['a/b/y', file], ['a/b', file], ['a/b/z', file], ['a/b/c/w', file], ['p/q/r', file], ['p', link('/tmp')], ['p/q/s', file]],
      [['a/b/c/v', file], ['p/q/t', file], ['m/n', file]],
    ]);
    expect([...fs.entries.keys()].sort()).toEqual(['a/b', 'a/b/c/x', 'a/b/y', 'm/n', 'p', 'p/q/r'].sort());
    expect(fs.resolve('/a/b/c/x')).toMatchObject({ status: 'absent' });
    // Forgotten again between layers: whiteouts of the upper layer now hide below.
    const wh = build([[['d/.wh.e', file], ['d/f', file]], [['d/e/g', file], ['d/f', file], ['d/h', file]]]);
    expect([...wh.entries.keys()].sort()).toEqual(['d/f', 'd/h']);
    expect(wh.entries.get('d/f')?.layer).toBe(1);
  });

  it('resolves relative, absolute and chained symlinks, clamped at the root', () => {
    const fs = build([
      [
        ['usr/local/bin/app', link('../../../bin/tool')],
        ['bin/tool', link('/opt/real')],
        ['opt/real', file],
        ['escape', link('../../../../../opt/real')],
      ],
    ]);
    const r = fs.resolve('/usr/local/bin/app');
    expect(r.status).toBe('found');
    expect(r.path).toBe('opt/real');
    expect(r.chain).toEqual(['/usr/local/bin/app', '/bin/tool']);
    expect(fs.resolve('escape')).toMatchObject({ status: 'found', path: 'opt/real' });
  });

  it('stops symlink loops and follows directory symlinks', () => {
    const fs = build([[['a', link('b')], ['b', link('a')], ['bin', link('usr/bin')], ['usr/bin/sh', file]]]);
    expect(fs.resolve('a').status).toBe('loop');
    expect(fs.resolve('/bin/sh')).toMatchObject({ status: 'found', path: 'usr/bin/sh' });
  });

  it('looks commands up on PATH in order', () => {
    const fs = build([[['usr/bin/tool', file], ['bin/tool', file]]]);
    expect(fs.which('tool', ['/usr/local/bin', '/usr/bin', '/bin'])).toMatchObject({ status: 'found', path: 'usr/bin/tool' });
    expect(fs.which('nope', ['/usr/bin']).status).toBe('absent');
  });

  it('follows hardlinks', () => {
    const fs = build([[['bin/busybox', file], ['bin/ls', { type: 'hardlink', link: './bin/busybox', size: 0, mode: 0o755 }]]]);
    expect(fs.resolve('/bin/ls')).toMatchObject({ status: 'found', path: 'bin/busybox' });
  });

  it('records entries that try to escape', () => {
    const fs = build([[['../../etc/evil', file]]]);
    expect(fs.entries.has('etc/evil')).toBe(true);
    expect(fs.warnings[0]).toMatch(/points outside the root/);
  });
});

describe('tar path normalising', () => {
  // Whether a name climbs above the root, walked component by component (an absolute name is
  // clamped at the root by the runtime, so it never escapes).
  const climbs = (name: string) => {
    if (name.startsWith('/')) return false;
    let depth = 0;
    for (const c of name.split('/')) {
      if (c === '..') {
        if (--depth < 0) return true;
      } else if (c !== '' && c !== '.') depth++;
    }
    return false;
  };
  // What the runtime's extraction does: node's posix.normalize inside the root (the reference),
  // against which the fast path for ordinary names must agree on odd ones too.
  const reference = (name: string) => ({ path: posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, ''), escaped: climbs(name) });
  it('agrees with posix.normalize on ordinary and odd names', () => {
    const names = ['./', '.', './usr/bin/x', 'usr/lib/', '/abs/x', '//x', 'a//b', 'a/./b', 'a/../b', '../x', './../x', 'x/..', '...', '..a/b', 'a/..b', './.wh..wh..opq', 'usr/.wh.x', '', 'a/.', './a/./', '././a', 'a/b/../../..', '.hidden/x', 'usr/lib/x86_64-linux-gnu/libc.so.6'];
    for (const n of names) expect(normalizeTarPath(n), n).toEqual(reference(n));
  });

  it('takes the short ways ("usr/x", "./usr/x/") only where the full rule agrees, over every mix of odd parts', () => {
    const parts = ['', '.', '..', 'a', '.wh.x', '.hidden', '..d'];
    const names: string[] = [];
    for (const lead of ['', './', '/', '././', './/'])
      for (const x of parts)
        for (const y of [undefined, ...parts])
          for (const z of [undefined, ...parts])
            for (const trail of ['', '/', '//']) names.push(`${lead}${x}${y === undefined ? '' : `/${y}`}${z === undefined || y === undefined ? '' : `/${z}`}${trail}`);
    expect(names.length).toBeGreaterThan(5000);
    for (const n of names) expect([n, normalizeTarPath(n)]).toEqual([n, reference(n)]);
  });
});
