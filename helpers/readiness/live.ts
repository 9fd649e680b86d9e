// Live collectors: each reads one system (Kubernetes, Redis, NATS, the gateway, metrics endpoints,
// the drill history) under its own deadline. A failure never throws out of the audit: it becomes a
// Probe {ok:false, reason} that the checks report as "not checkable".
import { readFileSync, existsSync } from 'node:fs';
import { readTlsFiles } from '../files.js';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Agent, fetch, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { errorMessage } from '../errors.js';
import { drillHistoryFile } from '../backup/history.js';
import type { TargetProfile } from '../profile-types.js';
import { createKube, type KubeOptions } from '../kube.js';
import { historyFile as runHistoryFile, readRunHistory } from '../history.js';
import { reportsRoot } from '../report/run-contract.js';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import type { KubeObject } from './objects.js';
import type { TlsRef } from '../profile-types.js';
import { probeHttpsEndpoint, probeNatsEndpoint, probeRedisEndpoint, sampleRetention, type RetentionFacts, type TlsEndpointFacts } from './live-endpoints.js';

export type Probe<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface StreamFacts {
  storage: string;
  num_replicas: number;
  max_age_ns?: number;
  messages?: number;
  /** false when any cluster replica is not current; null when the stream is not clustered. */
  replicas_current: boolean | null;
}

export interface DrillRecord {
  kind: string;
  target?: string;
  finished_at: string;
  status: string;
}

/** One recorded runbook run of the target (from reports/.history/<target>.runs.jsonl). */
export interface RunRecord {
  runbook: string;
  target?: string;
  status: string;
  end: string;
}

/** A CustomResourceDefinition the API server lists: its name, group and kind. */
export interface CrdFact {
  name: string;
  group: string;
  kind: string;
}

/** What the rate-limit probe sent and how fast it got there (see probeRateLimit). */
export interface RateLimitFacts {
  sent: number;
  first429At: number | null;
  burst: number;
  /** Refill the limiter is configured with (tokens per second). */
  rps: number;
  cap: number;
  statuses: Record<string, number>;
  /** From the first request sent to the last answer. */
  elapsedMs: number;
  /** The request rate the probe reached: sent / elapsed. */
  achievedRps: number;
  /**
   * Gateway replicas behind the URL, each with its own bucket (from the gateway workload); absent
   * when no Kubernetes objects were read (one is assumed).
   */
  replicas?: number;
  /**
   * The most limiters of this burst and refill can let through in that time (replicas x (burst +
   * rps x elapsed)): a probe that sent no more than this proves nothing when no 429 came.
   */
  allowance: number;
}

export interface LiveFacts {
  targetName?: string;
  /** `cluster` is CLUSTER INFO as key → value, or null when the server has cluster support disabled. */
  redis?: Probe<{ config: Record<string, string>; persistence: Record<string, string>; cluster?: Record<string, string> | null; retention?: RetentionFacts | { error: string } }>;
  nats?: Probe<{ streams: Record<string, StreamFacts | null>; server: { version?: string; cluster?: string; jetstream?: boolean } }>;
  gatewayStatus?: Probe<{ status: number; body: unknown }>;
  defaultKey?: Probe<{ status: number }>;
  rateLimit?: Probe<RateLimitFacts>;
  metrics?: { gateway?: Probe<MetricsFacts>; scheduler?: Probe<MetricsFacts> };
  /** GET of the profile's workflow_engine.health_url. */
  workflowHealth?: Probe<{ status: number; body: string }>;
  /** GET /api/v1/status with no API key at all. */
  noKey?: Probe<{ status: number }>;
  /** TLS on the endpoints the profile names. */
  tlsEndpoints?: { gateway?: Probe<TlsEndpointFacts>; nats?: Probe<TlsEndpointFacts>; redis?: Probe<TlsEndpointFacts> };
  drills?: { file: string; records: DrillRecord[]; error?: string };
  /** The target's run history (functional runbooks); absent when no target name is known. */
  runs?: { file: string; target: string; records: RunRecord[]; error?: string };
  /** CRDs installed in the cluster (cluster-scoped list; may be forbidden). */
  crds?: Probe<CrdFact[]>;
  kubeSkipped?: { kind: string; reason: string }[];
  /** Secrets read one by one (when listing is not allowed): name → read, missing (404) or forbidden. */
  secretReads?: Record<string, 'read' | 'missing' | 'forbidden'>;
}

