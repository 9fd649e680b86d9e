// Small filesystems for fault tests: a full disk (a 1 MiB tmpfs) and a read-only directory. Both
// need a mount. With mount rights (root, CAP_SYS_ADMIN) the test mounts one itself; a child process
// can instead run inside bubblewrap's own mount namespace (unprivileged user namespaces). Without
// either, the test is skipped with one line saying why: never run with a plain directory and
// counted as passed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let mountable: boolean | undefined;
let bwrapUsable: boolean | undefined;

/** This process may mount a tmpfs (probed once, on a scratch directory). */
export function canMount(): boolean {
  if (mountable === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'mount-probe-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
      execFileSync('umount', [dir], { stdio: 'ignore' });
      mountable = true;
    } catch {
      mountable = false;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return mountable;
}

/** bubblewrap is installed and may create a mount namespace here. */
export function canBwrap(): boolean {
  bwrapUsable ??= spawnSync('bwrap', ['--dev-bind', '/', '/', 'true'], { stdio: 'ignore' }).status === 0;
  return bwrapUsable;
}

/** Why a test that needs a mount cannot run here (one line), or undefined when it can. */
export function noMountReason(alsoBwrap: boolean): string | undefined {
  if (canMount() || (alsoBwrap && canBwrap())) return undefined;
  return alsoBwrap
    ? 'needs mount rights (root) or a working bubblewrap (apt-get install bubblewrap) to make a read-only directory'
    : 'needs mount rights (root) to mount a 1 MiB tmpfs in this process';
}

/** Mount a tmpfs on `dir` (mount rights needed); returns the unmount. */
export function mountTmpfs(dir: string, options: string): () => void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
  return () => execFileSync('umount', [dir], { stdio: 'ignore' });
}

/** The command prefix that runs a child with `dir` read-only, when this process cannot mount. */
export function readOnlyPrefix(dir: string): string[] {
  return ['bwrap', '--dev-bind', '/', '/', '--ro-bind', dir, dir, '--'];
}
