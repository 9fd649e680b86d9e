// Live mode against real servers: a real kube-apiserver (test/support/kube/) holding the compliant
// namespace applied from the project's fixtures, with the status a healthy cluster's controllers would
// report written through the status subresource (namespace "cordum" emptied and filled again per
// variant; the CRDs are cluster-wide), a real redis-server (persistence on / off) and nats-server (streams file /
// memory), both TLS-only for clients with client certificates as production runs them, and a small HTTPS gateway
// (429 past the burst / never). Every live-only check is exercised both ways.
// One variant needs an object older than the test run, which a real server cannot hold (it stamps
// creationTimestamp itself): secrets.rotation runs on the fake API server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { freePort, startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { makeCertificates, type CertificateSet } from '../../sandbox/certs.js';
import { runAudit, collectLive, ALL_CHECKS, type AuditReport, type CollectOptions } from '../../helpers/readiness/index.js';
import { startFakeKube, type FakeObject } from '../support/fake-kube.js';
import { startKubeCluster, type KubeCluster } from '../support/kube/cluster.js';
import { applyLiveNamespace, installCrds, type LiveNamespace } from './live-kube.js';
import { liveNamespace, makeTlsSecrets, reportsWithRuns, startFakeGateway, type CertSet, type FakeGateway } from './live-support.js';
import { find } from './fixtures.js';

const KEY = 'a-strong-test-key';
const NS = 'cordum';
const now = new Date();
const thresholds = { minStreamReplicas: 1 }; // one local nats-server cannot hold R3 streams

let redisOn: ManagedServer;
let redisOff: ManagedServer;
let nats: ManagedServer;
let certs: CertSet;
/** Reports dir whose run history says every functional runbook passed on target NS yesterday. */
let reports: string;
const cleanups: (() => Promise<void> | void)[] = [];
/** Server and client certificates of the test servers (one CA). */
let pki: CertificateSet;
let redisOnTls: string;
let redisOffTls: string;
const clientTls = () => ({ ca_file: pki.ca, cert_file: pki.leaves.client.cert, key_file: pki.leaves.client.key });

async function createStreams(url: string, storage: StorageType): Promise<void> {
  const nc = await connect({ servers: url, tls: { caFile: pki.ca, certFile: pki.leaves.client.cert, keyFile: pki.leaves.client.key } });
  try {
    const jsm = await jetstreamManager(nc);
    for (const [name, subjects] of [['CORDUM_SYS', ['sys.>']], ['CORDUM_JOBS', ['job.>', 'worker.*.jobs']]] as const) {
      await jsm.streams.delete(name).catch(() => undefined);
      await jsm.streams.add({ name, subjects: [...subjects], storage, num_replicas: 1 });
    }
  } finally {
    await nc.close();
  }
}

let cluster: KubeCluster;

/** The objects, alone in namespace NS of the real API server (statuses included). */
function kube(objs: FakeObject[]): Promise<LiveNamespace> {
  return applyLiveNamespace(cluster, objs, NS);
}

async function gateway(opts: Parameters<typeof startFakeGateway>[0]): Promise<FakeGateway> {
  const g = await startFakeGateway({ tls: pki.leaves.server, ...opts });
  cleanups.push(() => g.stop());
  return g;
}

function opts(k: { kubeconfigPath: string; namespace: string }, g: FakeGateway, over: Partial<CollectOptions> = {}): CollectOptions {
  return { kube: { kubeconfig: k.kubeconfigPath, namespace: k.namespace }, redisUrl: redisOnTls, natsUrl: nats.url, gatewayUrl: g.url, apiKey: KEY, timeoutMs: 5000, historyFile: '/nonexistent/.drills.jsonl', reportsDir: reports, target: NS, tls: { gateway: { ca_file: pki.ca }, nats: clientTls(), redis: clientTls() }, ...over };
}

