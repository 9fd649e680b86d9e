import { describe, expect, it } from 'vitest';
import { buildConfig, parseApiKeys, parseApiKeysVar, parseGoDuration, parsePools, parseTimeouts, stockConfigText } from '../../sandbox/config.js';
import { parseFaults } from '../../sandbox/faults.js';
import { parse } from 'yaml';

describe('sandbox config from Cordum env vars', () => {
  it('has Cordum defaults with an empty environment', () => {
    const c = buildConfig({});
    expect(c.tenant).toBe('default');
    expect(c.apiKeys).toEqual([]);
    expect(c.rateLimit).toEqual({ rps: 50, burst: 100 });
    expect(c.allowedOrigins).toBeUndefined();
    expect(c.policyReloadMs).toBe(30_000);
    expect(c.workflowScanIntervalMs).toBe(5_000);
    expect(c.jobMetaTtlS).toBe(7 * 24 * 3600);
    expect(c.dataTtlS).toBe(24 * 3600);
    expect(c.artifactTtlS).toEqual({ short: 86400, standard: 604800, audit: 2592000 });
    expect(c.timeouts).toEqual({ dispatchTimeoutS: 300, runningTimeoutS: 9000, scanIntervalS: 30 });
    expect(c.pools).toEqual({ topics: { 'job.default': ['default'] }, pools: { default: { requires: [] } } });
  });

  it('stock policy: tenant default allows job.* and has no rules', () => {
    const doc = parse(buildConfig({}).policyFileYaml);
    expect(doc.rules).toBeUndefined();
    expect(doc.tenants.default.allow_topics).toEqual(['job.*']);
    expect(parse(stockConfigText('timeouts.yaml')).reconciler.running_timeout_seconds).toBe(9000);
  });

  it('parses CORDUM_API_KEYS in JSON and CSV forms', () => {
    expect(parseApiKeysVar('[{"key":"k1"},{"key":"k2"}]')).toEqual(['k1', 'k2']);
    expect(parseApiKeysVar('{"k1":{},"k2":{}}')).toEqual(['k1', 'k2']);
    expect(parseApiKeysVar('{"keys":[{"key":"k1"}]}')).toEqual(['k1']);
    expect(parseApiKeysVar('plain, tenant:key2:admin:bob ,a:b')).toEqual(['plain', 'key2', 'b']);
  });

  it('uses only the first non-empty single-key variable, quotes stripped', () => {
    expect(parseApiKeys({ CORDUM_SUPER_SECRET_API_TOKEN: '"s1"', CORDUM_API_KEY: 'k', API_KEY: 'a' })).toEqual(['s1']);
    expect(parseApiKeys({ CORDUM_SUPER_SECRET_API_TOKEN: '  ', CORDUM_API_KEY: "'k'", API_KEY: 'a' })).toEqual(['k']);
    expect(parseApiKeys({ API_KEY: 'a', CORDUM_API_KEYS: 'x,y' })).toEqual(['x', 'y', 'a']);
  });

  it('accepts only positive integer rate limits', () => {
    expect(buildConfig({ API_RATE_LIMIT_RPS: '5', API_RATE_LIMIT_BURST: '7' }).rateLimit).toEqual({ rps: 5, burst: 7 });
    expect(buildConfig({ API_RATE_LIMIT_RPS: '0', API_RATE_LIMIT_BURST: '-3' }).rateLimit).toEqual({ rps: 50, burst: 100 });
    expect(buildConfig({ API_RATE_LIMIT_RPS: '2.5', API_RATE_LIMIT_BURST: 'abc' }).rateLimit).toEqual({ rps: 50, burst: 100 });
  });

  it('reads CORS origins from the first non-empty variable', () => {
    expect(buildConfig({ CORS_ALLOW_ORIGINS: 'http://c', CORDUM_CORS_ALLOW_ORIGINS: 'http://b, http://b2' }).allowedOrigins).toEqual(['http://b', 'http://b2']);
    expect(buildConfig({ CORDUM_ALLOWED_ORIGINS: '*' }).allowedOrigins).toEqual(['*']);
  });

  it('parses Go durations and the TTL variable pairs (duration form wins)', () => {
    expect(parseGoDuration('30s')).toBe(30_000);
    expect(parseGoDuration('500ms')).toBe(500);
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('10')).toBeUndefined();
    expect(buildConfig({ SAFETY_POLICY_RELOAD_INTERVAL: '1s' }).policyReloadMs).toBe(1000);
    expect(buildConfig({ SAFETY_POLICY_RELOAD_INTERVAL: 'bogus' }).policyReloadMs).toBe(30_000);
    expect(buildConfig({ WORKFLOW_ENGINE_SCAN_INTERVAL: '250ms' }).workflowScanIntervalMs).toBe(250);
    expect(buildConfig({ JOB_META_TTL: '1h', JOB_META_TTL_SECONDS: '5' }).jobMetaTtlS).toBe(3600);
    expect(buildConfig({ JOB_META_TTL_SECONDS: '5' }).jobMetaTtlS).toBe(5);
    expect(buildConfig({ REDIS_DATA_TTL_SECONDS: '60' }).dataTtlS).toBe(60);
    expect(buildConfig({ ARTIFACT_TTL_SHORT: '2h' }).artifactTtlS.short).toBe(7200);
    expect(buildConfig({ TENANT_ID: 'acme' }, { policyReloadMs: 5 }).tenant).toBe('acme');
  });

  it('pools and timeouts parsing', () => {
    expect(parsePools('topics:\n  a: [p1, p2]\n  b: p3\npools:\n  p1: {requires: [gpu]}\n').topics).toEqual({ a: ['p1', 'p2'], b: ['p3'] });
    expect(parseTimeouts('reconciler:\n  dispatch_timeout_seconds: 10\n')).toEqual({ dispatchTimeoutS: 10, runningTimeoutS: 300, scanIntervalS: 30 });
    expect(parseTimeouts('{}')).toEqual({ dispatchTimeoutS: 300, runningTimeoutS: 9000, scanIntervalS: 30 });
  });
});

describe('parseFaults', () => {
  it('accepts lists and comma strings, rejects unknown names listing the known ones', () => {
    expect(parseFaults(['metrics-missing']).has('metrics-missing')).toBe(true);
    expect(parseFaults('rate-limit-off, dlq-tap-down').list()).toEqual(['dlq-tap-down', 'rate-limit-off']);
    expect(parseFaults(undefined).list()).toEqual([]);
    expect(() => parseFaults(['nope'])).toThrow(/unknown fault "nope".*known faults: .*gateway-redis-down/);
  });
});
