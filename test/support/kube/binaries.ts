// Where the tests' Kubernetes programs are: kube-apiserver, kube-controller-manager and kubectl built
// once per version by build.sh into the user's cache (outside the repo), etcd from Debian's
// etcd-server package. A machine without them fails the Kubernetes tests with one line saying how to
// get them; it never skips them quietly (CI has Go and builds them in .ci/run before `pnpm test`).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBinary } from '../../../helpers/processes.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const BUILD_SCRIPT = join(HERE, 'build.sh');
export const KUBE_VERSION = readFileSync(join(HERE, 'VERSION'), 'utf8').trim();

export interface KubeBinaries {
  version: string;
  etcd: string;
  apiserver: string;
  controllerManager: string;
  kubectl: string;
}

/** The cache folder build.sh uses (CORDUM_KUBE_DIR, else ~/.cache/cordum-runbooks/kube/v<version>). */
export function kubeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CORDUM_KUBE_DIR) return env.CORDUM_KUBE_DIR;
  const cache = env.XDG_CACHE_HOME || join(env.HOME ?? '/root', '.cache');
  return join(cache, 'cordum-runbooks', 'kube', `v${KUBE_VERSION}`);
}

export class KubeBinariesMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeBinariesMissingError';
  }
}

/** The programs, or a KubeBinariesMissingError naming what is missing and the command that fixes it. */
export function kubeBinaries(): KubeBinaries {
  const dir = kubeCacheDir();
  const bin = (name: string) => join(dir, name);
  const missing = ['kube-apiserver', 'kube-controller-manager', 'kubectl'].filter((p) => !existsSync(bin(p)));
  if (missing.length) {
    const why = process.env.CORDUM_KUBE_BUILD_ERROR ? ` (${process.env.CORDUM_KUBE_BUILD_ERROR})` : '';
    throw new KubeBinariesMissingError(
      `Kubernetes test binaries missing in ${dir} (${missing.join(', ')}): run \`bash test/support/kube/build.sh\` once (needs Go; about 22 CPU-minutes and 2.6 GB; .ci/run does it)${why}`,
    );
  }
  const etcd = process.env.ETCD_BIN ?? findBinary('etcd') ?? (existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined);
  if (!etcd || !existsSync(etcd)) throw new KubeBinariesMissingError('etcd not found: `apt-get install etcd-server` (or set ETCD_BIN)');
  return { version: KUBE_VERSION, etcd, apiserver: bin('kube-apiserver'), controllerManager: bin('kube-controller-manager'), kubectl: bin('kubectl') };
}

/**
 * Build what the cache lacks (vitest globalSetup calls this once per run). Returns the error text
 * instead of throwing, so a machine without Go still runs every other test; the Kubernetes tests
 * then fail with that text.
 */
export function ensureKubeBinaries(log: (line: string) => void = () => undefined): string | undefined {
  try {
    kubeBinaries();
    return undefined;
  } catch (err) {
    if (!(err instanceof KubeBinariesMissingError) || /etcd/.test(err.message)) return (err as Error).message;
  }
  log(`kube: building kube-apiserver, kube-controller-manager and kubectl v${KUBE_VERSION} once into ${kubeCacheDir()} (several minutes on 2 cores)`);
  try {
    execFileSync('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return `building the Kubernetes test binaries failed (bash test/support/kube/build.sh): ${stderr || (err as Error).message}`;
  }
  try {
    kubeBinaries();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
