// Shared readers for the checks: config-file parsing (nats.conf, redis.conf), image references,
// volume resolution and the "which workloads talk to what" facts from Cordum's deployment docs.
import type { CheckContext, PartialResult } from '../model.js';
import { notCheckable } from '../model.js';
import { containersOf, type Component, type KubeObject, type ObjectIndex, type Workload } from '../objects.js';
import { backupJobs } from '../scripts.js';

/** Objects are needed; explain why not-checkable otherwise. */
export function needObjects(ctx: CheckContext): ObjectIndex | PartialResult {
  if (ctx.objects) return ctx.objects;
  return notCheckable(ctx.objectsUnavailable ?? 'no Kubernetes objects were available to read');
}

export function isResult(x: unknown): x is PartialResult {
  return !!x && typeof x === 'object' && 'status' in x && 'message' in x;
}

/** Components that read NATS / Redis / the kernel (deploy facts §1, §9). */
export const NATS_CLIENTS: Component[] = ['api-gateway', 'scheduler', 'workflow-engine'];
export const REDIS_CLIENTS: Component[] = ['api-gateway', 'scheduler', 'workflow-engine', 'context-engine', 'safety-kernel'];
export const KERNEL_CLIENTS: Component[] = ['api-gateway', 'scheduler'];

/** The single primary workload of a component (first Deployment/StatefulSet found). */
export function primary(idx: ObjectIndex, c: Component): Workload | undefined {
  return idx.component(c)[0];
}

export function ref(w: Workload): string {
  return `${w.kind}/${w.name}`;
}

/** nats.conf: text of the mounted config, or undefined. */
export function natsConf(idx: ObjectIndex, w: Workload): string | undefined {
  const data = idx.mountedConfigData(w);
  const k = Object.keys(data).find((x) => /nats.*\.conf$|\.conf$/.test(x));
  return k ? data[k] : undefined;
}

export function redisConf(idx: ObjectIndex, w: Workload): string | undefined {
  const data = idx.mountedConfigData(w);
  const k = Object.keys(data).find((x) => /redis.*\.conf$|\.conf$/.test(x));
  return k ? data[k] : undefined;
}

/** Parse redis.conf into directive → values (last one wins, `save` accumulates). */
export function parseRedisConf(text: string | undefined): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const raw of (text ?? '').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [k, ...rest] = line.split(/\s+/);
    const key = k.toLowerCase();
    const v = rest.join(' ').replace(/^"(.*)"$/, '$1');
    if (key === 'save') m.set(key, [...(m.get(key) ?? []), v]);
    else m.set(key, [v]);
  }
  return m;
}

/** Redis args given on the command line (`redis-server /etc/redis.conf --appendonly yes`). */
export function redisArgs(w: Workload): Map<string, string> {
  const m = new Map<string, string>();
  for (const c of containersOf(w.podSpec, false)) {
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--') && i + 1 < argv.length) m.set(argv[i].slice(2).toLowerCase(), argv[i + 1]);
  }
  return m;
}

/**
 * Minimal nats.conf reader: finds `name { ... }` blocks (brace-matched) and `key: value` / `key value`
 * scalars at a block's top level. Enough for jetstream/store_dir, tls/verify, cluster/routes.
 */
export function natsBlock(text: string | undefined, name: string): string | undefined {
  if (!text) return undefined;
  // Only blocks at this text's own level: `tls` inside `cluster` is not the top-level `tls`.
  const re = new RegExp(`\\b${name}\\s*[:=]?\\s*\\{`, 'g');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    if (depthAt(text, m.index) !== 0) continue;
    let depth = 0;
    const start = m.index + m[0].length;
    for (let i = start; i < text.length; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') {
        if (depth === 0) return text.slice(start, i);
        depth--;
      }
    }
  }
  return undefined;
}

function depthAt(text: string, pos: number): number {
  let d = 0;
  for (let i = 0; i < pos; i++) {
    if (text[i] === '{') d++;
    else if (text[i] === '}') d--;
    else if (text[i] === '#') while (i < pos && text[i] !== '\n') i++;
  }
  return d;
}

