// STUB: owned by the safety-kernel/scheduler engineer; replaced with the real implementation.
import type { RouteModule } from '../types.js';

/** Job-level approvals (api.md §10.7). */
export const approvalRoutes: RouteModule = () => {};