/** The TLS Secrets the objects reference (volumes, Ingress TLS), plus the production layout's four. */
export function tlsSecretNames(objects: KubeObject[]): string[] {
  const names = new Set(['cordum-nats-server-tls', 'cordum-redis-server-tls', 'cordum-client-tls', 'cordum-ingress-tls']);
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    // A volume or Ingress TLS entry names its Secret in secretName; a projected volume source in
    // secret.name. A volume's own name is not a Secret's name (cordum-tls mounts cordum-client-tls).
    if (typeof o.secretName === 'string' && /-tls$/.test(o.secretName)) names.add(o.secretName);
    const projected = o.secret as Record<string, unknown> | undefined;
    if (projected && typeof projected === 'object' && typeof projected.name === 'string' && /-tls$/.test(projected.name)) names.add(projected.name);
    Object.values(o).forEach(walk);
  };
  for (const o of objects) if (['Deployment', 'StatefulSet', 'Job', 'CronJob', 'DaemonSet', 'Ingress'].includes(o.kind)) walk(o.spec);
  return [...names];
}

async function readTlsSecrets(k: ReturnType<typeof createKube>, namespace: string, objects: KubeObject[]): Promise<{ objects: KubeObject[]; reads: Record<string, 'read' | 'missing' | 'forbidden'> }> {
  const found: KubeObject[] = [];
  const reads: Record<string, 'read' | 'missing' | 'forbidden'> = {};
  for (const name of tlsSecretNames(objects)) {
    try {
      const s = await k.core.readNamespacedSecret({ name, namespace });
      found.push({ ...(s as unknown as KubeObject), apiVersion: 'v1', kind: 'Secret' });
      reads[name] = 'read';
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === undefined) throw err;
      reads[name] = code === 404 ? 'missing' : 'forbidden';
    }
  }
  return { objects: found, reads };
}

export interface MetricsFacts {
  status: number;
  hasGoSeries: boolean;
  /** cordum_* metric families with at least one sample. */
  cordumFamilies: string[];
}

