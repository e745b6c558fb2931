// Bundle the CLI with esbuild: one entry plus a chunk per lazily loaded command, so start-up
// reads a few files instead of resolving hundreds of modules. Types are checked by `tsc --noEmit`.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
await build({
  // The layer-facts worker is an entry of its own: worker threads start from a file.
  entryPoints: ['src/cli/main.ts', { in: 'src/verify/facts-worker.ts', out: 'facts-worker' }],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Less to parse at every start: V8's pre-parse of the big chunk is most of the start-up cost.
  minify: true,
  keepNames: true,
  chunkNames: '../chunks/[name]-[hash]',
  // CommonJS dependencies (undici, tar-stream) call require() for Node built-ins.
  banner: { js: "import { createRequire as __cbCreateRequire } from 'node:module'; const require = __cbCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
