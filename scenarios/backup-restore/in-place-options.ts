// The runbook options of backup-restore (declared in runbooks/backup-restore.md) and the guard of
// the in-place path. Shared by drill.test.ts (which stands aside on in-place runs) and
// in-place.test.ts. Not a scenario file: the runner only picks up *.test.ts here.
import { isAbsolute, resolve } from 'node:path';
import type { RunContext } from '../../helpers/steps.js';
import { ConfigError, PreconditionError, UsageError } from '../../helpers/errors.js';
import { checkUserPath } from '../../helpers/files.js';
import { ArchiveError, type BackupManifest } from '../../helpers/backup/archive.js';
import { checkInPlaceArchive } from '../../helpers/backup/in-place.js';
import type { RedisBackupPath } from '../../helpers/backup/redis-logical.js';
import { VerifyError } from '../../helpers/backup/verify.js';

export interface InPlaceRequest {
  inPlace: boolean;
  /** Absolute path of --archive, when given. */
  archive?: string;
  confirm?: string;
}

/** The options as given: `in-place` is always there (false when absent), strings only when given. */
export function inPlaceRequest(ctx: RunContext): InPlaceRequest {
  const o: Readonly<Record<string, string | boolean>> = ctx.options ?? {};
  const str = (name: string): string | undefined => {
    const v = o[name];
    if (v === undefined || v === false) return undefined;
    if (typeof v !== 'string' || !v) throw new UsageError(`--${name} needs a value`);
    return v;
  };
  const archive = str('archive');
  return {
    inPlace: o['in-place'] === true || o['in-place'] === 'true',
    archive: archive === undefined ? undefined : isAbsolute(archive) ? archive : resolve(process.cwd(), archive),
    confirm: str('confirm'),
  };
}

/** --redis-read: how the Redis backup reads each master (runbooks/backup-restore.md, step 3). */
export function redisReadOption(ctx: RunContext): RedisBackupPath {
  const v = (ctx.options ?? {})['redis-read'];
  if (v === undefined || v === false || v === 'auto') return 'auto';
  if (v === 'scan') return 'scan';
  if (v === 'sync') return 'rdb';
  throw new UsageError(`--redis-read must be auto, scan or sync, got ${JSON.stringify(String(v)).slice(0, 40)}`);
}

export const NOT_IN_PLACE = 'not an in-place run: the in-place steps run only with --in-place --confirm <namespace> (real recovery)';
export const IN_PLACE_RUN = 'in-place recovery run (--in-place): the scratch drill stands aside; the in-place steps below do the work';

/** The drill refuses the in-place options without --in-place: a recovery typed without it must not turn into a drill. */
export function refuseStrayInPlaceOptions(req: InPlaceRequest): void {
  const stray = [req.archive !== undefined && '--archive', req.confirm !== undefined && '--confirm'].filter(Boolean);
  if (!req.inPlace && stray.length) {
    throw new UsageError(`${stray.join(' and ')} only apply with --in-place; add --in-place for a real recovery, or leave them out for the drill`);
  }
}

/**
 * The guard: the profile must name the namespace (kube section), and --confirm must repeat it
 * exactly. UsageError (exit 2) for the command line, PreconditionError (exit 3) for the profile.
 */
export function guardCommandLine(ctx: RunContext, req: InPlaceRequest): { namespace: string } {
  const namespace = ctx.target.kube?.namespace;
  if (!namespace) {
    throw new PreconditionError(`in-place restore needs a kube section (namespace, context) in target '${ctx.target.name}': the writers to freeze live there`);
  }
  if (req.confirm === undefined) {
    throw new UsageError(`in-place restore refused: --confirm <namespace> is missing; type the target namespace "${namespace}" to confirm`);
  }
  if (req.confirm !== namespace) {
    throw new UsageError(`in-place restore refused: --confirm ${JSON.stringify(req.confirm)} does not match the target namespace "${namespace}"`);
  }
  return { namespace };
}

/**
 * --archive is checked before anything else, the Kubernetes guard included: a truncated or
 * corrupted archive is the operator's input, refused with exit 2 naming the damaged file, whether
 * or not the profile could reach a cluster. Nothing has been read from or written to the target.
 */
export async function checkArchiveOption(archive: string): Promise<BackupManifest> {
  checkUserPath(archive, { what: 'backup archive', kinds: ['dir'], display: `--archive ${archive}` });
  try {
    return await checkInPlaceArchive(archive);
  } catch (err) {
    if (err instanceof VerifyError) {
      const [first, ...more] = err.failures;
      const rest = more.length ? ` (and ${more.length} more problem(s))` : '';
      throw new ConfigError(`--archive ${archive}: damaged backup archive, nothing was restored: ${first!.message}${rest}`);
    }
    if (err instanceof ArchiveError || err instanceof ConfigError) throw new ConfigError(`--archive ${archive}: ${err.message}`);
    throw err;
  }
}
