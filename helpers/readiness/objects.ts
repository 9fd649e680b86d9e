// Indexes Kubernetes objects once (by kind and name) and recognises Cordum's components under both
// label schemes (kustomize `app: cordum-<x>` and Helm `app.kubernetes.io/component: <x>`), falling
// back to object and image names. Every check reads through this index, so an audit stays linear.

/* eslint-disable @typescript-eslint/no-explicit-any */
import { LabelIndex, labelSelectorRequirements, mapRequirements, requiredByLabelSelector, SelectorIndex } from './label-index.js';

export type KubeObject = { apiVersion?: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: any[]; creationTimestamp?: string }; [k: string]: any };

export const COMPONENTS = ['api-gateway', 'scheduler', 'workflow-engine', 'safety-kernel', 'context-engine', 'dashboard', 'nats', 'redis'] as const;
export type Component = (typeof COMPONENTS)[number];
/** The five Go services that the non-root rule is graded on. */
export const CORDUM_SERVICES: Component[] = ['api-gateway', 'scheduler', 'workflow-engine', 'safety-kernel', 'context-engine'];

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod'] as const;

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: any }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: any;
  livenessProbe?: any;
  securityContext?: any;
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
  imagePullPolicy?: string;
}

export interface Workload {
  obj: KubeObject;
  kind: string;
  name: string;
  /** Pod-template labels: what selectors (NetworkPolicy, PDB, Service) are matched against. */
  podLabels: Record<string, string>;
  podSpec: any;
  /** Declared replicas (Deployment/StatefulSet; default 1). */
  replicas: number;
  component?: Component;
}

export function key(kind: string, name: string): string {
  return `${kind}/${name}`;
}

function podTemplate(obj: KubeObject): { metadata?: any; spec?: any } | undefined {
  switch (obj.kind) {
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'Job':
      return obj.spec?.template;
    case 'CronJob':
      return obj.spec?.jobTemplate?.spec?.template;
    case 'Pod':
      return { metadata: obj.metadata, spec: obj.spec };
    default:
      return undefined;
  }
}

function componentFromLabels(labels: Record<string, string> | undefined): Component | undefined {
  if (!labels) return undefined;
  const c = labels['app.kubernetes.io/component'];
  if (c && (COMPONENTS as readonly string[]).includes(c)) return c as Component;
  const app = labels.app ?? labels['app.kubernetes.io/name'];
  if (app) {
    const stripped = app.replace(/^cordum-/, '');
    if ((COMPONENTS as readonly string[]).includes(stripped) && (app.startsWith('cordum-') || stripped === 'nats' || stripped === 'redis')) return stripped as Component;
  }
  return undefined;
}

function componentFromName(name: string): Component | undefined {
  for (const c of COMPONENTS) {
    if (c === 'nats' || c === 'redis') continue;
    if (name === `cordum-${c}` || name.endsWith(`-${c}`)) return c;
  }
  if (/(^|-)nats$/.test(name)) return 'nats';
  if (/(^|-)redis$/.test(name)) return 'redis';
  return undefined;
}

function componentFromImages(spec: any): Component | undefined {
  for (const c of (spec?.containers ?? []) as Container[]) {
    const image = c.image ?? '';
    const repo = image.split('@')[0].replace(/:[^/:]*$/, '');
    const last = repo.split('/').pop() ?? '';
    if (last === 'nats') return 'nats';
    if (last === 'redis') return 'redis';
    const tag = image.split('@')[0].match(/:([^/:]+)$/)?.[1] ?? '';
    for (const s of CORDUM_SERVICES) if (tag.endsWith(`-${s}`) || last === `cordum-${s}`) return s;
  }
  return undefined;
}

