// Checklist §4: metrics scraped (ServiceMonitor selecting the Service's own labels by port name,
// or Prometheus annotations), workflow-engine health monitored, alert rules present and robust.
import { defineCheck, fail, fromFindings, info, notCheckable, pass, warn, type Check, type CheckContext, type Finding, type PartialResult } from '../model.js';
import { containersOf, CORDUM_SERVICES, selectorMatches, type Component, type Workload } from '../objects.js';
import { containerPortOf, isResult, needObjects, pathServed, primary, ref, servedPaths } from './util.js';
import { locate } from '../source.js';
import { requiredByLabelSelector } from '../label-index.js';
import type { KubeObject, ObjectIndex } from '../objects.js';

/** Families each endpoint exports once it has done any work (deploy facts §2). */
const CORDUM_FAMILIES: Record<'api-gateway' | 'scheduler', string> = { 'api-gateway': 'cordum_api_gateway_', scheduler: 'cordum_scheduler_' };

/**
 * Live, from the profile's metrics URL alone (no Kubernetes objects to read): the endpoint answers
 * 200 with Prometheus series and, for the gateway, its cordum_api_gateway_* families (the audit's
 * own requests were counted). The scheduler's cordum_scheduler_* vectors appear only after its
 * first job, so their absence is reported, never failed.
 */
function scrapeFromEndpoint(ctx: CheckContext, component: 'api-gateway' | 'scheduler'): PartialResult {
  const probe = ctx.live?.metrics?.[component === 'api-gateway' ? 'gateway' : 'scheduler'];
  const why = `no Kubernetes objects (${ctx.objectsUnavailable ?? 'none read'})`;
  if (!probe) return notCheckable(`${why}, and the profile names no ${component === 'api-gateway' ? 'metrics.gateway' : 'metrics.scheduler'} URL`);
  if (!probe.ok) return fail(`${component} metrics endpoint unreachable: ${probe.reason}`, { probe: probe.reason });
  const v = probe.value;
  const families = v.cordumFamilies.filter((f) => f.startsWith(CORDUM_FAMILIES[component]));
  const evidence = { ...v, scope: `${why}: judged from the metrics endpoint` };
  if (v.status !== 200) return fail(`${component} /metrics answered ${v.status}: Prometheus cannot scrape it`, evidence);
  if (!v.hasGoSeries) return fail(`${component} /metrics answered 200 without Prometheus series`, evidence);
  if (component === 'api-gateway' && !families.length) return fail('gateway /metrics has no cordum_api_gateway_* series although the audit\'s own API calls should have been counted', evidence);
  if (!families.length) return pass(`scheduler /metrics answers with Prometheus series (no cordum_scheduler_* yet: they appear after the first job)`, evidence);
  return pass(`${component} /metrics answers with ${families.join(', ')}`, evidence);
}

function scrapeCheck(ctx: CheckContext, component: 'api-gateway' | 'scheduler', port: number): PartialResult {
  if (ctx.mode === 'live' && !ctx.objects) return scrapeFromEndpoint(ctx, component);
  const idx = needObjects(ctx);
  if (isResult(idx)) return idx;
  const w = primary(idx, component);
  if (!w) return fail(`no ${component} workload found`);
  const svcs = idx.servicesFronting(w);
  const withPort = svcs.filter((s) => (s.spec?.ports ?? []).some((p: { name?: string; port: number; targetPort?: number | string }) => p.name === 'metrics' && (p.port === port || p.targetPort === port || p.targetPort === 'metrics')));
  const monitors = idx.kind('ServiceMonitor').filter((m) => withPort.some((s) => selectorMatches(m.spec?.selector ?? {}, s.metadata.labels ?? {})) && (m.spec?.endpoints ?? []).some((e: { port?: string }) => e.port === 'metrics'));
  const annotated = [...svcs.map((s) => s.metadata.annotations ?? {}), w.obj.spec?.template?.metadata?.annotations ?? {}].some((a) => a['prometheus.io/scrape'] === 'true' && String(a['prometheus.io/port'] ?? port) === String(port));
  const evidence: Record<string, unknown> = { workload: ref(w), services: svcs.map((s) => s.metadata.name), metricsPortOn: withPort.map((s) => s.metadata.name), serviceMonitors: monitors.map((m) => m.metadata.name), prometheusAnnotations: annotated };
  const live = ctx.mode === 'live' ? ctx.live?.metrics?.[component === 'api-gateway' ? 'gateway' : 'scheduler'] : undefined;
  if (live) {
    evidence.liveProbe = live.ok ? live.value : { error: live.reason };
    if (!live.ok || live.value.status !== 200) return fail(`${component} /metrics did not answer 200`, evidence);
  }
  if (!withPort.length && !annotated) return fail(`no Service of ${ref(w)} has a port named "metrics" (${port})`, evidence);
  if (!monitors.length && !annotated) return fail(`no ServiceMonitor selects the ${component} Service labels with endpoint port "metrics"`, evidence);
  return pass(`${component} :${port}/metrics scraped via ${monitors.length ? `ServiceMonitor ${monitors[0].metadata.name}` : 'annotations'}`, evidence);
}

