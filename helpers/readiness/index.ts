// Public surface of the readiness audit.
export * from './model.js';
export { runAudit, summarize, type RunAuditOptions } from './audit.js';
export { ALL_CHECKS } from './checks/index.js';
export { loadManifests, loadManifestDir, parseManifestText, renderKustomize, renderHelm, readStdin, type LoadedManifests } from './manifests.js';
export { ObjectIndex, type KubeObject, type Workload } from './objects.js';
export { collectLive, readDrillHistory, type LiveFacts, type CollectOptions } from './live.js';
export { loadWaivers, parseWaivers, WAIVERS_FILE, type Waiver } from './waivers.js';
export { toMarkdown, toSarif, toJUnit } from './reporters.js';
export { DRILL_CONFIGMAP, DRILL_ANNOTATION } from './checks/backups.js';