/** Component of a long-running workload (Jobs and CronJobs are tools, never components). */
function detectComponent(obj: KubeObject, podLabels: Record<string, string>, spec: any): Component | undefined {
  if (!['Deployment', 'StatefulSet', 'Pod'].includes(obj.kind)) return undefined;
  return componentFromLabels(podLabels) ?? componentFromLabels(obj.metadata.labels) ?? componentFromName(obj.metadata.name) ?? componentFromImages(spec);
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Kubernetes label-selector semantics; an empty selector matches everything. */
export function selectorMatches(sel: LabelSelector | undefined | null, labels: Record<string, string>): boolean {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(val)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(val)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** A Service selector (plain map) fronts pods whose labels include it. */
export function mapSubset(sel: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!sel || Object.keys(sel).length === 0) return false;
  return Object.entries(sel).every(([k, v]) => labels[k] === v);
}

export function containersOf(podSpec: any, withInit = true): Container[] {
  return [...((withInit ? podSpec?.initContainers : undefined) ?? []), ...(podSpec?.containers ?? [])];
}

export class ObjectIndex {
  readonly all: KubeObject[];
  private readonly byKind = new Map<string, KubeObject[]>();
  private readonly byKey = new Map<string, KubeObject>();
  readonly workloads: Workload[] = [];
  private readonly byComponent = new Map<Component, Workload[]>();

  constructor(objects: KubeObject[]) {
    this.all = objects.filter((o) => o && typeof o === 'object' && typeof o.kind === 'string' && o.metadata?.name);
    for (const o of this.all) {
      let list = this.byKind.get(o.kind);
      if (!list) this.byKind.set(o.kind, (list = []));
      list.push(o);
      this.byKey.set(key(o.kind, o.metadata.name), o);
      const tpl = podTemplate(o);
      if (!tpl) continue;
      const podLabels = { ...(tpl.metadata?.labels ?? {}) };
      const w: Workload = {
        obj: o,
        kind: o.kind,
        name: o.metadata.name,
        podLabels,
        podSpec: tpl.spec ?? {},
        replicas: typeof o.spec?.replicas === 'number' ? o.spec.replicas : 1,
        component: detectComponent(o, podLabels, tpl.spec),
      };
      this.workloads.push(w);
      if (w.component) {
        let l = this.byComponent.get(w.component);
        if (!l) this.byComponent.set(w.component, (l = []));
        l.push(w);
      }
    }
  }

  kind(kind: string): KubeObject[] {
    return this.byKind.get(kind) ?? [];
  }

  get(kind: string, name: string): KubeObject | undefined {
    return this.byKey.get(key(kind, name));
  }

  /** Workloads of a component; StatefulSets/Deployments first, Pods (live) last. */
  component(c: Component): Workload[] {
    return (this.byComponent.get(c) ?? []).filter((w) => w.kind !== 'Pod');
  }

  /** Pods (live mode) of a component. */
  pods(c: Component): Workload[] {
    return (this.byComponent.get(c) ?? []).filter((w) => w.kind === 'Pod');
  }

  /** Templates only: Deployments, StatefulSets, DaemonSets, Jobs, CronJobs (not live Pods). */
  templates(): Workload[] {
    return this.workloads.filter((w) => w.kind !== 'Pod');
  }

  // Lookups asked once per workload or per selector, built on first use (see label-index.ts).
  private serviceSelectors?: SelectorIndex<unknown, KubeObject>;
  private pdbSelectors?: SelectorIndex<LabelSelector | undefined, KubeObject>;
  private hpasByTarget?: Map<string, KubeObject[]>;
  private serviceLabels?: LabelIndex<KubeObject>;
  private templateLabels?: LabelIndex<Workload>;

  /** Services whose selector picks the workload's pods. */
  servicesFronting(w: Workload): KubeObject[] {
    this.serviceSelectors ??= new SelectorIndex(
      this.kind('Service').map((s) => ({ selector: s.spec?.selector as unknown, item: s })),
      mapRequirements,
      (sel, labels) => mapSubset(sel as Record<string, string> | undefined, labels),
    );
    return this.serviceSelectors.matching(w.podLabels);
  }

  /** HPAs whose scaleTargetRef is this workload. */
  hpasFor(w: Workload): KubeObject[] {
    if (!this.hpasByTarget) {
      this.hpasByTarget = new Map();
      for (const h of this.kind('HorizontalPodAutoscaler')) {
        const t = h.spec?.scaleTargetRef;
        if (typeof t?.kind !== 'string' || typeof t?.name !== 'string') continue;
        const k = key(t.kind, t.name);
        let list = this.hpasByTarget.get(k);
        if (!list) this.hpasByTarget.set(k, (list = []));
        list.push(h);
      }
    }
    return [...(this.hpasByTarget.get(key(w.kind, w.name)) ?? [])];
  }

  pdbsFor(w: Workload): KubeObject[] {
    this.pdbSelectors ??= new SelectorIndex(
      this.kind('PodDisruptionBudget').map((p) => ({ selector: p.spec?.selector as LabelSelector | undefined, item: p })),
      labelSelectorRequirements,
      selectorMatches,
    );
    return this.pdbSelectors.matching(w.podLabels);
  }

  /** Services whose own labels a label selector (a ServiceMonitor's) picks. */
  servicesSelectedBy(sel: LabelSelector): KubeObject[] {
    this.serviceLabels ??= new LabelIndex(this.kind('Service'), (s) => s.metadata.labels ?? {});
    return this.serviceLabels.select(requiredByLabelSelector(sel), (labels) => selectorMatches(sel, labels));
  }

  /** Templates (not live Pods) whose pod labels pass `test`, which requires every pair of `required`. */
  templatesWithPodLabels(required: [string, unknown][], test: (podLabels: Record<string, string>) => boolean): Workload[] {
    this.templateLabels ??= new LabelIndex(this.templates(), (w) => w.podLabels);
    return this.templateLabels.select(required, test);
  }

  /** Data of the ConfigMaps mounted as volumes (or projected) into a workload's pods. */
  mountedConfigData(w: Workload): Record<string, string> {
    const out: Record<string, string> = {};
    for (const v of w.podSpec?.volumes ?? []) {
      const names: string[] = [];
      if (v.configMap?.name) names.push(v.configMap.name);
      for (const s of v.projected?.sources ?? []) if (s.configMap?.name) names.push(s.configMap.name);
      for (const n of names) Object.assign(out, this.get('ConfigMap', n)?.data ?? {});
    }
    return out;
  }

  /** Effective env of a container: literal values, ConfigMap refs resolved, secret refs marked. */
  env(c: Container): Map<string, { value?: string; secretRef?: string; fromConfigMap?: string }> {
    const m = new Map<string, { value?: string; secretRef?: string; fromConfigMap?: string }>();
    for (const ef of c.envFrom ?? []) {
      if (ef.configMapRef?.name) for (const [k, v] of Object.entries((this.get('ConfigMap', ef.configMapRef.name)?.data ?? {}) as Record<string, string>)) m.set(k, { value: v, fromConfigMap: ef.configMapRef.name });
      if (ef.secretRef?.name) m.set(`*${ef.secretRef.name}`, { secretRef: ef.secretRef.name });
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) m.set(e.name, { secretRef: `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}` });
      else if (e.valueFrom?.configMapKeyRef) {
        const cm = this.get('ConfigMap', e.valueFrom.configMapKeyRef.name);
        m.set(e.name, { value: cm?.data?.[e.valueFrom.configMapKeyRef.key], fromConfigMap: e.valueFrom.configMapKeyRef.name });
      } else m.set(e.name, { value: e.value ?? '' });
    }
    return m;
  }

  /** First main container's value of an env var across a component's workloads. */
  envOf(w: Workload, name: string): string | undefined {
    for (const c of containersOf(w.podSpec, false)) {
      const v = this.env(c).get(name);
      if (v) return v.value;
    }
    return undefined;
  }
}
