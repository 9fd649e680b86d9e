// Loads the compliant fixture namespace and derives variants from it: one mutation per check id,
// plus a Helm-label-scheme rewrite, so the tests never maintain copies of near-identical YAML.
import { resolve } from 'node:path';
import { loadManifestDir } from '../../helpers/readiness/manifests.js';
import type { KubeObject } from '../../helpers/readiness/objects.js';

export const COMPLIANT_DIR = resolve(import.meta.dirname, '../fixtures/readiness/compliant');
/** Fixed clock: the drill annotation in the fixtures (2026-01-10) is 50 days old. */
export const NOW = new Date('2026-03-01T00:00:00Z');

export function compliant(): KubeObject[] {
  const m = loadManifestDir(COMPLIANT_DIR);
  if (m.errors.length) throw new Error(m.errors.join('\n'));
  return m.objects;
}

export function find(objs: KubeObject[], kind: string, name: string): any {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`fixture has no ${kind}/${name}`);
  return o;
}

export function container(objs: KubeObject[], kind: string, name: string): any {
  const o = find(objs, kind, name);
  const spec = kind === 'CronJob' ? o.spec.jobTemplate.spec.template.spec : o.spec.template.spec;
  return spec.containers[0];
}

export function setEnv(objs: KubeObject[], deployment: string, name: string, value: string | undefined): void {
  const c = container(objs, 'Deployment', deployment);
  c.env = c.env.filter((e: { name: string }) => e.name !== name);
  if (value !== undefined) c.env.push({ name, value });
}

export function remove(objs: KubeObject[], kind: string, name: string): void {
  const i = objs.findIndex((x) => x.kind === kind && x.metadata.name === name);
  if (i < 0) throw new Error(`fixture has no ${kind}/${name}`);
  objs.splice(i, 1);
}

function configData(objs: KubeObject[], cm: string, key: string, edit: (s: string) => string): void {
  const o = find(objs, 'ConfigMap', cm);
  const before = o.data[key];
  o.data[key] = edit(before);
  if (o.data[key] === before) throw new Error(`mutation did not change ${cm}/${key}`);
}

export interface Variant {
  id: string;
  expect: 'fail' | 'warn';
  why: string;
  mutate(objs: KubeObject[]): void;
}