/** Strip nested blocks so scalar lookups only see the block's own level. */
function topLevel(text: string): string {
  let out = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
    else if (depth === 0) out += ch;
  }
  return out;
}

export function natsScalar(block: string | undefined, key: string): string | undefined {
  if (!block) return undefined;
  const m = new RegExp(`(^|\\n)\\s*${key}\\s*[:=]?\\s*("?)([^\\n"]+)\\2`, 'm').exec(topLevel(block));
  return m ? m[3].trim() : undefined;
}

export function natsRoutes(block: string | undefined): string[] {
  if (!block) return [];
  const m = /routes\s*[:=]?\s*\[([^\]]*)\]/m.exec(block);
  if (!m) return [];
  return m[1].split(/[\s,]+/).map((s) => s.replace(/^"|"$/g, '')).filter(Boolean);
}

/** The volume behind a path in a container (deepest mount at or above it). */
export function volumeForPath(w: Workload, containerName: string | undefined, path: string): { volume?: string; mountPath?: string } {
  let best: { volume?: string; mountPath?: string } = {};
  for (const c of containersOf(w.podSpec, false)) {
    if (containerName && c.name !== containerName) continue;
    for (const vm of c.volumeMounts ?? []) {
      const mp = vm.mountPath.replace(/\/$/, '');
      if ((path === mp || path.startsWith(mp + '/')) && (!best.mountPath || mp.length > best.mountPath.length)) best = { volume: vm.name, mountPath: mp };
    }
  }
  return best;
}

/** 'pvc' (volumeClaimTemplate or persistentVolumeClaim), 'emptyDir', other type or 'none'. */
export function volumeKind(w: Workload, volume: string | undefined): string {
  if (!volume) return 'none (container writable layer)';
  if ((w.obj.spec?.volumeClaimTemplates ?? []).some((t: { metadata?: { name?: string } }) => t.metadata?.name === volume)) return 'pvc';
  const v = (w.podSpec?.volumes ?? []).find((x: { name: string }) => x.name === volume);
  if (!v) return 'none (volume not declared)';
  if (v.persistentVolumeClaim) return 'pvc';
  if (v.emptyDir) return 'emptyDir';
  return Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
}

/** PVC claim name(s) behind a volume: `<tpl>-<sts>-<i>` for templates. */
export function claimNames(w: Workload, volume: string): string[] {
  if ((w.obj.spec?.volumeClaimTemplates ?? []).some((t: { metadata?: { name?: string } }) => t.metadata?.name === volume)) {
    return Array.from({ length: w.replicas }, (_, i) => `${volume}-${w.name}-${i}`);
  }
  const v = (w.podSpec?.volumes ?? []).find((x: { name: string }) => x.name === volume);
  return v?.persistentVolumeClaim?.claimName ? [v.persistentVolumeClaim.claimName] : [];
}

