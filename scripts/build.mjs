// Bundle the CLI with esbuild: one entry plus a chunk per lazily loaded command, so start-up
// reads a few files instead of resolving hundreds of modules. Types are checked by `tsc --noEmit`.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Modules our commands never reach, made lazy: loaded at first use instead of at every start.
 * undici's HTTP/2 client (and with it node:http2 and node:tls, ~20 ms) serves only a connection
 * that negotiated h2, which we never offer; commander's node:child_process only runs executable
 * subcommands, which we have none of. Each rewrite must match exactly: a dependency update that
 * moves the line fails the build rather than quietly loading it eagerly again.
 */
const LAZY = [
  {
    file: /node_modules[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client\.js$/,
    from: "const connectH2 = require('./client-h2.js')",
    to: "const connectH2 = (...args) => require('./client-h2.js')(...args)",
  },
  {
    file: /node_modules[\\/]commander[\\/]lib[\\/]command\.js$/,
    from: "const childProcess = require('node:child_process');",
    to: "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };",
  },
];

const lazyModules = {
  name: 'lazy-modules',
  setup(b) {
    for (const { file, from, to } of LAZY) {
      b.onLoad({ filter: file }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes(from)) throw new Error(`${args.path}: expected \`${from}\` to make it lazy (scripts/build.mjs LAZY)`);
        return { contents: text.replace(from, to), loader: 'js' };
      });
    }
  },
};

rmSync('dist', { recursive: true, force: true });
const { metafile } = await build({
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
  plugins: [lazyModules],
  metafile: true,
  logLevel: 'warning',
});

// And they stay lazy in the bundle: each chunk holding a rewritten module, loaded on its own,
// loads none of the built-ins it was rewritten to spare.
const SPARED = ['http2', 'tls', 'child_process'];
for (const [out, o] of Object.entries(metafile.outputs)) {
  if (out.endsWith('.map') || !Object.keys(o.inputs).some((i) => LAZY.some((l) => l.file.test(i)))) continue;
  const probe = `await import(${JSON.stringify(pathToFileURL(resolve(out)).href)}); process.stdout.write(JSON.stringify(process.moduleLoadList));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${out} could not be loaded on its own: ${r.stderr}`);
  const loaded = SPARED.filter((m) => JSON.parse(r.stdout).includes(`NativeModule ${m}`));
  if (loaded.length > 0) throw new Error(`${out} loads ${loaded.join(', ')} at start-up again (scripts/build.mjs LAZY)`);
}
