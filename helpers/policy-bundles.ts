// Policy bundle changes that must end where they started: snapshot the bundle map, store a draft,
// publish it and wait for the safety kernel to load it, roll back to the snapshot and wait for the
// kernel to load the old policy, then compare the map and read the policy audit. Knows nothing of
// the caller: it names the bundles, writes their content, and registers rollbackAction() for
// teardown before its first write.
import { readFileSync } from 'node:fs';
import type { GatewayClient, PolicyAuditEntry, PublishResponse, RollbackResponse } from './gateway.js';
import type { TargetProfile } from './profile-types.js';
import { ENV } from './report/run-contract.js';
import type { HttpTeardown } from './teardown.js';
import { compactJson, waitFor, WaitTimeoutError } from './waits.js';

export type BundleMap = Record<string, unknown>;

/** Cordum's SAFETY_POLICY_RELOAD_INTERVAL default. */
export const DEFAULT_RELOAD_INTERVAL_MS = 30_000;

/**
 * Wraps each call made here, e.g. a runbook's sub-step so it shows in the report (`ctx.step`).
 * Default: just runs it.
 */
export type Phase = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

const run: Phase = (_name, fn) => fn();

/**
 * policy.reload_interval_ms of the profile the runner resolved for this run (its file is named by
 * the run contract), else Cordum's default. Read when a scenario file loads, to derive deadlines.
 */
export function runnerReloadIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const file = env[ENV.TARGET_FILE];
  if (!file) return DEFAULT_RELOAD_INTERVAL_MS;
  try {
    const ms = (JSON.parse(readFileSync(file, 'utf8')) as Partial<TargetProfile>).policy?.reload_interval_ms;
    return typeof ms === 'number' && ms > 0 ? ms : DEFAULT_RELOAD_INTERVAL_MS;
  } catch {
    return DEFAULT_RELOAD_INTERVAL_MS;
  }
}

/** How long the kernel may take to load a change: two reload intervals (the timer's phase is unknown) plus 5 s (a reload reads Redis). */
export function kernelReloadWaitMs(reloadIntervalMs: number): number {
  return 2 * reloadIntervalMs + 5_000;
}

/** The kernel's current policy snapshot ('' when it reports none). */
export async function kernelSnapshot(gw: GatewayClient): Promise<string> {
  return (await gw.policySnapshots()).snapshots?.[0] ?? '';
}

export async function bundleMap(gw: GatewayClient): Promise<BundleMap> {
  return ((await gw.bundles()).bundles ?? {}) as BundleMap;
}

export interface KernelWaitOptions {
  /** The target's policy.reload_interval_ms: the deadline is kernelReloadWaitMs() of it. */
  reloadIntervalMs: number;
  signal?: AbortSignal;
}

/** Poll the kernel snapshot until `until` holds; a timeout says the kernel did not reload in time. */
export async function waitForKernel(gw: GatewayClient, what: string, until: (snapshot: string) => boolean, opts: KernelWaitOptions): Promise<string> {
  const reload = opts.reloadIntervalMs;
  const timeoutMs = kernelReloadWaitMs(reload);
  try {
    return await waitFor(`${what} (deadline ${timeoutMs} ms = 2 x policy.reload_interval_ms ${reload} + 5 s)`, () => kernelSnapshot(gw), until, {
      timeoutMs,
      intervalMs: Math.min(1_000, Math.max(250, Math.round(reload / 10))),
      signal: opts.signal,
    });
  } catch (err) {
    if (err instanceof WaitTimeoutError) throw new Error(`the safety kernel did not reload the policy in time: ${err.message}`, { cause: err });
    throw err;
  }
}

export interface BundleSnapshotState {
  /** The config-service bundle snapshot to roll back to. */
  snapshotId: string;
  /** The bundle map when the snapshot was taken. */
  bundles: BundleMap;
  /** The kernel's policy snapshot at that time. */
  kernel: string;
}

/**
 * Record the kernel snapshot and the bundle map, then take a bundle snapshot. Throws when the map
 * changed in between (someone else is editing policy): nothing has been changed then.
 */
export async function snapshotBundles(gw: GatewayClient, note: string, opts: { phase?: Phase } = {}): Promise<BundleSnapshotState> {
  const phase = opts.phase ?? run;
  const kernel = await phase('Record the kernel snapshot (GET /api/v1/policy/snapshots)', () => kernelSnapshot(gw));
  const bundles = await phase('Record the bundle map (GET /api/v1/policy/bundles)', () => bundleMap(gw));
  const snap = await phase('Take a bundle snapshot', () => gw.createBundleSnapshot(note));
  const drift = diffBundleMaps(bundles, (snap.bundles ?? {}) as BundleMap);
  if (drift) throw new Error(`the bundle map changed between reading it and snapshotting it (${drift}): someone else is editing policy right now; nothing was changed`);
  return { snapshotId: snap.id, bundles, kernel };
}

