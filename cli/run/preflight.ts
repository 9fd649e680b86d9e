// Preflight: fail fast (exit 3) before creating anything. The runbook's needs and destructive flag
// are checked against the profile, then the gateway must answer its health check within the
// profile's connect timeout (plus half a second). Every request here carries the run's stop signal,
// so Ctrl-C ends a preflight that waits on a slow target at once.
import type { Runbook } from '../../helpers/catalog.js';
import { PreconditionError, TargetTimeoutError, UnreachableError, errorMessage } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';

export interface PlatformInfo {
  version: string;
}

/** The health check's deadline beyond the connect timeout: the answer itself. */
const HEALTH_SLACK_MS = 500;

export async function preflight(runbook: Runbook, profile: TargetProfile, signal: AbortSignal): Promise<PlatformInfo> {
  const missing: string[] = [];
  if (runbook.needs.includes('redis') && !profile.redis) missing.push('redis');
  if (runbook.needs.includes('bus') && !profile.nats) missing.push('nats');
  if (runbook.needs.includes('kube') && !profile.kube) missing.push('kube');
  if (missing.length) {
    throw new PreconditionError(`runbook '${runbook.name}' needs ${missing.join(', ')}, which target '${profile.name}' does not configure`);
  }
  if (runbook.destructive && !profile.destructive.allowed) {
    throw new PreconditionError(
      `runbook '${runbook.name}' is destructive and target '${profile.name}' does not allow it (destructive.allowed: false)`,
    );
  }
  const { GatewayClient } = await import('../../helpers/gateway.js');
  const gw = new GatewayClient(profile, { signal });
  const budget = profile.gateway.connect_timeout_ms + HEALTH_SLACK_MS;
  const where = `gateway of target '${profile.name}' at ${profile.gateway.url}`;
  try {
    await gw.request('GET', '/health', { expect: 200, timeoutMs: budget });
    // Build info is nice to have for the report; a target without status access still runs.
    const status = await gw.status().catch(() => undefined);
    return { version: status?.build?.version ? `${status.build.version} (${status.build.commit ?? 'unknown'})` : 'unknown' };
  } catch (err) {
    if (signal.aborted) throw err; // the run was stopped: the caller reports that, not the target
    if (err instanceof TargetTimeoutError) {
      throw new TargetTimeoutError(`${where} answered its health check too slowly: no complete answer within ${budget} ms (connect timeout ${profile.gateway.connect_timeout_ms} ms + ${HEALTH_SLACK_MS} ms)`);
    }
    if (err instanceof UnreachableError) throw err;
    throw new UnreachableError(`${where} is not reachable: ${errorMessage(err)}`);
  } finally {
    // Nothing of the preflight is worth waiting for: drop its connections, in-flight or not.
    await gw.destroy().catch(() => {});
  }
}