/** One variant per static-capable check (live-only checks are varied in the live tests). */
export const STATIC_VARIANTS: Variant[] = [
  { id: 'persistence.jetstream-pvc', expect: 'fail', why: 'store_dir outside the PVC mount', mutate: (o) => configData(o, 'cordum-nats-config', 'nats.conf', (s) => s.replace('store_dir: /data/jetstream', 'store_dir: /tmp/jetstream')) },
  { id: 'persistence.nats-cluster', expect: 'fail', why: 'routes list one pod short', mutate: (o) => configData(o, 'cordum-nats-config', 'nats.conf', (s) => s.replace(/\n\s*nats:\/\/cordum-nats-2[^\n]*/, '')) },
  { id: 'persistence.jetstream-replicas-env', expect: 'fail', why: 'scheduler creates R1 streams', mutate: (o) => setEnv(o, 'cordum-scheduler', 'NATS_JS_REPLICAS', '1') },
  { id: 'persistence.redis-config', expect: 'fail', why: 'AOF and RDB off', mutate: (o) => configData(o, 'cordum-redis-config', 'redis.conf', (s) => s.replace('appendonly yes', 'appendonly no\nsave ""')) },
  { id: 'persistence.redis-ha', expect: 'fail', why: 'TLS-only cluster without tls-replication', mutate: (o) => configData(o, 'cordum-redis-config', 'redis.conf', (s) => s.replace('tls-replication yes\n', '')) },
  {
    id: 'ha.gateway',
    expect: 'fail',
    why: 'one replica, HPA min 1',
    mutate: (o) => {
      find(o, 'Deployment', 'cordum-api-gateway').spec.replicas = 1;
      find(o, 'HorizontalPodAutoscaler', 'cordum-api-gateway').spec.minReplicas = 1;
    },
  },
  {
    id: 'ha.scheduler-single',
    expect: 'fail',
    why: 'two schedulers (with a PDB, so only this check objects)',
    mutate: (o) => {
      find(o, 'Deployment', 'cordum-scheduler').spec.replicas = 2;
      o.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'cordum-scheduler', namespace: 'cordum' }, spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'cordum-scheduler' } } } });
    },
  },
  {
    id: 'ha.workflow-engine',
    expect: 'warn',
    why: 'two engines',
    mutate: (o) => {
      find(o, 'Deployment', 'cordum-workflow-engine').spec.replicas = 2;
      o.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'cordum-workflow-engine', namespace: 'cordum' }, spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'cordum-workflow-engine' } } } });
    },
  },
  { id: 'ha.safety-kernel', expect: 'fail', why: 'kernel scaled to 0', mutate: (o) => void (find(o, 'Deployment', 'cordum-safety-kernel').spec.replicas = 0) },
  { id: 'tls.ingress', expect: 'fail', why: 'a host without TLS', mutate: (o) => find(o, 'Ingress', 'cordum').spec.rules.push({ host: 'api.prod.acme.io', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'cordum-api-gateway', port: { number: 8081 } } } }] } }) },
  { id: 'tls.nats', expect: 'fail', why: 'scheduler dials plain nats://', mutate: (o) => setEnv(o, 'cordum-scheduler', 'NATS_URL', 'nats://nats:4222') },
  { id: 'tls.redis', expect: 'fail', why: 'context engine dials plain redis://', mutate: (o) => setEnv(o, 'cordum-context-engine', 'REDIS_URL', 'redis://redis:6379') },
  { id: 'tls.secrets-referenced', expect: 'fail', why: 'NATS mounts a differently named secret', mutate: (o) => void (find(o, 'StatefulSet', 'cordum-nats').spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName = 'nats-certs') },
  { id: 'netpol.default-deny', expect: 'warn', why: 'no default deny', mutate: (o) => remove(o, 'NetworkPolicy', 'default-deny-ingress') },
  {
    id: 'netpol.backends-protected',
    expect: 'fail',
    why: 'context engine selected by no policy',
    mutate: (o) => {
      remove(o, 'NetworkPolicy', 'default-deny-ingress');
      remove(o, 'NetworkPolicy', 'allow-context-engine');
    },
  },
  { id: 'netpol.required-flows', expect: 'fail', why: 'scheduler → NATS not allowed', mutate: (o) => void (find(o, 'NetworkPolicy', 'allow-nats-clients').spec.ingress[0].from.splice(1, 1)) },
  { id: 'secrets.no-literal', expect: 'fail', why: 'a literal Secret', mutate: (o) => o.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cordum-api-key', namespace: 'cordum' }, stringData: { API_KEY: 'not-in-git-please' } }) },
  {
    id: 'secrets.env-refs',
    expect: 'fail',
    why: 'API key as a literal env value',
    mutate: (o) => {
      setEnv(o, 'cordum-api-gateway', 'API_KEY', 'hunter2');
    },
  },
  { id: 'observability.gateway-scrape', expect: 'fail', why: 'no ServiceMonitor', mutate: (o) => remove(o, 'ServiceMonitor', 'cordum-api-gateway') },
  { id: 'observability.scheduler-scrape', expect: 'fail', why: 'Service port not named metrics', mutate: (o) => void (find(o, 'Service', 'cordum-scheduler').spec.ports[0].name = 'http-metrics') },
  { id: 'observability.workflow-health', expect: 'warn', why: 'no blackbox Probe', mutate: (o) => remove(o, 'Probe', 'cordum-workflow-engine') },
  { id: 'observability.monitor-targets', expect: 'fail', why: 'blackbox Probe of the workflow engine on /metrics', mutate: (o) => void (find(o, 'Probe', 'cordum-workflow-engine').spec.targets.staticConfig.static = ['http://cordum-workflow-engine.cordum.svc:9093/metrics']) },
  { id: 'observability.alerts', expect: 'fail', why: 'no PrometheusRule', mutate: (o) => remove(o, 'PrometheusRule', 'cordum') },
  { id: 'observability.log-agent', expect: 'warn', why: 'no log-agent DaemonSet', mutate: (o) => remove(o, 'DaemonSet', 'cordum-log-agent') },
  { id: 'limits.timeouts', expect: 'warn', why: 'routed topic without timeout', mutate: (o) => configData(o, 'cordum-timeouts', 'timeouts.yaml', (s) => s.replace(/  job\.batch:\n    timeout_seconds: 3600\n    max_retries: 2\n/, '')) },
  { id: 'limits.policy-budgets', expect: 'warn', why: 'allow rule without budgets', mutate: (o) => configData(o, 'cordum-safety', 'safety.yaml', (s) => s.replace(/    constraints:\n(      .*\n|        .*\n)+/, '')) },
  {
    id: 'limits.rate-limit-config',
    expect: 'warn',
    why: 'rate limit unset',
    mutate: (o) => {
      setEnv(o, 'cordum-api-gateway', 'API_RATE_LIMIT_RPS', undefined);
      setEnv(o, 'cordum-api-gateway', 'API_RATE_LIMIT_BURST', undefined);
    },
  },
  {
    id: 'backups.redis-cronjob',
    expect: 'fail',
    why: 'one fixed host dumped',
    mutate: (o) => {
      const c = container(o, 'CronJob', 'cordum-redis-backup');
      c.args = [c.args[0].replace(/for M in[\s\S]*?done\n/, 'redis-cli $TLS -h cordum-redis-0.cordum-redis.cordum.svc -p 6379 --rdb /backup/redis-$TS.rdb\n')];
    },
  },
  { id: 'backups.jetstream-cronjob', expect: 'fail', why: 'only CORDUM_JOBS', mutate: (o) => void (container(o, 'CronJob', 'cordum-jetstream-backup').args[0] = container(o, 'CronJob', 'cordum-jetstream-backup').args[0].replace('CORDUM_SYS CORDUM_JOBS', 'CORDUM_JOBS')) },
  {
    id: 'backups.storage',
    expect: 'fail',
    why: 'JetStream backup written to an emptyDir',
    mutate: (o) => {
      const spec = find(o, 'CronJob', 'cordum-jetstream-backup').spec.jobTemplate.spec.template.spec;
      spec.volumes = spec.volumes.map((v: any) => (v.name === 'backup' ? { name: 'backup', emptyDir: {} } : v));
    },
  },
  { id: 'backups.off-cluster', expect: 'warn', why: 'no off-cluster copy', mutate: (o) => void (container(o, 'CronJob', 'cordum-jetstream-backup').args[0] = container(o, 'CronJob', 'cordum-jetstream-backup').args[0].replace(/rclone[^\n]*\n/, '')) },
  { id: 'upgrades.pinned-images', expect: 'fail', why: 'latest tag', mutate: (o) => void (container(o, 'Deployment', 'cordum-api-gateway').image = 'cordum/control-plane:latest-api-gateway') },
  { id: 'upgrades.same-release', expect: 'warn', why: 'scheduler one release behind', mutate: (o) => void (container(o, 'Deployment', 'cordum-scheduler').image = 'cordum/control-plane:v1.4.1-scheduler') },
  { id: 'enterprise.license-required', expect: 'fail', why: 'enterprise gateway without license gating', mutate: (o) => void (container(o, 'Deployment', 'cordum-api-gateway').image = 'registry.acme.io/cordum-enterprise/gateway:v1.4.2') },
  {
    id: 'enterprise.separate-registries',
    expect: 'fail',
    why: 'enterprise image on the public registry',
    mutate: (o) => {
      container(o, 'Deployment', 'cordum-api-gateway').image = 'cordum/control-plane-enterprise:v1.4.2-api-gateway';
      setEnv(o, 'cordum-api-gateway', 'CORDUM_LICENSE_REQUIRED', 'true');
    },
  },
  { id: 'kubernetes.resources', expect: 'fail', why: 'container without resources', mutate: (o) => void delete container(o, 'Deployment', 'cordum-context-engine').resources },
  { id: 'kubernetes.pdb', expect: 'fail', why: 'NATS without PDB', mutate: (o) => remove(o, 'PodDisruptionBudget', 'cordum-nats') },
  { id: 'kubernetes.security-context', expect: 'fail', why: 'scheduler as root', mutate: (o) => void (find(o, 'Deployment', 'cordum-scheduler').spec.template.spec.securityContext = { runAsUser: 0 }) },
  { id: 'kubernetes.security-context-infra', expect: 'warn', why: 'NATS container without securityContext', mutate: (o) => void delete container(o, 'StatefulSet', 'cordum-nats').securityContext },
  { id: 'kubernetes.probes', expect: 'fail', why: 'no liveness probe', mutate: (o) => void delete container(o, 'Deployment', 'cordum-context-engine').livenessProbe },
  { id: 'kubernetes.stateful-stores', expect: 'fail', why: 'NATS as a Deployment', mutate: (o) => void (find(o, 'StatefulSet', 'cordum-nats').kind = 'Deployment') },
  {
    id: 'kubernetes.redis-cluster-addresses',
    expect: 'fail',
    why: 'one client lists 5 of 6 pods',
    mutate: (o) => {
      const c = container(o, 'Deployment', 'cordum-workflow-engine');
      const e = c.env.find((x: { name: string }) => x.name === 'REDIS_CLUSTER_ADDRESSES');
      e.value = e.value.split(',').slice(0, 5).join(',');
    },
  },
  { id: 'kubernetes.crds-installed', expect: 'warn', why: 'PrometheusRule used without its CRD', mutate: (o) => remove(o, 'CustomResourceDefinition', 'prometheusrules.monitoring.coreos.com') },
  { id: 'kubernetes.redis-cluster-init', expect: 'fail', why: 'Redis Cluster without the cluster-init Job', mutate: (o) => remove(o, 'Job', 'cordum-redis-cluster-init') },
];