const statusOf = (r: AuditReport, id: string) => r.results.find((x) => x.id === id)!;
const LIVE_ONLY = ALL_CHECKS.filter((c) => c.modes.length === 1 && c.modes[0] === 'live').map((c) => c.id);

beforeAll(async () => {
  pki = makeCertificates([
    { name: 'server', cn: 'cordum-test', sans: ['localhost', '127.0.0.1'], eku: 'serverAuth,clientAuth' },
    { name: 'client', cn: 'cordum-runbooks', sans: [], eku: 'clientAuth' },
  ]);
  const [onPort, offPort] = await Promise.all([freePort(), freePort()]);
  const tls = (port: number) => ({ port, cert: pki.leaves.server.cert, key: pki.leaves.server.key, ca: pki.ca, authClients: true });
  [redisOn, redisOff, nats, cluster] = await Promise.all([startRedis({ persistence: true, tls: tls(onPort) }), startRedis({ persistence: false, tls: tls(offPort) }), startNats({ tls: { cert: pki.leaves.server.cert, key: pki.leaves.server.key, ca: pki.ca, verify: true } }), startKubeCluster()]);
  redisOnTls = `rediss://127.0.0.1:${onPort}`;
  redisOffTls = `rediss://127.0.0.1:${offPort}`;
  await installCrds(cluster);
  await createStreams(nats.url, StorageType.File);
  certs = makeTlsSecrets(NS);
  const r = await reportsWithRuns(NS, now);
  reports = r.dir;
  cleanups.push(r.cleanup);
}, 180_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  certs?.cleanup();
  await Promise.all([redisOn?.stop(), redisOff?.stop(), nats?.stop(), cluster?.stop()]);
  pki?.cleanup();
}, 60_000);

let compliantReport: AuditReport | undefined;
const report0 = () => compliantReport!;

describe('live audit of a compliant namespace', () => {
  let report: AuditReport;
  let k: LiveNamespace;
  let g: FakeGateway;

  beforeAll(async () => {
    k = await kube(liveNamespace(now, certs));
    g = await gateway({ key: KEY, limit: 100 });
    report = await runAudit({ mode: 'live', live: opts(k, g), now, thresholds });
    compliantReport = report;
  }, 90_000);

  it('passes every live check (static-only ones are not-checkable)', () => {
    const bad = report.results.filter((x) => !['pass', 'info', 'not-checkable'].includes(x.status));
    expect(bad.map((b) => `${b.id}: ${b.message}`)).toEqual([]);
    for (const id of LIVE_ONLY) expect(statusOf(report, id).status, `${id}: ${statusOf(report, id).message}`).toBe('pass');
    for (const id of ['kubernetes.renders', 'secrets.no-literal']) expect(statusOf(report, id).status).toBe('not-checkable');
    expect(report.exitCode).toBe(0);
    for (const id of ['observability.log-agent', 'observability.opentelemetry', 'upgrades.same-release', 'kubernetes.crds-installed', 'kubernetes.redis-cluster-init', 'functional.runbooks-passed']) expect(statusOf(report, id).status, `${id}: ${statusOf(report, id).message}`).toBe('pass');
    expect(statusOf(report, 'upgrades.staged-rollout').status).toBe('info');
  });

  it('reads the cluster through real REST list calls, including the Prometheus CRDs', () => {
    const calls = k.calls();
    const paths = new Set(calls.map((c) => `${c.verb} ${c.path}`));
    for (const p of ['/api/v1/namespaces/NS/pods', '/apis/apps/v1/namespaces/NS/statefulsets', '/apis/batch/v1/namespaces/NS/cronjobs', '/apis/monitoring.coreos.com/v1/namespaces/NS/servicemonitors']) {
      expect(paths.has(`list ${p.replace('NS', k.namespace)}`), p).toBe(true);
    }
    expect(calls.filter((c) => !['get', 'list'].includes(c.verb))).toEqual([]); // the audit never writes
  });

  it('stops the rate-limit probe at the first 429, within burst + extra', () => {
    const ev = statusOf(report, 'limits.rate-limit-live').evidence as { sent: number; first429At: number; burst: number; cap: number };
    expect(ev.burst).toBe(100); // from the gateway Deployment's API_RATE_LIMIT_BURST
    // The status probe before it spent one of the 100 tokens; refill during the burst may add a few.
    expect(ev.first429At).toBeGreaterThanOrEqual(100);
    expect(ev.first429At).toBeLessThanOrEqual(ev.cap);
    expect(ev.sent).toBeLessThanOrEqual(ev.cap);
    expect(ev.sent).toBeLessThan(101 + 64); // at most the in-flight requests after the first 429
  });

  it('parses the certificates (SANs, expiry, one CA)', () => {
    const ev = statusOf(report, 'tls.certificates').evidence as Record<string, any>;
    expect(ev.natsServer.sans).toContain('cordum-nats');
    expect(ev.natsServer.daysLeft).toBeGreaterThan(80);
    expect(ev.distinctCAs).toBe(1);
  });
});