export interface ChangeNote {
  author?: string;
  message?: string;
}

/** The teardown action that restores the bundle map to a snapshot (register it before the first write). */
export function rollbackAction(snapshotId: string, note: ChangeNote = {}): HttpTeardown {
  return {
    kind: 'http',
    method: 'POST',
    path: '/api/v1/policy/rollback',
    body: { snapshot_id: snapshotId, ...note },
    // A missing snapshot is not "already gone" here: it means the rollback could not happen.
    okStatuses: [200],
  };
}

/** Store a bundle (`enabled: false` keeps it a draft until published) and check it was stored so. */
export async function putDraft(gw: GatewayClient, id: string, content: string, enabled: boolean, opts: ChangeNote & { phase?: Phase } = {}): Promise<void> {
  const phase = opts.phase ?? run;
  await phase(`Store ${id} with enabled: ${enabled}`, () => gw.putBundle(id, { content, enabled, author: opts.author, message: opts.message }));
  const stored = await gw.getBundle(id);
  if (stored.enabled !== enabled) throw new Error(`expected ${id} to be stored with enabled: ${enabled}; GET answered enabled: ${JSON.stringify(stored.enabled)}`);
}

export interface PublishOptions extends KernelWaitOptions, ChangeNote {
  /** The kernel snapshot before the change (e.g. BundleSnapshotState.kernel); read now when absent. */
  kernelBefore?: string;
  /** X-Principal-Id/Role of the publish call, when not the client's own. */
  principal?: { id?: string; role?: string };
  phase?: Phase;
}

export interface KernelChange<R> {
  response: R;
  kernelBefore: string;
  kernelAfter: string;
}

/** Publish bundles, check each is listed as published, and wait until the kernel snapshot moves on. */
export async function publishAndWaitForKernel(gw: GatewayClient, ids: string[], opts: PublishOptions): Promise<KernelChange<PublishResponse>> {
  const phase = opts.phase ?? run;
  const kernelBefore = opts.kernelBefore ?? (await kernelSnapshot(gw));
  const body = { bundle_ids: ids, author: opts.author, message: opts.message };
  const principal = opts.principal ?? gw.profile.gateway.principal;
  const response = await phase(`Publish ${ids.join(', ')} (X-Principal-Id ${principal?.id ?? '(none)'})`, async () =>
    opts.principal
      ? (await gw.request<PublishResponse>('POST', '/api/v1/policy/publish', { body, headers: principalHeaders(opts.principal), expect: 200 })).json!
      : gw.publishPolicy(body),
  );
  const missing = ids.filter((id) => !(response.published ?? []).includes(id));
  if (missing.length) throw new Error(`expected publish to list ${missing.join(', ')} as published; it answered ${compactJson(response)}`);
  const what = `the safety kernel to load the published bundle${ids.length > 1 ? 's' : ''} (its snapshot to move away from ${kernelBefore})`;
  const kernelAfter = await phase('Wait for the kernel snapshot to change', () => waitForKernel(gw, what, (s) => s !== '' && s !== kernelBefore, opts));
  return { response, kernelBefore, kernelAfter };
}

/** Roll back to a bundle snapshot and wait until the kernel is back on its snapshot from before the change. */
export async function rollbackAndWait(
  gw: GatewayClient,
  snapshotId: string,
  opts: KernelWaitOptions & ChangeNote & { kernelBefore: string; phase?: Phase },
): Promise<KernelChange<RollbackResponse>> {
  const phase = opts.phase ?? run;
  const response = await phase(`Roll back to bundle snapshot ${snapshotId}`, () =>
    gw.rollbackPolicy({ snapshot_id: snapshotId, author: opts.author, message: opts.message }),
  );
  const what = `the safety kernel to load the rolled-back policy (its snapshot to return to ${opts.kernelBefore})`;
  const kernelAfter = await phase('Wait for the kernel snapshot to return to the one before the change', () =>
    waitForKernel(gw, what, (s) => s === opts.kernelBefore, opts),
  );
  return { response, kernelBefore: opts.kernelBefore, kernelAfter };
}

export function bundleMapEquals(before: BundleMap, after: BundleMap): boolean {
  return diffBundleMaps(before, after) === '';
}