/**
 * Rewrite the kustomize-style set into the Helm chart's scheme: objects named
 * `<release>-cordum-<component>` and `app.kubernetes.io/{name,instance,component}` labels
 * instead of `app:`.
 */
export function toHelmScheme(objs: KubeObject[], release = 'prod'): KubeObject[] {
  let text = JSON.stringify(objs);
  for (const c of ['api-gateway', 'scheduler', 'workflow-engine', 'safety-kernel', 'context-engine', 'nats', 'redis']) text = text.replace(new RegExp(`(?<![\\w-])cordum-${c}`, 'g'), `${release}-cordum-${c}`);
  const out = JSON.parse(text) as KubeObject[];
  const comp = (v: string) => v.replace(new RegExp(`^${release}-cordum-`), '');
  const relabel = (m: Record<string, string> | undefined) => {
    if (!m || typeof m.app !== 'string') return;
    const v = m.app;
    delete m.app;
    m['app.kubernetes.io/name'] = 'cordum';
    m['app.kubernetes.io/instance'] = release;
    m['app.kubernetes.io/component'] = comp(v);
  };
  const walk = (x: any): void => {
    if (!x || typeof x !== 'object') return;
    if (Array.isArray(x)) return x.forEach(walk);
    for (const [k, v] of Object.entries(x)) {
      if ((k === 'labels' || k === 'matchLabels' || k === 'selector') && v && typeof v === 'object' && !Array.isArray(v)) relabel(v as Record<string, string>);
      if (k === 'matchExpressions' && Array.isArray(v))
        for (const e of v as { key: string; values?: string[] }[])
          if (e.key === 'app') {
            e.key = 'app.kubernetes.io/component';
            e.values = (e.values ?? []).map(comp);
          }
      walk(v);
    }
  };
  walk(out);
  return out;
}