// Each variant first puts its objects on the API server (kubectl: clear the namespace, apply, statuses).
describe('live-only checks fail on their variant', { timeout: 90_000 }, () => {
  const onlyFails = (r: AuditReport) => r.results.filter((x) => x.status === 'fail').map((x) => x.id);

  it('persistence.redis-live: redis-server --appendonly no --save ""', async () => {
    const k = await kube(liveNamespace(now, certs));
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts(k, g, { redisUrl: redisOffTls }), now, thresholds });
    expect(statusOf(r, 'persistence.redis-live').status).toBe('fail');
    expect(onlyFails(r)).toEqual(['persistence.redis-live']);
  });

  it('limits.rate-limit-live: a gateway that never answers 429', async () => {
    const k = await kube(liveNamespace(now, certs));
    const g = await gateway({ key: KEY, limit: null });
    // The namespace's gateway Deployment has 2 replicas, each with its own bucket (api.md §4), so
    // no 429 proves a missing limiter only past 2 x (burst + refill). A 1/s refill: 60 requests
    // outpace that however slow this machine is today, so the probe can judge (a slow link gets
    // "could not judge": rate-limit-probe.test.ts).
    const r = await runAudit({ mode: 'live', live: opts(k, g, { burst: 20, extraRequests: 40, rps: 1 }), now, thresholds });
    expect(statusOf(r, 'limits.rate-limit-live').status).toBe('fail');
    expect(statusOf(r, 'limits.rate-limit-live').message).toMatch(/per replica, x2 gateway replicas \(each has its own bucket\)/);
    expect(onlyFails(r)).toEqual(['limits.rate-limit-live']);
    expect(g.hits()).toBeLessThanOrEqual(2 + 60); // status + capped probe; the default-key probe is refused before counting
  });

  it('upgrades.build-version (warn) and enterprise.default-key-rejected (fail)', async () => {
    const k = await kube(liveNamespace(now, certs));
    const g = await gateway({ key: KEY, limit: 100, version: 'dev', acceptDefaultKey: true });
    const r = await runAudit({ mode: 'live', live: opts(k, g), now, thresholds });
    expect(statusOf(r, 'upgrades.build-version').status).toBe('warn');
    // 3.6 and 8.3 both ask that the default key be refused; the gateway proves it, not the Secret.
    expect(onlyFails(r).sort()).toEqual(['enterprise.default-key-rejected', 'secrets.managed']);
    expect(statusOf(r, 'secrets.managed').message).toMatch(/accepts the documented default key super-secret-key/);
  });

  it('tls.certificates: NATS cert without the cordum-nats SAN, and one expiring in 10 days', async () => {
    for (const override of [{ role: 'natsServer', sans: ['nats', `*.cordum-nats.${NS}.svc`] }, { role: 'client', days: 10 }]) {
      const bad = makeTlsSecrets(NS, override);
      try {
        const objs = liveNamespace(now, certs).filter((o) => !(o.kind === 'Secret' && o.metadata.name.endsWith('-tls')));
        const k = await kube([...objs, ...bad.secrets]);
        const r = await runAudit({ mode: 'live', live: opts(k, await gateway({ key: KEY, limit: 100 }), { skipRateLimit: true }), now, thresholds });
        expect(statusOf(r, 'tls.certificates').status, JSON.stringify(override)).toBe('fail');
        expect(statusOf(r, 'tls.certificates').message).toMatch(override.days ? /expires in \d+ days/ : /SAN cordum-nats missing/);
        expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual(['tls.certificates']);
      } finally {
        bad.cleanup();
      }
    }
  });

  it('secrets.managed (unmanaged / default key)', async () => {
    const objs = liveNamespace(now, certs);
    const key = find(objs as any, 'Secret', 'cordum-api-key');
    key.metadata.ownerReferences = [];
    const k = await kube(objs);
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'secrets.managed').message).toMatch(/not managed.*cordum-api-key/);
    expect(statusOf(r, 'secrets.rotation').status).toBe('pass'); // created just now by the real server
    expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual(['secrets.managed']);

    // The default key is judged through the gateway, never from the Secret's value.
    key.metadata.ownerReferences = [{ apiVersion: 'external-secrets.io/v1beta1', kind: 'ExternalSecret', name: 'x', uid: '6a1c2f0e-0000-4000-8000-000000000001' }];
    key.data = { API_KEY: Buffer.from('super-secret-key').toString('base64') };
    const k2 = await kube(objs);
    const r2 = await runAudit({ mode: 'live', live: opts(k2, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r2, 'secrets.managed').status).toBe('pass');
    const open = await gateway({ key: KEY, limit: 100, acceptDefaultKey: true });
    const r3 = await runAudit({ mode: 'live', live: opts(k2, open, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r3, 'secrets.managed').message).toMatch(/accepts the documented default key super-secret-key/);
  });

  it('secrets.rotation: an API key Secret created 200 days ago (fake API server: a real one stamps creationTimestamp itself)', async () => {
    const objs = liveNamespace(now, certs);
    find(objs as any, 'Secret', 'cordum-api-key').metadata.creationTimestamp = new Date(now.getTime() - 200 * 86_400_000).toISOString();
    const fake = await startFakeKube(objs, { namespace: NS, crds: ['monitoring.coreos.com'] });
    cleanups.push(() => fake.stop());
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts({ kubeconfigPath: fake.kubeconfigPath, namespace: NS }, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'secrets.rotation').status).toBe('warn');
    expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual([]);
  });

  it('backups.last-success and backups.restore-drill (annotation too old; history file rescues it)', async () => {
    const objs = liveNamespace(now, certs);
    find(objs as any, 'CronJob', 'cordum-redis-backup').status.lastSuccessfulTime = new Date(now.getTime() - 3 * 86_400_000).toISOString();
    find(objs as any, 'ConfigMap', 'cordum-runbooks-drills').metadata.annotations['cordum-runbooks/last-restore-drill'] = new Date(now.getTime() - 100 * 86_400_000).toISOString();
    const k = await kube(objs);
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'backups.last-success').status).toBe('fail');
    expect(statusOf(r, 'backups.restore-drill').message).toMatch(/100 days ago/);
    expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live').sort()).toEqual(['backups.last-success', 'backups.restore-drill']);

    const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-drills-'));
    try {
      const file = join(dir, '.drills.jsonl');
      writeFileSync(file, [JSON.stringify({ kind: 'restore-drill', target: NS, finished_at: new Date(now.getTime() - 5 * 86_400_000).toISOString(), status: 'passed' }), 'not json', ''].join('\n'));
      const r2 = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, historyFile: file }), now, thresholds });
      expect(statusOf(r2, 'backups.restore-drill').status).toBe('pass');
      expect((statusOf(r2, 'backups.restore-drill').evidence as any).historyError).toMatch(/line.*2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('persistence.streams-file-backed: memory streams; persistence.streams-replicated: R1 below the R3 threshold', async () => {
    const k = await kube(liveNamespace(now, certs));
    const g = await gateway({ key: KEY, limit: 100 });
    const r3 = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now });
    expect(statusOf(r3, 'persistence.streams-replicated').status).toBe('fail');
    expect(statusOf(r3, 'persistence.streams-replicated').message).toMatch(/below R3/);

    await createStreams(nats.url, StorageType.Memory);
    try {
      const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
      expect(statusOf(r, 'persistence.streams-file-backed').status).toBe('fail');
      expect(statusOf(r, 'persistence.streams-file-backed').message).toMatch(/CORDUM_SYS=memory/);
      expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual(['persistence.streams-file-backed']);
    } finally {
      await createStreams(nats.url, StorageType.File);
    }
  });

  it('functional.runbooks-passed: names the runbooks that never passed or are stale, with the command to run', async () => {
    const k = await kube(liveNamespace(now, certs));
    const g = await gateway({ key: KEY, limit: 100 });
    const h = await reportsWithRuns(NS, now, [
      { runbook: 'smoke' },
      { runbook: 'policy', daysAgo: 10 },
      { runbook: 'dlq-retry', status: 'failed' },
    ]);
    try {
      const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, reportsDir: h.dir }), now, thresholds });
      const o = statusOf(r, 'functional.runbooks-passed');
      expect(o.status).toBe('fail');
      expect(o.message).toMatch(/never passed on cordum: dlq-retry \(10\.2, last run failed\), audit-trail \(10\.4\)/);
      expect(o.message).toMatch(/stale .*policy \(10 days ago\)/);
      expect(o.remediation).toBe('pnpm runbook dlq-retry --target cordum; pnpm runbook audit-trail --target cordum; pnpm runbook policy --target cordum');
      expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual(['functional.runbooks-passed']);
      // A wider window (audit option) accepts the 10-day-old policy run; the never-passed ones still fail.
      const wide = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, reportsDir: h.dir }), now, thresholds: { ...thresholds, functionalMaxAgeDays: 14 } });
      expect(statusOf(wide, 'functional.runbooks-passed').message).not.toMatch(/policy/);
      // Another target's history is not this one's.
      const other = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, target: 'staging' }), now, thresholds });
      expect(statusOf(other, 'functional.runbooks-passed').message).toMatch(/never passed on staging: smoke .*dlq-retry.*policy.*audit-trail/);
    } finally {
      h.cleanup();
    }
  });

  it('kubernetes.crds-installed: the PrometheusRule CRD missing from the API server', async () => {
    // Cluster-wide: deleted for this test (the API server removes its objects first), installed again after.
    const crd = 'prometheusrules.monitoring.coreos.com';
    const del = await cluster.kubectl(['delete', 'crd', crd, '--wait=true', '--timeout=60s']);
    expect(del.code, del.stderr).toBe(0);
    try {
      const objs = liveNamespace(now, certs).filter((o) => o.kind !== 'PrometheusRule');
      const k = await kube(objs);
      const g = await gateway({ key: KEY, limit: 100 });
      const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
      const o = statusOf(r, 'kubernetes.crds-installed');
      expect(o.status).toBe('fail');
      expect(o.message).toMatch(/CRDs not installed: PrometheusRule \(monitoring\.coreos\.com/);
      // On a real server no PrometheusRule can exist without its CRD, so the alerting check fails with it.
      expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live').sort()).toEqual(['kubernetes.crds-installed', 'observability.alerts']);
      expect(k.calls().some((c) => c.verb === 'list' && c.path === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).toBe(true);
    } finally {
      await installCrds(cluster);
    }
  });

  it('kubernetes.redis-cluster-init: a failed init Job; CLUSTER INFO of a real cluster-mode redis wins', async () => {
    const objs = liveNamespace(now, certs);
    // What the Job controller writes when the backoff limit is hit (FailureTarget first, as a real API server insists).
    const at = new Date(now.getTime() - 3_600_000).toISOString();
    find(objs as any, 'Job', 'cordum-redis-cluster-init').status = {
      startTime: new Date(now.getTime() - 7_200_000).toISOString(),
      failed: 3,
      conditions: [
        { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: at },
        { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: at },
      ],
    };
    const k = await kube(objs);
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'kubernetes.redis-cluster-init').status).toBe('fail');
    expect(statusOf(r, 'kubernetes.redis-cluster-init').message).toMatch(/has not completed/);
    expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual(['kubernetes.redis-cluster-init']);

    const clustered = await startRedis({ persistence: true, extraArgs: ['--cluster-enabled', 'yes'] });
    cleanups.push(() => clustered.stop());
    const noSlots = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, redisUrl: clustered.url, tls: { gateway: { ca_file: pki.ca }, nats: clientTls() } }), now, thresholds });
    expect(statusOf(noSlots, 'kubernetes.redis-cluster-init').message).toMatch(/cluster_state fail/);
    // Assign every slot to the one node: the cluster is formed, whatever the Job says.
    const { Redis } = await import('ioredis');
    const c = new Redis(clustered.url);
    try {
      await c.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      for (let i = 0; i < 50 && !/cluster_state:ok/.test(String(await c.call('CLUSTER', 'INFO'))); i++) await new Promise((res) => setTimeout(res, 100));
    } finally {
      c.disconnect();
    }
    const ok = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true, redisUrl: clustered.url, tls: { gateway: { ca_file: pki.ca }, nats: clientTls() } }), now, thresholds });
    expect(statusOf(ok, 'kubernetes.redis-cluster-init').status).toBe('pass');
    expect(statusOf(ok, 'kubernetes.redis-cluster-init').message).toMatch(/cluster_state ok, 16384 slots/);
  });

  it('observability.log-agent: no DaemonSet in the namespace is a warn that points at other namespaces', async () => {
    const k = await kube(liveNamespace(now, certs).filter((o) => o.kind !== 'DaemonSet'));
    const g = await gateway({ key: KEY, limit: 100 });
    const r = await runAudit({ mode: 'live', live: opts(k, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'observability.log-agent').status).toBe('warn');
    expect(statusOf(r, 'observability.log-agent').message).toMatch(/namespace cordum.*another namespace/);
    expect(statusOf(report0(), 'observability.log-agent').status).toBe('pass');
    expect(onlyFails(r).filter((id) => id !== 'limits.rate-limit-live')).toEqual([]);
  });

  it('unreachable systems become not-checkable with the reason, never pass', async () => {
    const c = await collectLive({ kube: false, redisUrl: 'redis://127.0.0.1:1', natsUrl: 'nats://127.0.0.1:1', timeoutMs: 2000, historyFile: '/nonexistent' });
    const r = await runAudit({ mode: 'live', live: c.facts, now });
    expect(statusOf(r, 'persistence.redis-live').status).toBe('not-checkable');
    expect(statusOf(r, 'persistence.redis-live').message).toMatch(/Redis unreachable/);
    expect(statusOf(r, 'persistence.streams-file-backed').message).toMatch(/NATS unreachable/);
    expect(statusOf(r, 'tls.nats').status).toBe('not-checkable');
  });
});

