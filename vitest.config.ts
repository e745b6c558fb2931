import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 15 * 60_000,
    hookTimeout: 15 * 60_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    pool: 'forks',
    // One file at a time on any machine: the integration files share one engine, one registry and
    // the host's binfmt_misc, and some check engine-wide state (no container left, the handlers a
    // dry run leaves alone). On 2 cores vitest runs one at a time anyway.
    fileParallelism: false,
    setupFiles: ['./test/helpers/engine-setup.ts'],
  },
});
