// Builds the sandbox configuration from the same environment variables Cordum's services read,
// with Cordum's defaults. Parsing quirks are kept on purpose (only the first single-key variable
// counts, CSV keys use the second colon field, non-positive rate limits fall back to defaults),
// because runbooks rehearse against exactly those behaviours.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { SandboxConfig } from './types.js';
import { repoPath } from '../helpers/paths.js';

const CONFIG_DIR = repoPath('sandbox/config') + '/';

export const DEFAULTS = {
  tenant: 'default',
  rateLimitRps: 50,
  rateLimitBurst: 100,
  policyReloadMs: 30_000,
  schedulerConfigReloadMs: 30_000,
  workflowScanIntervalMs: 5_000,
  jobMetaTtlS: 7 * 24 * 3600,
  dataTtlS: 24 * 3600,
  artifactTtlS: { short: 24 * 3600, standard: 7 * 24 * 3600, audit: 30 * 24 * 3600 },
  timeouts: { dispatchTimeoutS: 300, runningTimeoutS: 9000, scanIntervalS: 30 },
  packCatalog: { id: 'official', url: 'https://packs.cordum.io/catalog.json' },
} as const;

type Env = Record<string, string | undefined>;

/** Stock file text (sandbox/config/<name>). */
export function stockConfigText(name: 'safety.yaml' | 'pools.yaml' | 'timeouts.yaml'): string {
  return readFileSync(CONFIG_DIR + name, 'utf8');
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go time.ParseDuration ("30s", "1h30m", "500ms", "1.5s"); returns milliseconds or undefined when invalid. */
export function parseGoDuration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let s = text.trim();
  if (!s) return undefined;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  let total = 0;
  while (s.length) {
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** Strip surrounding whitespace and any leading/trailing quote characters, as Cordum does for keys. */
export function normaliseKey(v: string | undefined): string {
  return (v ?? '').trim().replace(/^["']+/, '').replace(/["']+$/, '').trim();
}

/** CORDUM_API_KEYS in its JSON forms ([{"key"}], {"k":{}}, {"keys":[{"key"}]}) or CSV (`key` or `a:key[:...]`). */
export function parseApiKeysVar(raw: string | undefined): string[] {
  const text = (raw ?? '').trim();
  if (!text) return [];
  if (text.startsWith('[') || text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      const fromList = (list: unknown) =>
        Array.isArray(list) ? list.map((e) => normaliseKey(typeof e === 'string' ? e : (e as { key?: string })?.key)) : [];
      if (Array.isArray(parsed)) return fromList(parsed).filter(Boolean);
      if (parsed && typeof parsed === 'object') {
        const obj = parsed as Record<string, unknown>;
        if (Array.isArray(obj.keys)) return fromList(obj.keys).filter(Boolean);
        return Object.keys(obj).map(normaliseKey).filter(Boolean);
      }
    } catch {
      // Not JSON after all: fall through to the CSV form.
    }
  }
  return text
    .split(',')
    .map((item) => {
      const parts = item.trim().split(':');
      // `tenant:key:role:principal` -> only the second field is the key in the OSS gateway.
      return normaliseKey(parts.length > 1 ? parts[1] : parts[0]);
    })
    .filter(Boolean);
}

/** All configured keys: CORDUM_API_KEYS plus the first non-empty single-key variable. */
export function parseApiKeys(env: Env): string[] {
  const keys = parseApiKeysVar(env.CORDUM_API_KEYS);
  for (const name of ['CORDUM_SUPER_SECRET_API_TOKEN', 'CORDUM_API_KEY', 'API_KEY']) {
    const k = normaliseKey(env[name]);
    if (k) {
      keys.push(k);
      break; // only one of the three counts
    }
  }
  return [...new Set(keys)];
}

function positiveInt(v: string | undefined, fallback: number): number {
  const t = (v ?? '').trim();
  if (!/^\d+$/.test(t)) return fallback;
  const n = Number(t);
  return n > 0 ? n : fallback;
}

/** `<NAME>` as a Go duration wins over `<NAME>_SECONDS`; both must be positive. Result in seconds. */
function ttlSeconds(env: Env, name: string, fallbackS: number): number {
  const d = parseGoDuration(env[name]);
  if (d !== undefined && d > 0) return Math.max(1, Math.round(d / 1000));
  const s = positiveInt(env[`${name}_SECONDS`], 0);
  return s > 0 ? s : fallbackS;
}

function durationMs(env: Env, name: string, fallbackMs: number): number {
  const d = parseGoDuration(env[name]);
  return d !== undefined && d > 0 ? d : fallbackMs;
}

function parseOrigins(env: Env): string[] | undefined {
  for (const name of ['CORDUM_ALLOWED_ORIGINS', 'CORDUM_CORS_ALLOW_ORIGINS', 'CORS_ALLOW_ORIGINS']) {
    const v = (env[name] ?? '').trim();
    if (!v) continue;
    const list = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (list.length) return list;
  }
  return undefined;
}

/** pools.yaml: topic values may be a single pool name or a list. */
export function parsePools(yamlText: string): SandboxConfig['pools'] {
  const doc = (parseYaml(yamlText) ?? {}) as { topics?: Record<string, string | string[]>; pools?: Record<string, { requires?: string[] }> };
  const topics: Record<string, string[]> = {};
  for (const [topic, v] of Object.entries(doc.topics ?? {})) topics[topic] = Array.isArray(v) ? v.map(String) : [String(v)];
  const pools: Record<string, { requires?: string[] }> = {};
  for (const [name, p] of Object.entries(doc.pools ?? {})) pools[name] = { requires: (p?.requires ?? []).map(String) };
  return { topics, pools };
}

/** timeouts.yaml reconciler section; all-zero or absent -> 300/9000/30, partial -> Cordum's code fallbacks 120/300/30. */
export function parseTimeouts(yamlText: string): SandboxConfig['timeouts'] {
  const doc = (parseYaml(yamlText) ?? {}) as { reconciler?: Record<string, number> };
  const r = doc.reconciler ?? {};
  const d = Number(r.dispatch_timeout_seconds) || 0;
  const run = Number(r.running_timeout_seconds) || 0;
  const scan = Number(r.scan_interval_seconds) || 0;
  if (!d && !run && !scan) return { ...DEFAULTS.timeouts };
  return { dispatchTimeoutS: d || 120, runningTimeoutS: run || 300, scanIntervalS: scan || 30 };
}

export function buildConfig(env: Env = process.env, overrides: Partial<SandboxConfig> = {}): SandboxConfig {
  const cfg: SandboxConfig = {
    tenant: (env.TENANT_ID ?? '').trim() || DEFAULTS.tenant,
    apiKeys: parseApiKeys(env),
    rateLimit: {
      rps: positiveInt(env.API_RATE_LIMIT_RPS, DEFAULTS.rateLimitRps),
      burst: positiveInt(env.API_RATE_LIMIT_BURST, DEFAULTS.rateLimitBurst),
    },
    allowedOrigins: parseOrigins(env),
    policyReloadMs: durationMs(env, 'SAFETY_POLICY_RELOAD_INTERVAL', DEFAULTS.policyReloadMs),
    policyFileYaml: stockConfigText('safety.yaml'),
    pools: parsePools(stockConfigText('pools.yaml')),
    timeouts: parseTimeouts(stockConfigText('timeouts.yaml')),
    schedulerConfigReloadMs: durationMs(env, 'SCHEDULER_CONFIG_RELOAD_INTERVAL', DEFAULTS.schedulerConfigReloadMs),
    workflowScanIntervalMs: durationMs(env, 'WORKFLOW_ENGINE_SCAN_INTERVAL', DEFAULTS.workflowScanIntervalMs),
    jobMetaTtlS: ttlSeconds(env, 'JOB_META_TTL', DEFAULTS.jobMetaTtlS),
    dataTtlS: ttlSeconds(env, 'REDIS_DATA_TTL', DEFAULTS.dataTtlS),
    artifactTtlS: {
      short: ttlSeconds(env, 'ARTIFACT_TTL_SHORT', DEFAULTS.artifactTtlS.short),
      standard: ttlSeconds(env, 'ARTIFACT_TTL_STANDARD', DEFAULTS.artifactTtlS.standard),
      audit: ttlSeconds(env, 'ARTIFACT_TTL_AUDIT', DEFAULTS.artifactTtlS.audit),
    },
    build: { version: 'dev', commit: 'unknown', date: 'unknown' },
    packCatalog: {
      id: (env.CORDUM_PACK_CATALOG_ID ?? '').trim() || DEFAULTS.packCatalog.id,
      title: (env.CORDUM_PACK_CATALOG_TITLE ?? '').trim(),
      url: (env.CORDUM_PACK_CATALOG_URL ?? '').trim() || DEFAULTS.packCatalog.url,
      enabled: !/^(1|true|yes|y|on)$/i.test((env.CORDUM_PACK_CATALOG_DEFAULT_DISABLED ?? '').trim()),
    },
  };
  return { ...cfg, ...overrides };
}
