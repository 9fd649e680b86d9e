// Where drills are recorded so the readiness audit (checklist 6.3, "restore drill run quarterly")
// can find the last one: a local JSON-lines file, and on clusters a ConfigMap annotation.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { apiStatus, kubeError, type Kube } from '../kube.js';
import { reportsRoot } from '../report/run-contract.js';

/**
 * The drill record: `<RUNBOOK_REPORTS_DIR, else <repo>/reports>/.drills.jsonl`, whatever the working
 * directory (the container image sets RUNBOOK_REPORTS_DIR=/reports). The readiness audit reads the
 * same path (helpers/readiness/live.ts).
 */
export function drillHistoryFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(reportsRoot(env), '.drills.jsonl');
}

/** drillHistoryFile() as resolved when this module was loaded (absolute). */
export const DRILL_HISTORY_FILE = drillHistoryFile();
export const DRILL_CONFIGMAP = 'cordum-runbooks-drills';
export const LAST_DRILL_ANNOTATION = 'cordum-runbooks/last-restore-drill';

export interface DrillSizes {
  redis_keys: number;
  redis_bytes: number;
  jetstream_messages: number;
  jetstream_bytes: number;
  archive_bytes: number;
}

export interface DrillRecord {
  kind: 'restore-drill';
  target: string;
  started_at: string;
  finished_at: string;
  status: 'passed' | 'failed';
  rpo_ms: number | null;
  rto_ms: number | null;
  sizes: DrillSizes;
  /** One-line reason when failed. */
  error?: string;
}

export async function appendDrillRecord(record: DrillRecord, file = drillHistoryFile()): Promise<string> {
  const path = resolve(file);
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, JSON.stringify(record) + '\n');
  return path;
}

/** All records, oldest first; unparseable lines are skipped (a crash mid-append leaves half a line). */
export async function readDrillHistory(file = drillHistoryFile()): Promise<DrillRecord[]> {
  let text: string;
  try {
    text = await readFile(resolve(file), 'utf8');
  } catch {
    return [];
  }
  const out: DrillRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line) as DrillRecord;
      if (rec.kind === 'restore-drill') out.push(rec);
    } catch {
      /* partial line */
    }
  }
  return out;
}

export async function lastDrill(file = drillHistoryFile(), opts: { target?: string; passedOnly?: boolean } = {}): Promise<DrillRecord | undefined> {
  const all = await readDrillHistory(file);
  return all.filter((r) => (!opts.target || r.target === opts.target) && (!opts.passedOnly || r.status === 'passed')).at(-1);
}

/** The ConfigMap operations the cluster recorder needs (helpers/kube.ts provides them). */
export interface DrillConfigMapClient {
  /** Create the ConfigMap if missing, then merge the annotations in. */
  annotateConfigMap(namespace: string, name: string, annotations: Record<string, string>): Promise<void>;
}

/**
 * Stamp the drill on the cluster. last-restore-drill (RFC3339) moves only when a drill passes, since
 * the audit asks for a recent *passing* drill; the attempt time and status are always written.
 */
export async function recordDrillOnCluster(kube: DrillConfigMapClient, namespace: string, record: DrillRecord): Promise<void> {
  const at = new Date(record.finished_at).toISOString().replace(/\.\d{3}Z$/, 'Z');
  await kube.annotateConfigMap(namespace, DRILL_CONFIGMAP, {
    ...(record.status === 'passed' ? { [LAST_DRILL_ANNOTATION]: at } : {}),
    'cordum-runbooks/last-restore-drill-attempt': at,
    'cordum-runbooks/last-restore-drill-status': record.status,
  });
}

/**
 * DrillConfigMapClient over helpers/kube.ts: merge-patch the ConfigMap, and create it only when it is
 * missing. Patch first, because deploy/k8s ships the ConfigMap and its Role grants get/patch on that
 * one name only: RBAC refuses a create (403) before the API server would answer "already exists".
 */
export function kubeConfigMapClient(kube: Pick<Kube, 'core'>): DrillConfigMapClient {
  return {
    async annotateConfigMap(namespace, name, annotations) {
      try {
        await kube.core.patchNamespacedConfigMap({ name, namespace, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        return;
      } catch (err) {
        if (apiStatus(err) !== 404) throw kubeError(`annotate ConfigMap ${namespace}/${name}`, err);
      }
      try {
        await kube.core.createNamespacedConfigMap({
          namespace,
          body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'cordum-runbooks' }, annotations }, data: {} },
        });
      } catch (err) {
        throw kubeError(`create ConfigMap ${namespace}/${name} (it is missing; deploy/k8s/drill-record.yaml creates it)`, err);
      }
    },
  };
}
