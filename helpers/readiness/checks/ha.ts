// Checklist §2: gateway replicated behind an HPA; the scheduler strictly single; the workflow engine
// scaled with care; a replicated safety kernel has a PDB.
import { defineCheck, fail, info, pass, warn, type Check } from '../model.js';
import { isResult, needObjects, primary, ref } from './util.js';

export const haChecks: Check[] = [
  defineCheck({
    id: 'ha.gateway',
    section: 'ha',
    item: '2.1',
    title: 'Gateway: ≥2 replicas, a Service, an HPA with minReplicas ≥ 2',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Run the gateway with replicas: 2+, a Service selecting its pods and an HPA (minReplicas ≥ 2) targeting the Deployment.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const gw = primary(idx, 'api-gateway');
      if (!gw) return fail('no API gateway workload found');
      const svcs = idx.servicesFronting(gw).map((s) => s.metadata.name);
      const hpas = idx.hpasFor(gw);
      const minReplicas = hpas.map((h) => h.spec?.minReplicas ?? 1);
      const evidence: Record<string, unknown> = { workload: ref(gw), replicas: gw.replicas, services: svcs, hpas: hpas.map((h) => h.metadata.name), minReplicas };
      const problems: string[] = [];
      if (gw.replicas < 2 && !minReplicas.some((m) => m >= 2)) problems.push(`${gw.replicas} replica(s)`);
      if (!svcs.length) problems.push('no Service selects its pods');
      if (!hpas.length) problems.push('no HPA');
      else if (!minReplicas.some((m) => m >= 2)) problems.push(`HPA minReplicas ${minReplicas.join(',')}`);
      if (ctx.mode === 'live' && hpas.length) {
        const active = hpas.some((h) => (h.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'ScalingActive' && c.status === 'True'));
        evidence.scalingActive = active;
        if (!active) problems.push('HPA condition ScalingActive is not True');
      }
      if (problems.length) return fail(`gateway: ${problems.join('; ')}`, evidence);
      return pass(`gateway ${gw.replicas} replicas, Service ${svcs[0]}, HPA min ${Math.max(...minReplicas)}`, evidence);
    },
  }),
  defineCheck({
    id: 'ha.scheduler-single',
    section: 'ha',
    item: '2.3',
    title: 'Scheduler has exactly one active replica and no HPA',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Set the scheduler to replicas: 1 and remove any HPA targeting it: only one scheduler may be active.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const s = primary(idx, 'scheduler');
      if (!s) return fail('no scheduler workload found');
      const hpas = idx.hpasFor(s).map((h) => h.metadata.name);
      const evidence: Record<string, unknown> = { workload: ref(s), replicas: s.replicas, hpas };
      if (s.replicas !== 1 || hpas.length) return fail(`scheduler replicas=${s.replicas}${hpas.length ? `, HPA ${hpas.join(',')}` : ''}`, evidence);
      if (ctx.mode === 'live') {
        const running = idx.pods('scheduler').filter((p) => p.obj.status?.phase === 'Running').length;
        evidence.runningPods = running;
        if (idx.pods('scheduler').length && running !== 1) return fail(`${running} scheduler pods running`, evidence);
      }
      return pass('one scheduler, no HPA', evidence);
    },
  }),
  defineCheck({
    id: 'ha.workflow-engine',
    section: 'ha',
    item: '2.2',
    title: 'Workflow engine scaled cautiously (1 replica, no HPA)',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Keep the workflow engine at 1 replica without an HPA unless you have verified its reconciler under concurrency.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const w = primary(idx, 'workflow-engine');
      if (!w) return fail('no workflow engine workload found');
      const hpas = idx.hpasFor(w).map((h) => h.metadata.name);
      const evidence = { workload: ref(w), replicas: w.replicas, hpas };
      if (w.replicas > 1 || hpas.length) return warn(`workflow engine replicas=${w.replicas}${hpas.length ? ', with an HPA' : ''}`, evidence);
      return pass('1 replica, no HPA', evidence);
    },
  }),
  defineCheck({
    id: 'ha.safety-kernel',
    section: 'ha',
    item: '2.4',
    title: 'Safety kernel runs (≥1 replica); replicated ones have a PDB',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Run at least one safety kernel replica; when running more than one, add a PodDisruptionBudget (maxUnavailable: 1) selecting its pods.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const k = primary(idx, 'safety-kernel');
      if (!k) return fail('no safety kernel workload found');
      const pdbs = idx.pdbsFor(k).map((p) => p.metadata.name);
      const evidence = { workload: ref(k), replicas: k.replicas, pdbs };
      if (k.replicas < 1) return fail(`${ref(k)} scaled to ${k.replicas}: every policy check (and so every job) fails`, evidence);
      if (k.replicas === 1) return info('single safety kernel replica', evidence);
      if (!pdbs.length) return warn(`${k.replicas} kernel replicas without a PDB`, evidence);
      return pass(`${k.replicas} replicas with PDB ${pdbs[0]}`, evidence);
    },
  }),
];