describe('live from a compose-style profile (no Kubernetes)', () => {
  /** A profile-only collection: gateway (HTTPS), its metrics and health, NATS and Redis over TLS. */
  function compose(g: FakeGateway, over: Partial<CollectOptions> = {}): CollectOptions {
    return { kube: false, redisUrl: redisOnTls, natsUrl: nats.url, gatewayUrl: g.url, apiKey: KEY, timeoutMs: 5000, historyFile: '/nonexistent', skipRateLimit: true, metricsUrls: { gateway: `${g.url}/metrics`, scheduler: `${g.url}/metrics` }, workflowHealthUrl: `${g.url}/health`, tls: { gateway: { ca_file: pki.ca }, nats: clientTls(), redis: clientTls() }, ...over };
  }
  const sectionIds = ['tls.endpoints', 'secrets.managed', 'observability.gateway-scrape', 'observability.scheduler-scrape', 'observability.workflow-health', 'persistence.retention-live'];

  it('Observability, TLS and Secrets are judged from the profile, and pass on a healthy target', async () => {
    const g = await gateway({ key: KEY, limit: null });
    const r = await runAudit({ mode: 'live', live: compose(g), now, thresholds });
    for (const id of sectionIds) expect(statusOf(r, id).status, `${id}: ${statusOf(r, id).message}`).toBe('pass');
    expect(statusOf(r, 'tls.endpoints').message).toMatch(/gateway \(\d+ days left\), NATS \(\d+ days left\), Redis \(\d+ days left\)/);
    const ev = statusOf(r, 'tls.endpoints').evidence as Record<string, any>;
    expect(ev.redis).toMatchObject({ tls: true, authorized: true, hostCovered: true, plaintextRefused: true, clientCertRequired: true });
    expect(ev.nats).toMatchObject({ tls: true, authorized: true, plaintextRefused: true, clientCertRequired: true });
    expect(statusOf(r, 'observability.gateway-scrape').message).toMatch(/cordum_api_gateway_http_requests_total/);
  });

  it('each fails on its matching fault: plaintext Redis, an expiring certificate, no metrics, the default key accepted', async () => {
    const g = await gateway({ key: KEY, limit: null });
    const plain = await runAudit({ mode: 'live', live: compose(g, { redisUrl: redisOn.url }), now, thresholds });
    expect(statusOf(plain, 'tls.endpoints').status).toBe('fail');
    expect(statusOf(plain, 'tls.endpoints').message).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+ is plaintext \(redis:\/\/\) and answers a plaintext PING/);

    const soon = makeCertificates([{ name: 'server', cn: 'x', sans: ['127.0.0.1'], eku: 'serverAuth', days: 5 }]);
    try {
      const g2 = await gateway({ key: KEY, limit: null, tls: soon.leaves.server });
      const r = await runAudit({ mode: 'live', live: compose(g2, { tls: { gateway: { ca_file: soon.ca }, nats: clientTls(), redis: clientTls() } }), now, thresholds });
      expect(statusOf(r, 'tls.endpoints').message).toMatch(/gateway https:\/\/127\.0\.0\.1:\d+: certificate expires in [45] day\(s\)/);
      // A CA the profile does not trust is a broken chain.
      const r2 = await runAudit({ mode: 'live', live: compose(g2), now, thresholds });
      expect(statusOf(r2, 'tls.endpoints').message).toMatch(/gateway https:.*certificate chain not trusted/);
    } finally {
      soon.cleanup();
    }

    const noMetrics = await gateway({ key: KEY, limit: null, metrics: false });
    const m = await runAudit({ mode: 'live', live: compose(noMetrics), now, thresholds });
    expect(statusOf(m, 'observability.gateway-scrape')).toMatchObject({ status: 'fail', message: expect.stringMatching(/api-gateway \/metrics answered 404/) });

    const open = await gateway({ key: KEY, limit: null, acceptDefaultKey: true });
    const d = await runAudit({ mode: 'live', live: compose(open), now, thresholds });
    expect(statusOf(d, 'secrets.managed').message).toMatch(/accepts the documented default key/);
  });

  it('retention: families that should expire warn with their count and size; families Cordum keeps forever are reported, not warned', async () => {
    const { Redis } = await import('ioredis');
    const c = new Redis(redisOn.url);
    try {
      await c.flushall();
      for (let i = 0; i < 30; i++) {
        await c.set(`ctx:job-${i}`, 'x'.repeat(100), 'EX', 86_400);
        await c.rpush(`job:events:job-${i}`, 'PENDING', 'SUCCEEDED'); // no TTL: Cordum's own behaviour
        await c.sadd(`trace:t-${i}`, `job-${i}`);
      }
      const g = await gateway({ key: KEY, limit: null });
      const healthy = await runAudit({ mode: 'live', live: compose(g), now, thresholds });
      const h = statusOf(healthy, 'persistence.retention-live');
      expect(h.status).toBe('pass');
      expect(h.message).toMatch(/job events and result pointers: 30 key\(s\) without TTL .*kept by Cordum's design/);
      expect(h.message).toMatch(/traces: 30 key\(s\) without TTL/);

      for (let i = 0; i < 12; i++) await c.hset(`job:meta:leak-${i}`, 'state', 'SUCCEEDED'); // no TTL: should expire
      await c.set('lock:stuck', '{"mode":"exclusive"}');
      const leaking = await runAudit({ mode: 'live', live: compose(g), now, thresholds });
      const o = statusOf(leaking, 'persistence.retention-live');
      expect(o.status).toBe('warn');
      expect(o.message).toMatch(/job metadata: 12 key\(s\) without TTL \(12 of 12 sampled, ~[\d.]+ MiB\); they should expire \(JOB_META_TTL \(168h\)\)/);
      expect(o.message).toMatch(/locks: 1 key\(s\) without TTL/);
      expect(o.message).not.toMatch(/context:/);
    } finally {
      await c.flushall();
      c.disconnect();
    }
  });
});

