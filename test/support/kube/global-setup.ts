// Vitest globalSetup: builds the Kubernetes test binaries once if the cache lacks them (a fresh clone's
// first `pnpm test`; .ci/run builds them before). A failed build does not stop the other tests: the
// Kubernetes tests then fail with its one-line reason (see binaries.ts), they are never skipped.
import { ensureKubeBinaries } from './binaries.js';

export default function setup(): void {
  const problem = ensureKubeBinaries((line) => process.stderr.write(`${line}\n`));
  if (problem) {
    process.env.CORDUM_KUBE_BUILD_ERROR = problem;
    process.stderr.write(`kube: ${problem}\n`);
  }
}
