import { defineConfig } from 'vitest/config';

// The project's own tests. Runbook scenarios (scenarios/) are run by the runbook runner, not here.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/support/ci-summary-reporter.ts'],
    // Builds the Kubernetes test binaries (kube-apiserver & co.) once per version if the cache lacks them.
    globalSetup: ['./test/support/kube/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: keep parallelism modest so real servers are not starved.
    maxWorkers: 2,
  },
});