/** Run `fn` with a deadline; timeouts and errors become a failed Probe. */
export async function bounded<T>(what: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<Probe<T>> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Probe<T>>((resolve) => {
    timer = setTimeout(() => {
      ac.abort();
      resolve({ ok: false, reason: `${what} timed out after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  try {
    return await Promise.race([fn(ac.signal).then((value) => ({ ok: true as const, value })), timeout]);
  } catch (err) {
    return { ok: false, reason: `${what}: ${errorMessage(err).split('\n')[0]}` };
  } finally {
    clearTimeout(timer);
  }
}

function tlsFromRef(t: { ca_file?: string; cert_file?: string; key_file?: string; server_name?: string; insecure_skip_verify?: boolean } | undefined) {
  if (!t) return undefined;
  return {
    ...readTlsFiles(t, 'target profile tls'),
    servername: t.server_name,
    rejectUnauthorized: !t.insecure_skip_verify,
  };
}

/** `key:value` lines of INFO / CLUSTER INFO. */
function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export async function probeRedis(url: string, opts: { password?: string; username?: string; tls?: ReturnType<typeof tlsFromRef>; timeoutMs: number }): Promise<LiveFacts['redis']> {
  return bounded('redis', opts.timeoutMs, async () => {
    const r = new Redis(url, { lazyConnect: true, connectTimeout: opts.timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, password: opts.password, username: opts.username, tls: opts.tls });
    r.on('error', () => undefined); // reported through the awaited command instead
    try {
      await r.connect();
      const config: Record<string, string> = {};
      for (const k of ['appendonly', 'save', 'dir', 'appendfsync']) {
        const pair = (await r.call('CONFIG', 'GET', k)) as string[];
        config[k] = pair[1] ?? '';
      }
      const persistence = parseInfo(String(await r.info('persistence')));
      let cluster: Record<string, string> | null = null;
      try {
        cluster = parseInfo(String(await r.call('CLUSTER', 'INFO')));
      } catch (err) {
        // "ERR This instance has cluster support disabled": a standalone server, not an error.
        if (!/cluster support disabled/i.test(errorMessage(err))) throw err;
      }
      // Retention is sampled on the node the profile names (in a cluster: that node's keys).
      const retention = await sampleRetention(r).catch((err) => ({ error: errorMessage(err).split('\n')[0] }));
      return { config, persistence, cluster, retention };
    } finally {
      r.disconnect();
    }
  });
}

export async function probeNats(url: string, opts: { token?: string; user?: string; pass?: string; timeoutMs: number; streams?: string[]; tls?: TlsRef }): Promise<LiveFacts['nats']> {
  return bounded('nats', opts.timeoutMs, async () => {
    const t = opts.tls;
    const tls = t ? { ...(t.ca_file ? { caFile: t.ca_file } : {}), ...(t.cert_file ? { certFile: t.cert_file } : {}), ...(t.key_file ? { keyFile: t.key_file } : {}), ...(t.insecure_skip_verify ? { rejectUnauthorized: false } : {}) } : undefined;
    const nc = await connect({ servers: url, timeout: opts.timeoutMs, token: opts.token, user: opts.user, pass: opts.pass, reconnect: false, ...(tls ? { tls } : {}) });
    try {
      const jsm = await jetstreamManager(nc, { timeout: opts.timeoutMs });
      const streams: Record<string, StreamFacts | null> = {};
      for (const name of opts.streams ?? ['CORDUM_SYS', 'CORDUM_JOBS']) {
        try {
          const si = await jsm.streams.info(name);
          const reps = si.cluster?.replicas ?? [];
          streams[name] = { storage: String(si.config.storage), num_replicas: si.config.num_replicas, max_age_ns: si.config.max_age, messages: si.state.messages, replicas_current: reps.length ? reps.every((r) => r.current) : null };
        } catch (err) {
          if (/not found/i.test(errorMessage(err))) streams[name] = null;
          else throw err;
        }
      }
      const info = nc.info;
      return { streams, server: { version: info?.version, cluster: info?.cluster, jetstream: info?.jetstream } };
    } finally {
      await nc.close().catch(() => undefined);
    }
  });
}

/** Bodies the live probes read (status JSON, metrics pages, health text) are cut at this size. */
export const MAX_PROBE_BODY_BYTES = 4 * 1024 * 1024;

async function get(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers, signal });
  return { status: res.status, text: await readCapped(res, MAX_PROBE_BODY_BYTES) };
}

/** What readCapped needs of a body reader (undici's and the global fetch's both fit). */
interface ByteReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

/**
 * The body as text, at most `maxBytes` of it: reading stops (and the rest is cancelled) once the cap
 * is reached, so a server that streams without end cannot fill memory.
 */
export async function readCapped(res: { body: { getReader(): ByteReader } | null }, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done || !value) break;
      const room = maxBytes - size;
      const chunk = value.byteLength > room ? value.subarray(0, room) : value;
      chunks.push(chunk);
      size += chunk.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return new TextDecoder().decode(Buffer.concat(chunks)).replace(/\uFFFD$/, '');
}

function agentFor(t: TlsRef | undefined): Agent | undefined {
  if (!t) return undefined;
  return new Agent({ connect: { ...readTlsFiles(t, 'target profile tls'), servername: t.server_name, rejectUnauthorized: !t.insecure_skip_verify } });
}

export async function probeGatewayStatus(base: string, apiKey: string | undefined, timeoutMs: number): Promise<LiveFacts['gatewayStatus']> {
  return bounded('gateway status', timeoutMs, async (signal) => {
    const r = await get(new URL('/api/v1/status', base).toString(), apiKey ? { 'X-API-Key': apiKey } : {}, signal);
    let body: unknown = r.text;
    try {
      body = JSON.parse(r.text);
    } catch {
      /* keep text */
    }
    return { status: r.status, body };
  });
}

export async function probeNoKey(base: string, timeoutMs: number): Promise<LiveFacts['noKey']> {
  return bounded('no-key probe', timeoutMs, async (signal) => ({ status: (await get(new URL('/api/v1/status', base).toString(), {}, signal)).status }));
}

export async function probeDefaultKey(base: string, timeoutMs: number): Promise<LiveFacts['defaultKey']> {
  return bounded('default-key probe', timeoutMs, async (signal) => ({ status: (await get(new URL('/api/v1/status', base).toString(), { 'X-API-Key': 'super-secret-key' }, signal)).status }));
}

/**
 * Sends up to burst + extra GET /api/v1/status, many in flight, and stops at the first 429, or as
 * soon as more requests were answered than a working limiter lets through in the time so far (the
 * answers prove it missing), or at burst + extra. The bucket refills (`rps` tokens/s, Cordum's
 * default 50) while we send, so requests go out concurrently; still, behind a slow link the probe
 * may not outpace the refill. It measures the rate it reached, and the facts say how many requests a
 * working limiter could have let through in that time (`allowance`): no 429 within the allowance
 * proves nothing either way. `extra` leaves room for a slower link (or a busy machine) to get past
 * the allowance; a working limiter stops the probe at its burst, a fast one without a limiter as
 * soon as it is proven.
 * Refusing non-loopback targets is the caller's job (the profile names the gateway explicitly).
 */
/** Requests past the burst the rate-limit probe may send at most (see probeRateLimit). */
export const RATE_LIMIT_EXTRA_REQUESTS = 200;

export async function probeRateLimit(
  base: string,
  apiKey: string | undefined,
  burst: number,
  extra: number,
  timeoutMs: number,
  opts: { concurrency?: number; rps?: number; replicas?: number } = {},
): Promise<LiveFacts['rateLimit']> {
  const concurrency = opts.concurrency ?? 64;
  const rps = opts.rps ?? DEFAULT_RATE_LIMIT_RPS;
  const pods = opts.replicas ?? 1;
  return bounded('rate-limit probe', timeoutMs, async (signal) => {
    const cap = burst + extra;
    const url = new URL('/api/v1/status', base).toString();
    const headers: Record<string, string> = apiKey ? { 'X-API-Key': apiKey } : {};
    let sent = 0;
    let answered = 0;
    let first429At: number | null = null;
    let lastAnswerAt = 0;
    const statuses: Record<string, number> = {};
    const startedAt = performance.now();
    const allowanceNow = () => pods * (burst + (rps * (performance.now() - startedAt)) / 1000);
    const worker = async () => {
      while (first429At === null && sent < cap && answered <= allowanceNow() && !signal.aborted) {
        sent++;
        const res = await fetch(url, { headers, signal });
        await res.body?.cancel();
        lastAnswerAt = performance.now();
        // Counted in the order answers arrive: with many in flight, send order says nothing.
        const n = ++answered;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 429 && first429At === null) first429At = n;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, cap) }, worker));
    const elapsedMs = Math.max(1, Math.round((lastAnswerAt || performance.now()) - startedAt));
    const achievedRps = Math.round((answered / (elapsedMs / 1000)) * 10) / 10;
    const allowance = Math.floor(pods * (burst + (rps * elapsedMs) / 1000));
    return { sent, first429At, burst, rps, cap, statuses, elapsedMs, achievedRps, allowance, ...(opts.replicas !== undefined ? { replicas: opts.replicas } : {}) };
  });
}

export async function probeMetrics(url: string, timeoutMs: number): Promise<Probe<MetricsFacts>> {
  return bounded(`metrics ${url}`, timeoutMs, async (signal) => {
    const r = await get(url, {}, signal);
    const families = new Set<string>();
    for (const m of r.text.matchAll(/^(cordum_[a-zA-Z0-9_]+?)(?:_bucket|_sum|_count)?(?:\{[^}]*\})?\s+\S+/gm)) families.add(m[1]);
    return { status: r.status, hasGoSeries: /^(go_|promhttp_|process_)/m.test(r.text), cordumFamilies: [...families].sort() };
  });
}

export async function probeHealth(url: string, timeoutMs: number): Promise<Probe<{ status: number; body: string }>> {
  return bounded(`health ${url}`, timeoutMs, async (signal) => {
    const r = await get(url, {}, signal);
    return { status: r.status, body: r.text.trim().slice(0, 200) };
  });
}

export function readDrillHistory(file: string): NonNullable<LiveFacts['drills']> {
  if (!existsSync(file)) return { file, records: [] };
  const records: DrillRecord[] = [];
  const bad: number[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      try {
        const r = JSON.parse(line) as DrillRecord;
        if (r && typeof r.finished_at === 'string' && !Number.isNaN(Date.parse(r.finished_at))) records.push(r);
        else bad.push(i + 1);
      } catch {
        bad.push(i + 1);
      }
    });
  return { file, records, error: bad.length ? `unparsable lines: ${bad.join(', ')}` : undefined };
}

/** The target's recorded runs (helpers/history.ts), reduced to what the functional-tests check reads. */
export async function readTargetRuns(reportsDir: string, target: string): Promise<NonNullable<LiveFacts['runs']>> {
  const file = runHistoryFile(reportsDir, target);
  try {
    const runs = await readRunHistory(reportsDir, target);
    return { file, target, records: runs.filter((r) => r.target === target).map((r) => ({ runbook: r.runbook, target: r.target, status: r.status, end: r.end })) };
  } catch (err) {
    return { file, target, records: [], error: errorMessage(err).split('\n')[0] };
  }
}

export interface CollectOptions {
  profile?: TargetProfile;
  kube?: KubeOptions | false;
  /** Override profile URLs (tests). */
  redisUrl?: string;
  natsUrl?: string;
  gatewayUrl?: string;
  apiKey?: string;
  /** Burst to probe against; default from the gateway env read from Kubernetes, else 100. */
  burst?: number;
  /** Refill (tokens/s) the limiter is judged against; default from the gateway env, else 50. */
  rps?: number;
  extraRequests?: number;
  timeoutMs?: number;
  historyFile?: string;
  /** Reports root holding the run history (default reportsRoot(): RUNBOOK_REPORTS_DIR or <repo>/reports). */
  reportsDir?: string;
  /** Target name for the run history when no profile is given (tests). */
  target?: string;
  skipRateLimit?: boolean;
  /** Override the profile's TLS material per endpoint (tests). */
  tls?: { gateway?: TlsRef; nats?: TlsRef; redis?: TlsRef };
  /** Override the profile's metrics and health URLs (tests). */
  metricsUrls?: { gateway?: string; scheduler?: string };
  workflowHealthUrl?: string;
}

/** Cordum's API_RATE_LIMIT_RPS default. */
export const DEFAULT_RATE_LIMIT_RPS = 50;

/** The gateway's limiter as configured in the objects read from Kubernetes. */
export type LimiterFromObjects = (objects: KubeObject[]) => { burst: number; rps: number; replicas?: number };

export interface Collected {
  facts: LiveFacts;
  objects?: KubeObject[];
  objectsUnavailable?: string;
  namespace?: string;
}

export async function collectLive(opts: CollectOptions, limiterFromObjects?: LimiterFromObjects): Promise<Collected> {
  const p = opts.profile;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const facts: LiveFacts = { targetName: opts.target ?? p?.name };
  const out: Collected = { facts, namespace: opts.kube ? (opts.kube.namespace ?? p?.kube?.namespace) : p?.kube?.namespace };

  const kubeTask = (async () => {
    if (opts.kube === false || (!opts.kube && !p?.kube)) {
      out.objectsUnavailable = 'no Kubernetes access configured (profile has no kube section)';
      return;
    }
    const r = await bounded('kubernetes', timeoutMs, async () => {
      const k = createKube(p, opts.kube || {});
      out.namespace = k.namespace;
      return k.listAll();
    });
    if (r.ok) {
      out.objects = r.value.objects as KubeObject[];
      facts.kubeSkipped = r.value.skipped;
      // The readiness Role may not list Secrets (least privilege): read the TLS Secrets by name.
      if (r.value.skipped.some((x) => x.kind === 'Secret')) {
        const named = await bounded('read TLS Secrets', timeoutMs, () => readTlsSecrets(createKube(p, opts.kube || {}), out.namespace!, out.objects!));
        if (named.ok) {
          out.objects.push(...named.value.objects);
          facts.secretReads = named.value.reads;
        }
      }
      // CRDs are cluster-scoped: a namespaced reader may be forbidden, which leaves the check not-checkable.
      facts.crds = await bounded('list CustomResourceDefinitions', timeoutMs, async () => {
        const api = createKube(p, opts.kube || {}).kc.makeApiClient(ApiextensionsV1Api);
        const list = await api.listCustomResourceDefinition();
        return (list.items ?? []).map((c) => ({ name: c.metadata?.name ?? '', group: c.spec.group, kind: c.spec.names.kind }));
      });
    } else out.objectsUnavailable = r.reason;
  })();

  const tlsRefs = { gateway: opts.tls?.gateway ?? p?.gateway.tls, nats: opts.tls?.nats ?? p?.nats?.tls, redis: opts.tls?.redis ?? p?.redis?.tls };
  // HTTPS probes trust the profile's CA (gateway.tls): installed as undici's global dispatcher for
  // the length of the collection, so every HTTP probe (rate limit included) uses it.
  const agent = agentFor(tlsRefs.gateway);
  const previousDispatcher = getGlobalDispatcher();
  if (agent) setGlobalDispatcher(agent);
  try {
    return await collectWith(opts, p, facts, out, { tlsRefs, kubeTask, timeoutMs, limiterFromObjects });
  } finally {
    if (agent) {
      setGlobalDispatcher(previousDispatcher);
      await agent.close();
    }
  }
}

async function collectWith(opts: CollectOptions, p: TargetProfile | undefined, facts: LiveFacts, out: Collected, c: { tlsRefs: { gateway?: TlsRef; nats?: TlsRef; redis?: TlsRef }; kubeTask: Promise<void>; timeoutMs: number; limiterFromObjects?: LimiterFromObjects }): Promise<Collected> {
  const { tlsRefs, kubeTask, timeoutMs, limiterFromObjects } = c;
  const env = (name?: string) => (name ? process.env[name] : undefined);
  const redisUrl = opts.redisUrl ?? p?.redis?.url;
  const natsUrl = opts.natsUrl ?? p?.nats?.url;
  const gatewayUrl = opts.gatewayUrl ?? p?.gateway.url;
  const apiKey = opts.apiKey ?? env(p?.gateway.api_key_env);
  const now = new Date();
  const tasks: Promise<unknown>[] = [kubeTask];
  if (redisUrl) tasks.push(probeRedis(redisUrl, { password: env(p?.redis?.password_env), username: p?.redis?.username, tls: tlsFromRef(tlsRefs.redis), timeoutMs }).then((r) => (facts.redis = r)));
  if (natsUrl) tasks.push(probeNats(natsUrl, { token: env(p?.nats?.token_env), user: p?.nats?.user, pass: env(p?.nats?.password_env), timeoutMs, tls: tlsRefs.nats }).then((r) => (facts.nats = r)));
  // TLS on each endpoint the profile names (checklist 3.1–3.3, live).
  const tlsEndpoints: NonNullable<LiveFacts['tlsEndpoints']> = {};
  if (gatewayUrl) tasks.push(bounded('gateway TLS', timeoutMs, () => probeHttpsEndpoint(gatewayUrl, tlsRefs.gateway, timeoutMs, now)).then((r) => (tlsEndpoints.gateway = r)));
  if (natsUrl) tasks.push(bounded('NATS TLS', timeoutMs, () => probeNatsEndpoint(natsUrl, tlsRefs.nats, timeoutMs, now)).then((r) => (tlsEndpoints.nats = r)));
  if (redisUrl) tasks.push(bounded('Redis TLS', timeoutMs, () => probeRedisEndpoint(redisUrl, tlsRefs.redis, timeoutMs, now)).then((r) => (tlsEndpoints.redis = r)));
  facts.tlsEndpoints = tlsEndpoints;
  const healthUrl = opts.workflowHealthUrl ?? p?.workflow_engine?.health_url;
  if (healthUrl) tasks.push(probeHealth(healthUrl, timeoutMs).then((r) => (facts.workflowHealth = r)));
  facts.drills = readDrillHistory(opts.historyFile ?? drillHistoryFile());
  const target = opts.target ?? p?.name;
  if (target) tasks.push(readTargetRuns(opts.reportsDir ?? reportsRoot(), target).then((r) => (facts.runs = r)));
  await Promise.all(tasks);

  // Metrics are read after the gateway has served the status probe (its request counter exists
  // only once it counted something), before the rate-limit burst.
  const metrics: NonNullable<LiveFacts['metrics']> = {};
  facts.metrics = metrics;
  const metricsUrls = { gateway: opts.metricsUrls?.gateway ?? p?.metrics?.gateway, scheduler: opts.metricsUrls?.scheduler ?? p?.metrics?.scheduler };
  const probeAllMetrics = async () => {
    await Promise.all([
      metricsUrls.gateway ? probeMetrics(metricsUrls.gateway, timeoutMs).then((r) => (metrics.gateway = r)) : undefined,
      metricsUrls.scheduler ? probeMetrics(metricsUrls.scheduler, timeoutMs).then((r) => (metrics.scheduler = r)) : undefined,
    ]);
  };
  // Gateway probes run after the others, in order: status and default key before the burst,
  // so the rate-limit probe's 429s do not spill into them.
  if (gatewayUrl) {
    const status = await probeGatewayStatus(gatewayUrl, apiKey, timeoutMs);
    facts.gatewayStatus = status;
    // When the configured key IS the default one, its status answer already tells whether it works.
    facts.defaultKey = apiKey === 'super-secret-key' && status?.ok ? { ok: true, value: { status: status.value.status } } : await probeDefaultKey(gatewayUrl, timeoutMs);
    facts.noKey = await probeNoKey(gatewayUrl, timeoutMs);
    await probeAllMetrics();
    if (!opts.skipRateLimit) {
      const configured = out.objects && limiterFromObjects ? limiterFromObjects(out.objects) : undefined;
      const burst = opts.burst ?? configured?.burst ?? 100;
      const rps = opts.rps ?? configured?.rps ?? DEFAULT_RATE_LIMIT_RPS;
      // Each gateway replica has its own bucket: the allowance counts them all. The load bound stays
      // burst + extra; with many replicas that may be too few to judge, which the check then says.
      const replicas = configured?.replicas;
      facts.rateLimit = await probeRateLimit(gatewayUrl, apiKey, burst, opts.extraRequests ?? RATE_LIMIT_EXTRA_REQUESTS, timeoutMs * 3, { rps, ...(replicas !== undefined ? { replicas } : {}) });
    }
  } else await probeAllMetrics();
  return out;
}
