// STUB: owned by the safety-kernel/scheduler engineer; replaced with the real implementation.
import type { RouteModule } from '../types.js';

/** Policy evaluate/simulate/explain/snapshots, bundles, publish, rollback, audit, rules (api.md §10.9-10.10). */
export const policyRoutes: RouteModule = () => {};
