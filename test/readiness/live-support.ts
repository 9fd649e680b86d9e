// Live-mode test scaffolding: certificates made with openssl, a tiny gateway stand-in with a
// token-bucket-like limit, and the compliant namespace dressed with the status a healthy cluster
// would report (Bound PVCs, recent backups, an active HPA, parsed-able TLS Secrets).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeObject } from '../support/fake-kube.js';
import { appendRunHistory } from '../../helpers/history.js';
import { makeCertificates } from '../../sandbox/certs.js';
import { compliant, find } from './fixtures.js';

export interface CertSet {
  secrets: FakeObject[];
  cleanup(): void;
}

/** One CA and the four production Secrets; `override` tweaks one certificate (SANs, days, EKU). */
export function makeTlsSecrets(ns: string, override: { role?: string; sans?: string[]; days?: number; eku?: string } = {}): CertSet {
  const specs: { role: string; secret: string; cn: string; sans: string[]; eku: string }[] = [
    { role: 'natsServer', secret: 'cordum-nats-server-tls', cn: 'nats', sans: ['nats', 'cordum-nats', `*.cordum-nats.${ns}.svc`], eku: 'serverAuth,clientAuth' },
    { role: 'redisServer', secret: 'cordum-redis-server-tls', cn: 'redis', sans: ['redis', `*.cordum-redis.${ns}.svc`], eku: 'serverAuth,clientAuth' },
    { role: 'client', secret: 'cordum-client-tls', cn: 'cordum-client', sans: ['cordum-client'], eku: 'clientAuth' },
    { role: 'ingress', secret: 'cordum-ingress-tls', cn: 'cordum.prod.acme.io', sans: ['cordum.prod.acme.io'], eku: 'serverAuth' },
  ];
  const set = makeCertificates(
    specs.map((x) => {
      const o = override.role === x.role ? override : {};
      return { name: x.role, cn: x.cn, sans: o.sans ?? x.sans, eku: o.eku ?? x.eku, days: o.days ?? 90 };
    }),
  );
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const secrets: FakeObject[] = specs.map((x) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: x.secret, namespace: ns, annotations: { 'cert-manager.io/certificate-name': x.secret.replace(/-tls$/, '') } },
    data: { 'tls.crt': b64(set.leaves[x.role].cert), 'tls.key': b64(set.leaves[x.role].key), 'ca.crt': b64(set.ca) },
  }));
  return { secrets, cleanup: set.cleanup };
}

/** The compliant namespace as a live API would return it, with healthy status fields. */
export function liveNamespace(now: Date, certs: CertSet): FakeObject[] {
  const objs = compliant() as FakeObject[];
  const ns = 'cordum';
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000).toISOString();
  for (const c of ['cordum-redis-backup', 'cordum-jetstream-backup']) find(objs, 'CronJob', c).status = { lastScheduleTime: hoursAgo(3), lastSuccessfulTime: hoursAgo(3) };
  // What the Job controller writes on success (a real API server insists on startTime and SuccessCriteriaMet).
  find(objs, 'Job', 'cordum-redis-cluster-init').status = {
    startTime: hoursAgo(24 * 30 + 1),
    completionTime: hoursAgo(24 * 30),
    succeeded: 1,
    conditions: [
      { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', lastTransitionTime: hoursAgo(24 * 30) },
      { type: 'Complete', status: 'True', reason: 'CompletionsReached', lastTransitionTime: hoursAgo(24 * 30) },
    ],
  };
  // What the disruption controller reports with every pod healthy: one voluntary disruption allowed.
  for (const pdb of objs.filter((o) => o.kind === 'PodDisruptionBudget')) pdb.status = { disruptionsAllowed: 1, currentHealthy: 3, desiredHealthy: 2, expectedPods: 3 };
  find(objs, 'HorizontalPodAutoscaler', 'cordum-api-gateway').status = { currentReplicas: 2, desiredReplicas: 2, conditions: [{ type: 'ScalingActive', status: 'True', reason: 'ValidMetricFound' }] };
  find(objs, 'ConfigMap', 'cordum-runbooks-drills').metadata.annotations['cordum-runbooks/last-restore-drill'] = hoursAgo(24 * 10);
  for (const sts of ['cordum-nats', 'cordum-redis']) {
    const n = find(objs, 'StatefulSet', sts).spec.replicas;
    for (let i = 0; i < n; i++) objs.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `data-${sts}-${i}`, namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } }, status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: '10Gi' } } });
  }
  objs.push(...certs.secrets);
  objs.push({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'cordum-api-key', namespace: ns, creationTimestamp: hoursAgo(24 * 20), ownerReferences: [{ apiVersion: 'external-secrets.io/v1beta1', kind: 'ExternalSecret', name: 'cordum-api-key', uid: 'x' }] }, data: { API_KEY: Buffer.from('a-strong-test-key').toString('base64') } });
  objs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, namespace: ns, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
  // The audit does not list Certificate/ExternalSecret objects (their CRDs stay installed: the fake
  // serves the CustomResourceDefinitions of the fixture at the cluster-scoped path).
  return objs.filter((o) => !['Certificate', 'ExternalSecret'].includes(o.kind));
}

/** The functional runbooks of checklist §10. */
export const FUNCTIONAL = ['smoke', 'dlq-retry', 'policy', 'audit-trail'] as const;

/**
 * A reports dir whose run history (helpers/history.ts) records `runs` for `target`, each
 * `{runbook, status, daysAgo}`; default: every functional runbook passed a day ago.
 */
export async function reportsWithRuns(target: string, now: Date, runs: { runbook: string; status?: string; daysAgo?: number }[] = FUNCTIONAL.map((runbook) => ({ runbook }))): Promise<{ dir: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-reports-'));
  for (const r of runs) {
    const end = new Date(now.getTime() - (r.daysAgo ?? 1) * 86_400_000).toISOString();
    await appendRunHistory(dir, { runbook: r.runbook, target, status: r.status ?? 'passed', start: end, end, duration_ms: 1000, steps: [] });
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface FakeGateway {
  url: string;
  hits(): number;
  stop(): Promise<void>;
}

/**
 * Answers /api/v1/status: 401 for a wrong key, 429 once `limit` requests were served (never when
 * null). With `tls` it serves HTTPS with that certificate.
 */
export async function startFakeGateway(opts: { key: string; limit: number | null; version?: string; acceptDefaultKey?: boolean; tls?: { cert: string; key: string }; metrics?: boolean }): Promise<FakeGateway> {
  let served = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    // Stand-ins for the metrics listener and the workflow engine's /health (compose-style profiles).
    if (req.url === '/metrics' && opts.metrics !== false) return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`# TYPE go_goroutines gauge\ngo_goroutines 12\n# TYPE cordum_api_gateway_http_requests_total counter\ncordum_api_gateway_http_requests_total{method="GET",route="/api/v1/status",status="200"} ${served}\n`);
    if (req.url === '/health') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (req.url !== '/api/v1/status') return void res.writeHead(404).end();
    const key = req.headers['x-api-key'];
    if (key !== opts.key && !(opts.acceptDefaultKey && key === 'super-secret-key')) return void res.writeHead(401).end('unauthorized');
    served++;
    if (opts.limit !== null && served > opts.limit) return void res.writeHead(429, { 'content-type': 'text/plain' }).end('rate limited');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ nats: { connected: true }, redis: { ok: true }, build: { version: opts.version ?? 'v1.4.2' } }));
  };
  const server: Server = opts.tls ? createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, handler) : createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`,
    hits: () => served,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
