// The runbook options of backup-restore (declared in runbooks/backup-restore.md) and the guard of
// the in-place path. Shared by drill.test.ts (which stands aside on in-place runs) and
// in-place.test.ts. Not a scenario file: the runner only picks up *.test.ts here.
import { isAbsolute, resolve } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import type { RunContext } from '../../helpers/steps.js';
import { ConfigError, PreconditionError, UsageError } from '../../helpers/errors.js';

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
  if (req.archive !== undefined && !(existsSync(req.archive) && statSync(req.archive).isDirectory())) {
    throw new ConfigError(`--archive ${req.archive}: not a directory (expected a backup archive holding manifest.json)`);
  }
  return { namespace };
}
