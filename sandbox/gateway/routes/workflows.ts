// STUB: owned by the workflow-engine engineer; replaced with the real implementation.
import type { RouteModule } from '../types.js';

/** Workflows, runs, step approval, cancel, rerun, timeline (api.md §10.5-10.6). */
export const workflowRoutes: RouteModule = () => {};
