// Checklist §3.1–3.4: TLS on the Ingress, mTLS on NATS and Redis for every client, the four TLS
// Secrets referenced, and (live) the certificates themselves parsed with node:crypto.
import { X509Certificate } from 'node:crypto';
import { defineCheck, fail, fromFindings, notCheckable, pass, warn, type Check, type CheckContext, type Finding, type PartialResult } from '../model.js';
import type { TlsEndpointFacts } from '../live-endpoints.js';
import type { ObjectIndex } from '../objects.js';
import { isResult, natsBlock, natsConf, natsScalar, needObjects, NATS_CLIENTS, parseRedisConf, primary, producersOf, redisConf, REDIS_CLIENTS, ref } from './util.js';

/** The four Secrets of the production layout, matched by suffix so Helm prefixes still match. */
export const TLS_SECRETS = { natsServer: 'nats-server-tls', redisServer: 'redis-server-tls', client: 'client-tls', ingress: 'ingress-tls' } as const;

function findTlsSecretName(names: Iterable<string>, suffix: string): string | undefined {
  for (const n of names) if (n === `cordum-${suffix}` || n.endsWith(`-${suffix}`) || n === suffix) return n;
  return undefined;
}

/** Every secret name referenced by pod volumes or Ingress TLS. */
function referencedSecrets(idx: ObjectIndex): Set<string> {
  const s = new Set<string>();
  for (const w of idx.templates()) {
    for (const v of w.podSpec?.volumes ?? []) {
      if (v.secret?.secretName) s.add(v.secret.secretName);
      for (const src of v.projected?.sources ?? []) if (src.secret?.name) s.add(src.secret.name);
    }
  }
  for (const ing of idx.kind('Ingress')) for (const t of ing.spec?.tls ?? []) if (t.secretName) s.add(t.secretName);
  return s;
}

/** A Secret "exists" as an object, or as the target of cert-manager / ExternalSecret / SealedSecret. */
function secretProvided(idx: ObjectIndex, name: string): string | undefined {
  const sec = idx.get('Secret', name);
  if (sec) return `Secret (type ${sec.type ?? 'Opaque'})`;
  if (producersOf(idx).certificate.has(name)) return 'cert-manager Certificate';
  if (producersOf(idx).externalSecret.has(name)) return 'ExternalSecret';
  if (idx.get('SealedSecret', name)) return 'SealedSecret';
  return undefined;
}