/** Log shippers commonly run as a DaemonSet (by image repository or workload name). */
const LOG_AGENT = /(fluent-?bit|fluentd|(^|[/-])vector($|[/-])|promtail|grafana[/-]alloy|(^|[/-])alloy$|otel(col)?[/-]?(contrib|collector)|opentelemetry-collector|datadog[/-]agent|(^|\/)agent$|filebeat|elastic-agent|splunk-otel|logstash|nxlog|loggly|newrelic-logging|logging-operator)/i;

/** Which DaemonSets look like log agents (image repositories and the DaemonSet name). */
export function logAgents(daemonSets: Workload[]): { daemonSet: string; images: string[] }[] {
  return daemonSets
    .map((w) => ({ daemonSet: w.name, images: containersOf(w.podSpec, false).map((c) => (c.image ?? '').split('@')[0].replace(/:[^/:]*$/, '')) }))
    .filter((d) => LOG_AGENT.test(d.daemonSet) || d.images.some((i) => LOG_AGENT.test(i)));
}

const isOtelCollector = (w: Workload) => containersOf(w.podSpec, false).some((c) => /opentelemetry-collector|otel\/?(col|collector)|otelcol/i.test(c.image ?? ''));

type Target = { w: Workload; port: number; image: string | undefined };

/** What a scrape endpoint reaches: the workload and container port behind a Service port. */
function behindService(idx: ObjectIndex, svc: KubeObject, svcPort: { port: number; targetPort?: number | string }): Target[] {
  const selector = svc.spec?.selector as Record<string, string> | undefined;
  if (!selector) return [];
  const required = Object.entries(selector);
  return idx
    .templatesWithPodLabels(required, (labels) => required.every(([k, v]) => labels[k] === v))
    .filter((w) => w.kind !== 'Job' && w.kind !== 'CronJob')
    .map((w) => {
      const cp = containerPortOf(w.podSpec, svcPort.targetPort ?? svcPort.port);
      return cp ? { w, port: cp.port, image: cp.container.image } : undefined;
    })
    .filter((x): x is Target => !!x);
}

/** A scrape of `path` on a target that does not serve it, described; undefined when it is served or unknown. */
function notServed(target: Target, path: string): string | undefined {
  const served = servedPaths(target.image, target.w.component, target.port);
  if (served === null) return undefined;
  if (!served.length) return `${ref(target.w)} :${target.port} does not speak HTTP`;
  if (pathServed(served, path)) return undefined;
  const hint = target.w.component === 'nats' ? ' (NATS has no /metrics: scrape a prometheus-nats-exporter)' : target.w.component === 'workflow-engine' ? ' (the workflow engine has only /health: use a blackbox Probe)' : '';
  return `${ref(target.w)} :${target.port} does not serve ${path} (it serves ${served.join(', ')})${hint}`;
}