export interface ImageRef {
  raw: string;
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseImage(raw: string): ImageRef {
  const [nameTag, digest] = raw.split('@');
  const slash = nameTag.lastIndexOf('/');
  const colon = nameTag.lastIndexOf(':');
  const tag = colon > slash ? nameTag.slice(colon + 1) : undefined;
  const name = colon > slash ? nameTag.slice(0, colon) : nameTag;
  const first = name.split('/')[0];
  const registry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io';
  return { raw, registry, repository: name, tag, digest };
}

/**
 * The first cert-manager Certificate and the first ExternalSecret that produce each Secret name, read
 * once per index: asking per Secret by scanning every Certificate grew with Secrets x Certificates.
 */
type SecretProducers = { certificate: Map<unknown, KubeObject>; externalSecret: Map<unknown, KubeObject> };
const secretProducers = new WeakMap<ObjectIndex, SecretProducers>();

export function producersOf(idx: ObjectIndex): SecretProducers {
  let p = secretProducers.get(idx);
  if (p) return p;
  p = { certificate: new Map(), externalSecret: new Map() };
  for (const c of idx.kind('Certificate')) {
    const name = c.spec?.secretName;
    if (name != null && !p.certificate.has(name)) p.certificate.set(name, c);
  }
  for (const e of idx.kind('ExternalSecret')) {
    const name = e.spec?.target?.name ?? e.metadata.name;
    if (name != null && !p.externalSecret.has(name)) p.externalSecret.set(name, e);
  }
  secretProducers.set(idx, p);
  return p;
}

/** Workloads of the backup jobs (helpers/readiness/scripts.ts reads what their commands do). */
export function backupWorkloads(idx: ObjectIndex): { redis: Workload[]; nats: Workload[] } {
  const jobs = backupJobs(idx);
  return { redis: jobs.filter((j) => j.redisDumps.length).map((j) => j.workload), nats: jobs.filter((j) => j.natsBackups.length).map((j) => j.workload) };
}

export function parseDurationHours(v: string | undefined): number | undefined {
  if (!v) return undefined;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(h|m|s|ms)/g;
  let m: RegExpExecArray | null;
  let matched = false;
  while ((m = re.exec(v))) {
    matched = true;
    const n = Number(m[1]);
    total += m[2] === 'h' ? n : m[2] === 'm' ? n / 60 : m[2] === 's' ? n / 3600 : n / 3_600_000;
  }
  return matched ? total : undefined;
}

/**
 * HTTP paths a container serves on a port, from Cordum's deployment facts (§2): null when the
 * container is not one the audit knows (a sidecar, an exporter), [] when the port is not HTTP.
 * A path is served when it equals an entry or starts with an entry ending in `/`.
 */
export function servedPaths(image: string | undefined, component: Component | undefined, port: number): string[] | null {
  const repo = (image ?? '').split('@')[0].replace(/:[^/:]*$/, '').split('/').pop() ?? '';
  const tag = (image ?? '').split('@')[0].match(/:([^/:]+)$/)?.[1] ?? '';
  const cordum = (c: Component) => component === c && (repo === 'control-plane' || repo === `cordum-${c}` || tag.endsWith(`-${c}`) || repo.includes('cordum'));
  if (cordum('api-gateway')) return port === 8081 ? ['/health', '/api/'] : port === 9092 ? ['/metrics'] : port === 8080 ? [] : null;
  if (cordum('scheduler')) return port === 9090 ? ['/metrics'] : null;
  if (cordum('workflow-engine')) return port === 9093 ? ['/health'] : null;
  if (cordum('safety-kernel') || cordum('context-engine')) return port === 50051 || port === 50070 ? [] : null;
  if (repo === 'nats') return port === 8222 ? ['/varz', '/connz', '/routez', '/subsz', '/jsz', '/healthz', '/raftz', '/accountz', '/accstatz', '/gatewayz', '/leafz', '/ipqueuesz', '/expvarz', '/stacksz'] : port === 4222 || port === 6222 ? [] : null;
  if (repo === 'redis' || repo === 'redis-stack-server') return port === 6379 || port === 16379 ? [] : null;
  return null;
}

export function pathServed(paths: string[], path: string): boolean {
  const p = path.split('?')[0] || '/';
  return paths.some((x) => p === x || (x.endsWith('/') && p.startsWith(x)));
}

/** The container port behind a port number or name in a pod spec. */
export function containerPortOf(podSpec: any, port: number | string | undefined): { container: ReturnType<typeof containersOf>[number]; port: number } | undefined {
  for (const c of containersOf(podSpec, false))
    for (const p of c.ports ?? []) if (p.containerPort === port || (typeof port === 'string' && p.name === port) || (typeof port === 'string' && /^\d+$/.test(port) && p.containerPort === Number(port))) return { container: c, port: p.containerPort };
  if (typeof port === 'number') {
    const c = containersOf(podSpec, false)[0];
    if (c) return { container: c, port };
  }
  return undefined;
}
