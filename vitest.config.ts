import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 15 * 60_000,
    hookTimeout: 15 * 60_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    pool: 'forks',
    setupFiles: ['./test/helpers/engine-setup.ts'],
  },
});