/** Every ServiceMonitor endpoint, PodMonitor endpoint and blackbox Probe target, judged. */
function monitorFindings(idx: ObjectIndex): { findings: Finding[]; rows: unknown[] } {
  const findings: Finding[] = [];
  const rows: unknown[] = [];
  // Services the gateway and scheduler checks (4.1/4.2) already judge, found once for every monitor.
  let scrapeChecked: Set<KubeObject> | undefined;
  for (const m of idx.kind('ServiceMonitor')) {
    const svcs = idx.servicesSelectedBy(m.spec?.selector ?? {});
    if (!svcs.length) findings.push({ status: 'fail', message: `ServiceMonitor/${m.metadata.name} selects no Service (its selector must match the Service's own labels)`, location: locate(m, 'selector:') });
    for (const e of m.spec?.endpoints ?? []) {
      const path = e.path ?? '/metrics';
      for (const s of svcs) {
        const sp = (s.spec?.ports ?? []).find((p: { name?: string; port: number }) => (e.port !== undefined && p.name === e.port) || (e.targetPort !== undefined && (p.port === e.targetPort || (p as { targetPort?: unknown }).targetPort === e.targetPort)));
        if (!sp) {
          // The gateway's and scheduler's metrics ports are judged by 4.1/4.2 (reported there once).
          scrapeChecked ??= new Set(idx.templates().flatMap((w) => (w.component === 'api-gateway' || w.component === 'scheduler' ? idx.servicesFronting(w) : [])));
          if (!scrapeChecked.has(s)) findings.push({ status: 'fail', message: `ServiceMonitor/${m.metadata.name} scrapes port "${e.port ?? e.targetPort}" but Service/${s.metadata.name} has no such port`, location: locate(m, `port: ${e.port ?? e.targetPort}`) });
          continue;
        }
        for (const t of behindService(idx, s, sp)) {
          const why = notServed(t, path);
          rows.push({ monitor: `ServiceMonitor/${m.metadata.name}`, service: s.metadata.name, target: ref(t.w), port: t.port, path, served: !why });
          if (why) findings.push({ status: 'fail', message: `ServiceMonitor/${m.metadata.name} scrapes ${path} via Service/${s.metadata.name} port ${sp.name ?? sp.port}, but ${why}: the target stays down (up == 0)`, location: locate(m, e.path ? `path: ${e.path}` : `port: ${e.port}`) });
        }
      }
    }
  }
  for (const m of idx.kind('PodMonitor')) {
    const selector = m.spec?.selector ?? {};
    const ws = idx.templatesWithPodLabels(requiredByLabelSelector(selector), (labels) => selectorMatches(selector, labels)).filter((w) => w.kind !== 'Job' && w.kind !== 'CronJob');
    for (const e of m.spec?.podMetricsEndpoints ?? []) {
      const path = e.path ?? '/metrics';
      for (const w of ws) {
        const cp = containerPortOf(w.podSpec, e.port ?? e.targetPort);
        if (!cp) {
          findings.push({ status: 'fail', message: `PodMonitor/${m.metadata.name} scrapes port "${e.port ?? e.targetPort}" that ${ref(w)} does not declare`, location: locate(m, `port: ${e.port ?? e.targetPort}`) });
          continue;
        }
        const why = notServed({ w, port: cp.port, image: cp.container.image }, path);
        if (why) findings.push({ status: 'fail', message: `PodMonitor/${m.metadata.name} scrapes ${path}, but ${why}`, location: locate(m, e.path ? `path: ${e.path}` : `port: ${e.port}`) });
      }
    }
  }
  for (const pr of idx.kind('Probe')) {
    for (const url of (pr.spec?.targets?.staticConfig?.static ?? []) as string[]) {
      let u: URL;
      try {
        u = new URL(/^\w+:\/\//.test(url) ? url : `http://${url}`);
      } catch {
        findings.push({ status: 'fail', message: `Probe/${pr.metadata.name} target ${url} is not a URL`, location: locate(pr, url) });
        continue;
      }
      const svcName = u.hostname.split('.')[0];
      const svc = idx.get('Service', svcName);
      if (!svc) continue; // an outside target: not ours to judge
      const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
      const sp = (svc.spec?.ports ?? []).find((p: { port: number }) => p.port === port);
      if (!sp) {
        findings.push({ status: 'fail', message: `Probe/${pr.metadata.name} probes ${url}, but Service/${svcName} has no port ${port}`, location: locate(pr, url) });
        continue;
      }
      for (const t of behindService(idx, svc, sp)) {
        const why = notServed(t, u.pathname);
        rows.push({ monitor: `Probe/${pr.metadata.name}`, url, target: ref(t.w), port: t.port, served: !why });
        if (why) findings.push({ status: 'fail', message: `Probe/${pr.metadata.name} probes ${url}, but ${why}: the probe always fails`, location: locate(pr, url) });
      }
    }
  }
  return { findings, rows };
}

export const observabilityChecks: Check[] = [
  defineCheck({
    id: 'observability.gateway-scrape',
    section: 'observability',
    item: '4.1',
    title: "Gateway :9092/metrics is scraped",
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Name the gateway Service port 9092 "metrics", label the Service, and add a ServiceMonitor whose selector matches those Service labels with `endpoints: [{port: metrics}]`.',
    run: (ctx) => scrapeCheck(ctx, 'api-gateway', 9092),
  }),
  defineCheck({
    id: 'observability.scheduler-scrape',
    section: 'observability',
    item: '4.2',
    title: 'Scheduler :9090/metrics is scraped',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Name the scheduler Service port 9090 "metrics", label the Service, and add a ServiceMonitor selecting it with `endpoints: [{port: metrics}]`.',
    run: (ctx) => scrapeCheck(ctx, 'scheduler', 9090),
  }),
  defineCheck({
    id: 'observability.workflow-health',
    section: 'observability',
    item: '4.3',
    title: 'Workflow engine :9093/health probed and monitored',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Point readiness/liveness probes at :9093/health and add a blackbox Probe (monitoring.coreos.com/v1 Probe) for it; the engine has no /metrics.',
    run(ctx) {
      const health = ctx.live?.workflowHealth;
      if (ctx.mode === 'live' && !ctx.objects) {
        // From the profile alone: the health endpoint answers (whether something watches it is not visible).
        if (!health) return notCheckable(`no Kubernetes objects (${ctx.objectsUnavailable ?? 'none read'}) and the profile names no workflow_engine.health_url`);
        if (!health.ok) return warn(`workflow engine health unreachable: ${health.reason}`, { health: health.reason });
        if (health.value.status !== 200 || health.value.body !== 'ok') return warn(`workflow engine /health answered ${health.value.status} ${JSON.stringify(health.value.body)} (expected 200 ok)`, health.value);
        return pass('workflow engine /health answers 200 ok (monitoring objects not visible without Kubernetes)', health.value);
      }
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const w = primary(idx, 'workflow-engine');
      if (!w) return fail('no workflow engine workload found');
      const probes = containersOf(w.podSpec, false).flatMap((c) => [c.readinessProbe, c.livenessProbe]).filter((p) => p?.httpGet?.path === '/health' && (p.httpGet.port === 9093 || typeof p.httpGet.port === 'string'));
      const monitors = idx.kind('Probe').map((p) => p.metadata.name);
      const evidence = { workload: ref(w), healthProbes: probes.length, monitoringProbes: monitors, live: health ? (health.ok ? health.value : { error: health.reason }) : undefined };
      if (health && (!health.ok || health.value.status !== 200)) return warn(`workflow engine /health ${health.ok ? `answered ${health.value.status}` : `unreachable: ${health.reason}`}`, evidence);
      if (probes.length < 2) return warn('readiness and liveness probes on :9093/health missing', evidence);
      if (!monitors.length) return warn('health is probed but not monitored (no Probe object)', evidence);
      return pass(`probes on /health and monitored by ${monitors[0]}`, evidence);
    },
  }),
  defineCheck({
    id: 'observability.alerts',
    section: 'observability',
    item: '4.6',
    title: 'Cordum alert rules loaded, covering absent targets',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Ship a PrometheusRule (group cordum.platform) with Cordum* alerts; write down-alerts as `up{…} == 0 or absent(up{…})` so a missing target also fires.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rules = idx.kind('PrometheusRule');
      const alerts = rules.flatMap((r) => (r.spec?.groups ?? []).flatMap((g: { rules?: { alert?: string; expr?: string }[] }) => g.rules ?? [])).filter((r: { alert?: string }) => r.alert);
      const cordum = alerts.filter((a: { alert?: string }) => a.alert!.startsWith('Cordum'));
      const absent = cordum.some((a: { expr?: string }) => /absent\s*\(/.test(String(a.expr)));
      const evidence = { rules: rules.map((r) => r.metadata.name), alerts: cordum.map((a: { alert?: string }) => a.alert), usesAbsent: absent };
      if (!cordum.length) return fail('no PrometheusRule with Cordum* alerts', evidence);
      if (!absent) return warn('down-alerts do not use absent(): a missing target never fires', evidence);
      return pass(`${cordum.length} Cordum alerts, absent() covered`, evidence);
    },
  }),
  defineCheck({
    id: 'observability.monitor-targets',
    section: 'observability',
    item: '4.6',
    title: 'Every ServiceMonitor, PodMonitor and Probe points at a port and path its target serves',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Point each monitor at a port the target declares and a path it serves: gateway :9092/metrics, scheduler :9090/metrics, workflow engine only :9093/health (blackbox Probe); NATS :8222 has no /metrics (add prometheus-nats-exporter and scrape it).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const { findings, rows } = monitorFindings(idx);
      const count = idx.kind('ServiceMonitor').length + idx.kind('PodMonitor').length + idx.kind('Probe').length;
      return fromFindings(findings, `${count} monitor(s), every target served`, { targets: rows });
    },
  }),
  defineCheck({
    id: 'observability.log-agent',
    section: 'observability',
    item: '4.4',
    title: 'A log-shipping agent (DaemonSet) collects the pods\' logs (heuristic)',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Run a log agent as a DaemonSet (fluent-bit, vector, promtail/alloy, an OpenTelemetry collector in agent mode, the Datadog agent…) shipping container logs to your central store. If one already runs cluster-wide in another namespace (e.g. logging, kube-system), waive this check for the namespace with that reference.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const daemonSets = idx.workloads.filter((w) => w.kind === 'DaemonSet');
      const agents = logAgents(daemonSets);
      const evidence = { daemonSets: daemonSets.map((w) => w.name), logAgents: agents, scope: ctx.mode === 'live' ? `DaemonSets in namespace ${ctx.namespace ?? '(unknown)'}` : 'rendered manifests' };
      if (agents.length) return pass(`log agent DaemonSet ${agents.map((a) => a.daemonSet).join(', ')}`, evidence);
      // Agents usually live in their own namespace (logging, observability, kube-system): absence here is not proof.
      const where = ctx.mode === 'live' ? `namespace ${ctx.namespace ?? '(unknown)'}` : 'the manifests';
      return warn(`no log-agent DaemonSet in ${where}; a cluster-wide agent in another namespace would not be seen here, so confirm it (and waive this check) or deploy one`, evidence);
    },
  }),
  defineCheck({
    id: 'observability.opentelemetry',
    section: 'observability',
    item: '4.5',
    title: 'OpenTelemetry configured (optional)',
    severity: 'info',
    modes: ['static', 'live'],
    remediation: 'Optional: set OTEL_EXPORTER_OTLP_ENDPOINT (and OTEL_SERVICE_NAME) on the Cordum Deployments, pointing at an OpenTelemetry collector (OpenTelemetryCollector resource or a collector Deployment/DaemonSet).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const services = CORDUM_SERVICES.flatMap((c) => idx.component(c));
      const withOtel = services
        .map((w) => ({ workload: ref(w), otelEnv: containersOf(w.podSpec, false).flatMap((c) => [...idx.env(c).keys()].filter((k) => k.startsWith('OTEL_'))) }))
        .filter((r) => r.otelEnv.length);
      const collectors = [...idx.kind('OpenTelemetryCollector').map((o) => `OpenTelemetryCollector/${o.metadata.name}`), ...idx.templates().filter(isOtelCollector).map(ref)];
      const evidence = { servicesWithOtelEnv: withOtel, servicesWithout: services.map(ref).filter((r) => !withOtel.some((x) => x.workload === r)), collectors };
      const endpoint = withOtel.some((r) => r.otelEnv.some((k) => k.startsWith('OTEL_EXPORTER_OTLP')));
      if (endpoint) return pass(`OTLP export configured on ${withOtel.map((r) => r.workload).join(', ')}${collectors.length ? `; collector ${collectors.join(', ')}` : ''}`, evidence);
      if (collectors.length) return info(`a collector runs (${collectors.join(', ')}) but no Cordum service sets OTEL_EXPORTER_OTLP_*`, evidence);
      return info('OpenTelemetry not configured (optional: no OTEL_EXPORTER_OTLP_* env on Cordum services, no collector)', evidence);
    },
  }),
];