/** "added x; removed y; changed z (field a)", or '' when the maps are equal (key order aside). */
export function diffBundleMaps(before: BundleMap, after: BundleMap): string {
  const same = (a: unknown, b: unknown) => compactJson(sortKeys(a)) === compactJson(sortKeys(b));
  const added = Object.keys(after).filter((k) => !(k in before));
  const removed = Object.keys(before).filter((k) => !(k in after));
  const changed = Object.keys(before)
    .filter((k) => k in after && !same(before[k], after[k]))
    .map((k) => {
      const b = (before[k] ?? {}) as Record<string, unknown>;
      const a = (after[k] ?? {}) as Record<string, unknown>;
      return `${k} (${[...new Set([...Object.keys(b), ...Object.keys(a)])].filter((f) => !same(b[f], a[f])).join(', ')})`;
    });
  const parts: string[] = [];
  if (added.length) parts.push(`added ${added.join(', ')}`);
  if (removed.length) parts.push(`removed ${removed.join(', ')}`);
  if (changed.length) parts.push(`changed ${changed.join(', ')}`);
  return parts.join('; ');
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sortKeys(x)]));
  return v;
}

/** X-Principal-Role as Cordum records it in audits and approvals: trimmed, lower-cased, secops/operator mapped to admin. */
export function recordedRole(role: string): string {
  const r = role.trim().toLowerCase();
  return r === 'secops' || r === 'operator' ? 'admin' : r;
}

export interface AuditExpectation {
  /** X-Principal-Id of the call; unchecked when absent. */
  actorId?: string;
  /** The role as recorded (see recordedRole); unchecked when absent. */
  role?: string;
  bundleIds?: string[];
}

/** What an audit entry should record for calls made with this principal (X-Principal-Id/Role). */
export function auditActor(principal: { id?: string; role?: string } | undefined): AuditExpectation {
  return { actorId: principal?.id, role: principal?.role ? recordedRole(principal.role) : undefined };
}

/**
 * A bundle snapshot id where "none" has several spellings: Cordum takes no snapshot of an empty
 * bundle map, so a rollback to the empty map of a fresh install answers `snapshot_after: ""` and
 * its audit entry has no `snapshot_after` at all. Absent, null and "" are the same "empty" id.
 */
export function snapshotId(v: string | null | undefined): string {
  return v ?? '';
}

export function sameSnapshot(a: string | null | undefined, b: string | null | undefined): boolean {
  return snapshotId(a) === snapshotId(b);
}

/** How the audit entry spelled its snapshot_after, for the evidence. */
export function snapshotVariant(entry: { snapshot_after?: string | null }): string {
  if (entry.snapshot_after === undefined) return 'snapshot_after omitted (the map it restored is empty: Cordum takes no snapshot of an empty map)';
  if (entry.snapshot_after === '' || entry.snapshot_after === null) return 'snapshot_after empty';
  return 'snapshot_after set';
}

/**
 * Find the policy audit entry of a publish or rollback (by the snapshots it answered, with absent
 * and "" the same) and check it; `problems` says what is missing or wrong, in words for a report.
 * `variant` records how the entry spelled an empty snapshot.
 */
export function checkAuditEntry(
  items: PolicyAuditEntry[],
  action: 'publish' | 'rollback',
  change: { snapshot_before: string; snapshot_after?: string | null },
  expect: AuditExpectation = {},
): { entry?: PolicyAuditEntry; variant?: string; problems: string[] } {
  const candidates = items.filter((e) => e.action === action && sameSnapshot(e.snapshot_after, change.snapshot_after));
  // An empty snapshot_after is shared by every rollback to an empty map: the snapshot before tells them apart.
  const entry = candidates.find((e) => sameSnapshot(e.snapshot_before, change.snapshot_before)) ?? candidates[0];
  const after = snapshotId(change.snapshot_after) || '(none: an empty map)';
  if (!entry) return { problems: [`no ${action} entry with snapshot_after ${after} in the policy audit (newest entries: ${compactJson(items.slice(0, 3))})`] };
  const problems: string[] = [];
  if (!sameSnapshot(entry.snapshot_before, change.snapshot_before)) problems.push(`${action} entry has snapshot_before ${JSON.stringify(entry.snapshot_before ?? '')}, expected ${change.snapshot_before}`);
  if (expect.actorId && entry.actor_id !== expect.actorId) problems.push(`${action} entry records actor_id ${JSON.stringify(entry.actor_id ?? '')}, expected ${expect.actorId} (X-Principal-Id)`);
  if (expect.role && entry.role !== expect.role) problems.push(`${action} entry records role ${JSON.stringify(entry.role ?? '')}, expected ${expect.role} (X-Principal-Role as Cordum records it)`);
  const missing = (expect.bundleIds ?? []).filter((id) => !(entry.bundle_ids ?? []).includes(id));
  if (missing.length) problems.push(`${action} entry lists bundle_ids ${compactJson(entry.bundle_ids ?? [])}, expected ${missing.join(', ')}`);
  return { entry, variant: snapshotVariant(entry), problems };
}

function principalHeaders(p: { id?: string; role?: string }): Record<string, string> {
  return { ...(p.id ? { 'x-principal-id': p.id } : {}), ...(p.role ? { 'x-principal-role': p.role } : {}) };
}
