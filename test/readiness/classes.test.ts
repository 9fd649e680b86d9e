// The defect classes a careful reviewer finds in real overlays and charts, each as a fixture file
// the project wrote (test/fixtures/readiness/classes): it replaces objects of the compliant
// namespace by kind and name, fails exactly the right check, and the finding quotes the line that
// shows the defect (file and line, as SARIF will point at it). The compliant variant passes.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findBinary } from '../../helpers/processes.js';
import { loadManifestDir, loadManifests, runAudit, type AuditReport } from '../../helpers/readiness/index.js';
import type { KubeObject } from '../../helpers/readiness/objects.js';
import { compliant, NOW } from './fixtures.js';

const CLASSES = resolve(import.meta.dirname, '../fixtures/readiness/classes');
const OVERLAY = resolve(import.meta.dirname, '../fixtures/readiness/overlay-outside-root');

/** The compliant namespace with the class file's objects in place of those with the same kind/name. */
function withClass(file: string): KubeObject[] {
  const m = loadManifestDir(join(CLASSES, file));
  expect(m.errors).toEqual([]);
  const replaced = new Set(m.objects.map((o) => `${o.kind}/${o.metadata.name}`));
  return [...compliant().filter((o) => !replaced.has(`${o.kind}/${o.metadata.name}`)), ...m.objects];
}

/** 1-based line of the first line of `file` containing `text`. */
function lineOf(file: string, text: string): number {
  const i = readFileSync(join(CLASSES, file), 'utf8').split('\n').findIndex((l) => l.includes(text));
  expect(i, `${file} has "${text}"`).toBeGreaterThanOrEqual(0);
  return i + 1;
}

const fails = (r: AuditReport) => r.results.filter((x) => x.status === 'fail').map((x) => x.id);
const result = (r: AuditReport, id: string) => r.results.find((x) => x.id === id)!;

