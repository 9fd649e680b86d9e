// The project's shipped manifests, ready to apply to the tests' API server in a namespace of the
// test's own: deploy/k8s as kustomize renders it (what `kubectl apply -k deploy/k8s` sends) and the
// loose files under deploy/tools/.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { KubeCluster } from './cluster.js';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const DEPLOY_K8S = join(REPO, 'deploy/k8s');
export const DEPLOY_TOOLS = join(REPO, 'deploy/tools');

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => !!d && typeof d === 'object' && 'kind' in d);
}

/** deploy/k8s rendered by the cluster's kubectl (kustomize), as objects. */
export async function renderDeployK8s(cluster: KubeCluster): Promise<Manifest[]> {
  const r = await cluster.kubectl(['kustomize', DEPLOY_K8S]);
  if (r.code !== 0) throw new Error(`kubectl kustomize deploy/k8s failed: ${r.stderr.trim()}`);
  return parseManifests(r.stdout);
}

/** Every YAML file under deploy/tools/, as objects. */
export function loadDeployTools(): { file: string; docs: Manifest[] }[] {
  return readdirSync(DEPLOY_TOOLS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => ({ file: `deploy/tools/${f}`, docs: parseManifests(readFileSync(join(DEPLOY_TOOLS, f), 'utf8')) }));
}

/**
 * The same objects in namespace `ns` instead of `from` (default "cordum"): metadata.namespace and the
 * ServiceAccount subjects of RoleBindings, as `kustomize edit set namespace` would change them.
 */
export function inNamespace(docs: Manifest[], ns: string, from = 'cordum'): Manifest[] {
  return docs.map((d) => {
    const o = structuredClone(d);
    if (o.metadata.namespace === from) o.metadata.namespace = ns;
    if (o.kind === 'RoleBinding') for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount' && s.namespace === from) s.namespace = ns;
    return o;
  });
}