const PLACEHOLDER = /(^|\.)example\.(com|org|net)$|\.local$|^localhost$/;

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function decode(v: string | undefined): string | undefined {
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

function sans(c: X509Certificate): string[] {
  return (c.subjectAltName ?? '').split(/,\s*/).filter((x) => x.startsWith('DNS:')).map((x) => x.slice(4));
}

function sanCovers(names: string[], host: string): boolean {
  return names.some((n) => n === host || (n.startsWith('*.') && host.endsWith(n.slice(1)) && !host.slice(0, -n.length + 1).includes('.')));
}

/** What each endpoint must show: the checklist's live half of 3.1 (gateway), 3.2 (NATS), 3.3 (Redis). */
function endpointFindings(ctx: CheckContext): PartialResult {
  const eps = ctx.live?.tlsEndpoints ?? {};
  const margin = ctx.thresholds.certMarginDays;
  const findings: Finding[] = [];
  const rows: Record<string, unknown> = {};
  const names = { gateway: 'gateway', nats: 'NATS', redis: 'Redis' } as const;
  for (const key of ['gateway', 'nats', 'redis'] as const) {
    const probe = eps[key];
    if (!probe) continue;
    const what = names[key];
    const add = (message: string) => findings.push({ status: 'fail', message, location: { object: `${what} ${probe.ok ? probe.value.url : ''}`.trim() } });
    if (!probe.ok) {
      rows[key] = { error: probe.reason };
      add(`${what}: ${probe.reason}`);
      continue;
    }
    const f: TlsEndpointFacts = probe.value;
    rows[key] = f;
    if (!f.tls) {
      add(key === 'gateway' ? `gateway ${f.url} is plain HTTP: API keys travel in clear text (serve it over https://)` : key === 'nats' ? `NATS at ${f.url} does not require TLS: a plain nats:// client is accepted` : `Redis at ${f.url} is plaintext (redis://)${f.plaintextRefused === false ? ' and answers a plaintext PING' : ''}`);
      continue;
    }
    if (f.handshakeError) {
      add(`${what} ${f.url}: TLS handshake failed: ${f.handshakeError}`);
      continue;
    }
    if (f.authorized === false) add(`${what} ${f.url}: certificate chain not trusted (${f.authorizationError ?? 'unknown error'}) with the profile's CA`);
    if (f.hostCovered === false) add(`${what} ${f.url}: certificate SANs ${JSON.stringify(f.sans)} do not cover ${f.serverName}`);
    if (f.daysLeft !== undefined && f.daysLeft < margin) add(`${what} ${f.url}: certificate expires in ${f.daysLeft} day(s) (${f.notAfter}; margin ${margin})`);
    if (key !== 'gateway' && f.plaintextRefused === false) add(`${what} ${f.url}: a plaintext client is still served`);
    if (key !== 'gateway' && f.clientCertRequired === false) add(`${what} ${f.url}: a TLS client without a certificate is served (no mTLS: ${key === 'nats' ? 'tls { verify: true }' : 'tls-auth-clients yes'} missing)`);
  }
  if (!Object.keys(eps).length) return notCheckable('the profile names no gateway, NATS or Redis URL to probe');
  const ok = Object.keys(rows)
    .map((k) => `${names[k as keyof typeof names]} (${(rows[k] as TlsEndpointFacts).daysLeft ?? '?'} days left)`)
    .join(', ');
  return fromFindings(findings, `TLS with trusted certificates covering their names on ${ok}`, rows);
}

export const tlsChecks: Check[] = [
  defineCheck({
    id: 'tls.endpoints',
    section: 'tls',
    item: '3.1, 3.2, 3.3',
    title: 'The gateway, NATS and Redis endpoints of the profile speak TLS (trusted chain, SANs, expiry, mTLS on the stores)',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Serve the gateway over https:// (ingress or proxy), run NATS with a top-level `tls { …, verify: true }` and Redis with `port 0`, `tls-port`, `tls-auth-clients yes`; certificates signed by the CA in the profile, SANs covering the names clients dial, renewed before the margin. Point the profile at them (https://, tls://, rediss:// with their tls blocks).',
    run: endpointFindings,
  }),
  defineCheck({
    id: 'tls.ingress',
    section: 'tls',
    item: '3.1',
    title: 'TLS on all ingress traffic',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Give every Ingress a `spec.tls` entry covering all its hosts with a kubernetes.io/tls Secret (e.g. cordum-ingress-tls); do not expose Cordum Services as NodePort/LoadBalancer.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const ingresses = idx.kind('Ingress');
      const bypass = idx.kind('Service').filter((s) => ['NodePort', 'LoadBalancer'].includes(s.spec?.type)).map((s) => `${s.metadata.name} (${s.spec.type})`);
      const evidence: Record<string, unknown> = { ingresses: [], bypassingServices: bypass };
      const problems: string[] = [];
      const warnings: string[] = [];
      if (!ingresses.length) problems.push('no Ingress found');
      for (const ing of ingresses) {
        const hosts: string[] = (ing.spec?.rules ?? []).map((r: { host?: string }) => r.host ?? '*');
        const tls: { hosts?: string[]; secretName?: string }[] = ing.spec?.tls ?? [];
        const uncovered = hosts.filter((h) => !tls.some((t) => (t.hosts ?? []).includes(h)));
        const secrets = tls.map((t) => ({ secret: t.secretName, provided: t.secretName ? secretProvided(idx, t.secretName) : undefined, type: t.secretName ? idx.get('Secret', t.secretName)?.type : undefined }));
        (evidence.ingresses as unknown[]).push({ name: ing.metadata.name, hosts, uncovered, secrets });
        if (uncovered.length) problems.push(`${ing.metadata.name}: hosts without TLS: ${uncovered.join(', ')}`);
        for (const s of secrets) {
          if (!s.secret) problems.push(`${ing.metadata.name}: tls entry without secretName`);
          else if (!s.provided) (ctx.mode === 'live' ? problems : warnings).push(`${ing.metadata.name}: TLS Secret ${s.secret} not found${ctx.mode === 'static' ? ' in the rendered output (it must exist in the cluster)' : ''}`);
          else if (s.type && s.type !== 'kubernetes.io/tls') problems.push(`Secret ${s.secret} has type ${s.type}, not kubernetes.io/tls`);
        }
        for (const h of hosts) if (PLACEHOLDER.test(h)) warnings.push(`${ing.metadata.name}: placeholder host ${h}`);
      }
      if (bypass.length) problems.push(`Services bypassing the Ingress: ${bypass.join(', ')}`);
      if (problems.length) return fail(problems.join('; '), evidence);
      if (warnings.length) return warn(warnings.join('; '), evidence);
      return pass(`${ingresses.length} Ingress(es), every host covered by TLS`, evidence);
    },
  }),
  defineCheck({
    id: 'tls.nats',
    section: 'tls',
    item: '3.2',
    title: 'mTLS for NATS (clients and cluster routes)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Give the gateway, scheduler and workflow engine NATS_URL=tls://… plus NATS_TLS_CA/CERT/KEY; in nats.conf add a top-level `tls { … verify: true }` and TLS in the `cluster` block.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const problems: string[] = [];
      const clients: Record<string, unknown> = {};
      for (const c of NATS_CLIENTS)
        for (const w of idx.component(c)) {
          const url = idx.envOf(w, 'NATS_URL') ?? 'nats://nats:4222 (image default)';
          const missing = ['NATS_TLS_CA', 'NATS_TLS_CERT', 'NATS_TLS_KEY'].filter((k) => !idx.envOf(w, k));
          clients[ref(w)] = { NATS_URL: url, missing };
          if (!url.startsWith('tls://')) problems.push(`${ref(w)}: NATS_URL ${url}`);
          if (missing.length) problems.push(`${ref(w)}: missing ${missing.join(', ')}`);
        }
      const nats = primary(idx, 'nats');
      const conf = nats ? natsConf(idx, nats) : undefined;
      const tlsBlock = natsBlock(conf, 'tls');
      const clusterTls = natsBlock(natsBlock(conf, 'cluster'), 'tls');
      const server = { config: !!conf, tls: !!tlsBlock, verify: natsScalar(tlsBlock, 'verify'), clusterTls: !!clusterTls };
      if (!nats) problems.push('no NATS workload found');
      else if (!tlsBlock) problems.push('nats.conf has no top-level tls block');
      else if (server.verify !== 'true') problems.push('nats.conf tls has no `verify: true` (client certs not required)');
      if (nats && nats.replicas > 1 && !clusterTls) problems.push('cluster routes without TLS');
      const evidence = { clients, server };
      if (problems.length) return fail(problems.join('; '), evidence);
      return pass('every NATS client uses tls:// with client certs; server verifies', evidence);
    },
  }),
  defineCheck({
    id: 'tls.redis',
    section: 'tls',
    item: '3.3',
    title: 'mTLS for Redis (every client and the server)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Give every Redis client REDIS_URL=rediss://… with REDIS_TLS_CA/CERT/KEY and REDIS_TLS_SERVER_NAME; in redis.conf set `port 0`, `tls-port 6379`, `tls-auth-clients yes`.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const problems: string[] = [];
      const clients: Record<string, unknown> = {};
      for (const c of REDIS_CLIENTS)
        for (const w of idx.component(c)) {
          const url = idx.envOf(w, 'REDIS_URL') ?? 'redis://redis:6379 (image default)';
          const missing = ['REDIS_TLS_CA', 'REDIS_TLS_CERT', 'REDIS_TLS_KEY', 'REDIS_TLS_SERVER_NAME'].filter((k) => !idx.envOf(w, k));
          clients[ref(w)] = { REDIS_URL: url, missing };
          if (!url.startsWith('rediss://')) problems.push(`${ref(w)}: REDIS_URL ${url}`);
          if (missing.length) problems.push(`${ref(w)}: missing ${missing.join(', ')}`);
        }
      const redis = primary(idx, 'redis');
      const conf = parseRedisConf(redis ? redisConf(idx, redis) : undefined);
      const server = { port: conf.get('port')?.[0], tlsPort: conf.get('tls-port')?.[0], tlsAuthClients: conf.get('tls-auth-clients')?.[0] ?? '(default yes)' };
      if (redis) {
        if (server.port !== '0') problems.push(`redis.conf port ${server.port ?? '6379 (default)'}: plaintext port open`);
        if (!server.tlsPort) problems.push('redis.conf has no tls-port');
        if (server.tlsAuthClients === 'no' || server.tlsAuthClients === 'optional') problems.push(`tls-auth-clients ${server.tlsAuthClients}`);
      }
      const evidence = { clients, server };
      if (problems.length) return fail(problems.join('; '), evidence);
      return pass('every Redis client uses rediss:// with client certs; server is TLS-only', evidence);
    },
  }),
  defineCheck({
    id: 'tls.secrets-referenced',
    section: 'tls',
    item: '3.4',
    title: 'The four TLS Secrets are referenced (and exist, live)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Mount cordum-nats-server-tls in NATS, cordum-redis-server-tls in Redis, cordum-client-tls in every Cordum client/backup job, and use cordum-ingress-tls on the Ingress; create them (cert-manager recommended) before applying.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const refs = referencedSecrets(idx);
      const evidence: Record<string, unknown> = {};
      const problems: string[] = [];
      for (const [role, suffix] of Object.entries(TLS_SECRETS)) {
        const name = findTlsSecretName(refs, suffix);
        const provided = name ? secretProvided(idx, name) : undefined;
        evidence[role] = { name: name ?? null, provided: provided ?? null };
        const read = name ? ctx.live?.secretReads?.[name] : undefined;
        if (!name) problems.push(`no *-${suffix} Secret referenced`);
        else if (ctx.mode === 'live' && read === 'forbidden') (evidence[role] as Record<string, unknown>).note = 'not readable with this Role (its existence is not confirmed)';
        else if (ctx.mode === 'live' && !idx.get('Secret', name)) problems.push(`Secret ${name} does not exist`);
      }
      if (problems.length) return fail(problems.join('; '), evidence);
      return pass('all four TLS Secrets referenced', evidence);
    },
  }),
  defineCheck({
    id: 'tls.certificates',
    section: 'tls',
    item: '3.4',
    title: 'TLS certificates: SANs, EKUs, one CA, not expiring soon',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Reissue the certificate with the SANs/EKUs listed in the evidence (NATS: nats, cordum-nats, *.cordum-nats.<ns>.svc with serverAuth+clientAuth; Redis: redis; client: clientAuth), signed by the one CA, and renew before the margin.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const ns = ctx.namespace ?? 'cordum';
      const names = idx.kind('Secret').map((s) => s.metadata.name);
      const problems: string[] = [];
      const evidence: Record<string, unknown> = {};
      const cas = new Set<string>();
      const ingressHosts = idx.kind('Ingress').flatMap((i) => (i.spec?.rules ?? []).map((r: { host?: string }) => r.host).filter(Boolean)) as string[];
      let seen = 0;
      for (const [role, suffix] of Object.entries(TLS_SECRETS)) {
        const name = findTlsSecretName(names, suffix);
        const sec = name ? idx.get('Secret', name) : undefined;
        const pem = decode(sec?.data?.['tls.crt']);
        if (!pem) {
          evidence[role] = { secret: name ?? null, error: 'no tls.crt' };
          problems.push(`${name ?? `*-${suffix}`}: no tls.crt to parse`);
          continue;
        }
        seen++;
        let cert: X509Certificate;
        try {
          cert = new X509Certificate(pem);
        } catch (err) {
          problems.push(`${name}: tls.crt does not parse (${(err as Error).message})`);
          continue;
        }
        const daysLeft = Math.floor((Date.parse(cert.validTo) - ctx.now.getTime()) / 86_400_000);
        const eku = cert.keyUsage ?? [];
        const dns = sans(cert);
        evidence[role] = { secret: name, subject: cert.subject, sans: dns, eku, notAfter: new Date(cert.validTo).toISOString(), daysLeft, fingerprint256: cert.fingerprint256 };
        if (daysLeft < ctx.thresholds.certMarginDays) problems.push(`${name}: expires in ${daysLeft} days (margin ${ctx.thresholds.certMarginDays})`);
        const need = (host: string) => {
          if (!sanCovers(dns, host)) problems.push(`${name}: SAN ${host} missing`);
        };
        const ekuHas = (oid: string, label: string) => {
          if (eku.length && !eku.includes(oid)) problems.push(`${name}: EKU ${label} missing`);
        };
        if (role === 'natsServer') {
          need('nats');
          need('cordum-nats');
          need(`cordum-nats-0.cordum-nats.${ns}.svc`);
          ekuHas(OID_SERVER_AUTH, 'serverAuth');
          ekuHas(OID_CLIENT_AUTH, 'clientAuth');
        } else if (role === 'redisServer') {
          need('redis');
          ekuHas(OID_SERVER_AUTH, 'serverAuth');
        } else if (role === 'client') ekuHas(OID_CLIENT_AUTH, 'clientAuth');
        else if (role === 'ingress') for (const h of ingressHosts) need(h);
        const ca = decode(sec?.data?.['ca.crt']);
        if (ca) {
          try {
            const caCert = new X509Certificate(ca);
            cas.add(caCert.fingerprint256);
            if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) problems.push(`${name}: tls.crt is not signed by its ca.crt`);
          } catch {
            problems.push(`${name}: ca.crt does not parse`);
          }
        }
      }
      evidence.distinctCAs = cas.size;
      if (!seen) return notCheckable('no TLS Secret material readable in the namespace', evidence);
      if (cas.size > 1) problems.push(`${cas.size} different CAs in ca.crt: clients cannot validate every server`);
      if (problems.length) return fail(problems.join('; '), evidence);
      return pass(`${seen} certificate(s) valid beyond ${ctx.thresholds.certMarginDays} days with expected SANs/EKUs`, evidence);
    },
  }),
];