describe('defect classes, each failing exactly its check with the line as evidence', () => {
  it('compliant: backup scripts with continuations, env-held TLS flags, a while-read loop, a ConfigMap script and natscli aliases pass', async () => {
    const r = await runAudit({ mode: 'static', objects: withClass('backups-continuations-aliases.yaml'), now: NOW });
    const bad = r.results.filter((x) => x.status === 'fail' || x.status === 'warn');
    expect(bad.map((b) => `${b.id}: ${b.message}`)).toEqual([]);
    for (const id of ['backups.redis-cronjob', 'backups.jetstream-cronjob', 'backups.storage', 'backups.off-cluster', 'netpol.required-flows']) expect(result(r, id).status, id).toBe('pass');
    const redis = result(r, 'backups.redis-cronjob').evidence as { jobs: { coverage: string; dumps: { line: number; rdb: string }[] }[] };
    expect(redis.jobs[0].coverage).toBe('masters discovered at run time');
    expect(redis.jobs[0].dumps[0].rdb).toBe('/backup/redis/$(…)/$MASTER.rdb');
    const js = result(r, 'backups.jetstream-cronjob').evidence as { streamsCovered: string[]; jobs: { backups: { path: string }[] }[] };
    expect(js.streamsCovered.sort()).toEqual(['CORDUM_JOBS', 'CORDUM_SYS']);
    expect(js.jobs[0].backups[0].path).toBe('str snapshot');
  });

  it('a cluster backed up from one node only fails backups.redis-cronjob at the redis-cli line', async () => {
    const file = 'backups-one-node.yaml';
    const r = await runAudit({ mode: 'static', objects: withClass(file), now: NOW });
    expect(fails(r)).toEqual(['backups.redis-cronjob']);
    const o = result(r, 'backups.redis-cronjob');
    expect(o.message).toMatch(/CronJob\/cordum-redis-backup backs up 1 of the 3 Redis masters \(cordum-redis-0\.cordum-redis\.cordum\.svc\)/);
    expect(o.message).toContain('line 3: `redis-cli --tls --cacert /etc/cordum/tls/client/ca.crt \\`');
    expect(o.findings).toHaveLength(1);
    expect(o.findings![0].location).toMatchObject({ object: 'CronJob/cordum-redis-backup', uri: expect.stringMatching(/classes\/backups-one-node\.yaml$/), line: lineOf(file, 'redis-cli --tls --cacert'), snippet: 'redis-cli --tls --cacert /etc/cordum/tls/client/ca.crt \\' });
  });

  it('two jobs writing one ReadWriteOnce claim at the same minute fail backups.storage at the schedule', async () => {
    const file = 'backups-colliding-schedules.yaml';
    const r = await runAudit({ mode: 'static', objects: withClass(file), now: NOW });
    expect(fails(r)).toEqual(['backups.storage']);
    const o = result(r, 'backups.storage');
    expect(o.message).toMatch(/CronJob\/cordum-redis-backup \(`0 2 \* \* \*`\) and CronJob\/cordum-jetstream-backup \(`0 2 \* \* \*`\) both write claim cordum-backups \(ReadWriteOnce\) at 02:00/);
    const lines = readFileSync(join(CLASSES, file), 'utf8').split('\n');
    const second = lines.findIndex((l, i) => l.includes('schedule: "0 2 * * *"') && i > lineOf(file, 'name: cordum-jetstream-backup')) + 1;
    expect(o.findings![0].location).toMatchObject({ uri: expect.stringMatching(/backups-colliding-schedules\.yaml$/), line: second });
  });

  it('a flag natscli does not have fails backups.jetstream-cronjob at the nats line', async () => {
    const file = 'backups-wrong-flag.yaml';
    const r = await runAudit({ mode: 'static', objects: withClass(file), now: NOW });
    expect(fails(r)).toEqual(['backups.jetstream-cronjob']);
    const o = result(r, 'backups.jetstream-cronjob');
    expect(o.message).toMatch(/natscli has no `--tls-ca` flag \(line 4: `nats --server tls:\/\/cordum-nats:4222 --tls-ca/);
    expect(o.message).toMatch(/NATS requires TLS but the backup passes no --tlsca/);
    for (const f of o.findings!) expect(f.location).toMatchObject({ line: lineOf(file, 'nats --server tls://cordum-nats:4222 --tls-ca') });
  });

  it('probes on an authenticated route fail kubernetes.probes at the probe path', async () => {
    const file = 'probes-authenticated-route.yaml';
    const r = await runAudit({ mode: 'static', objects: withClass(file), now: NOW });
    expect(fails(r)).toEqual(['kubernetes.probes']);
    const o = result(r, 'kubernetes.probes');
    expect(o.message).toMatch(/Deployment\/cordum-api-gateway\/api-gateway: readiness probe GET \/api\/v1\/status needs an API key: with the key this gateway is given it answers 401, so the pod never becomes Ready/);
    expect(o.message).toMatch(/liveness probe GET \/api\/v1\/status .* is restarted forever/);
    expect(o.findings!.map((f) => f.location?.line)).toEqual([lineOf(file, 'path: /api/v1/status'), lineOf(file, 'path: /api/v1/status')]);
  });

  it('monitors pointing at paths their targets do not serve fail observability.monitor-targets', async () => {
    const file = 'monitors-unserved-targets.yaml';
    const r = await runAudit({ mode: 'static', objects: withClass(file), now: NOW });
    expect(fails(r)).toEqual(['observability.monitor-targets']);
    const msgs = result(r, 'observability.monitor-targets').findings!.map((f) => f.message);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/ServiceMonitor\/cordum-nats scrapes \/metrics via Service\/cordum-nats port monitor, but StatefulSet\/cordum-nats :8222 does not serve \/metrics .*prometheus-nats-exporter/),
        expect.stringMatching(/Probe\/cordum-workflow-engine probes http:\/\/cordum-workflow-engine\.cordum\.svc:9093\/metrics, but Deployment\/cordum-workflow-engine :9093 does not serve \/metrics \(it serves \/health\)/),
      ]),
    );
    const probe = result(r, 'observability.monitor-targets').findings!.find((f) => f.message.startsWith('Probe/'))!;
    expect(probe.location?.line).toBe(lineOf(file, 'http://cordum-workflow-engine.cordum.svc:9093/metrics'));
  });
});

describe.skipIf(!findBinary('kubectl') && !findBinary('kustomize'))('a render error', () => {
  it('is reported once by kubernetes.renders; the relaxed render is audited (and says so), never the patch fragment', async () => {
    const m = await loadManifests(OVERLAY);
    expect(m.rendered).toBe(false);
    expect(m.errors).toHaveLength(1);
    expect(m.errors[0]).toMatch(/render failed \((kubectl kustomize|kustomize build) .*is not in or below/);
    expect(m.notes?.[0]).toMatch(/judged the render of `.*--load-restrictor=LoadRestrictionsNone` instead/);
    // The patch was applied, not read as a Deployment of its own.
    const gateways = m.objects.filter((o) => o.kind === 'Deployment' && o.metadata.name === 'cordum-api-gateway');
    expect(gateways).toHaveLength(1);
    expect(gateways[0].metadata.annotations?.['cordum.io/rollout']).toBe('surge-1');
    expect(gateways[0].spec.template.spec.containers[0].image).toBe('cordum/control-plane:v1.4.2-api-gateway');
    const r = await runAudit({ mode: 'static', objects: m.objects, loadErrors: m.errors, loadNotes: m.notes, entry: m.entry, now: NOW });
    expect(fails(r)).toEqual(['kubernetes.renders']);
    expect(result(r, 'kubernetes.renders').message).toMatch(/1 render\/parse error\(s\): render failed .*judged the render of `.*LoadRestrictionsNone` instead/);
    // Objects of the render point back at the files they came from.
    expect(result(r, 'persistence.jetstream-pvc').locations?.[0]).toMatchObject({ uri: expect.stringMatching(/compliant\/20-stores\.yaml$/), line: expect.any(Number) });
  });
});