describe('least privilege: the readiness Role cannot list Secrets', () => {
  it('with the Role from deploy/k8s and its ServiceAccount token: reads only the named TLS Secrets, and still parses their certificates', async () => {
    await kube(liveNamespace(now, certs));
    // The real RBAC authorizer answers the audit's Secret list with 403, as it would in the cluster.
    const { readFileSync } = await import('node:fs');
    await cluster.apply(['serviceaccounts.yaml', 'rbac-readiness.yaml'].map((f) => readFileSync(join(import.meta.dirname, '../../deploy/k8s', f), 'utf8')).join('\n---\n'), { namespace: NS });
    const token = await cluster.serviceAccountToken(NS, 'cordum-runbooks-readiness');
    const asAudit = { kubeconfigPath: cluster.kubeconfigForToken(token, NS), namespace: NS };
    const g = await gateway({ key: KEY, limit: 100 });
    const before = cluster.auditEvents().length;
    const r = await runAudit({ mode: 'live', live: opts(asAudit, g, { skipRateLimit: true }), now, thresholds });
    expect(statusOf(r, 'tls.certificates').status, statusOf(r, 'tls.certificates').message).toBe('pass');
    expect(statusOf(r, 'tls.secrets-referenced').status).toBe('pass');
    const secretCalls = cluster
      .auditEvents()
      .slice(before)
      .filter((e) => e.user.username === `system:serviceaccount:${NS}:cordum-runbooks-readiness` && /\/secrets(\/|\?|$)/.test(e.requestURI))
      .map((e) => `${e.verb} ${e.requestURI.split('?')[0]!.replace(/^.*\/secrets/, '/secrets')}`);
    expect(secretCalls).toEqual(expect.arrayContaining(['list /secrets', 'get /secrets/cordum-nats-server-tls', 'get /secrets/cordum-client-tls']));
    expect(secretCalls).not.toContain('get /secrets/cordum-api-key');
    // Applying the namespace, issuing a token and a live audit against a real API server: minutes under load.
  }, 180_000);
});
