// Checklist §3.6–3.7: secrets come from a manager (never literal in manifests, never the
// documented default key, proven through the gateway, never by reading Secret values) and are rotated.
import { defineCheck, fail, fromFindings, notCheckable, pass, warn, type Check, type Finding } from '../model.js';
import { containersOf, type KubeObject, type ObjectIndex } from '../objects.js';
import { isResult, needObjects, primary, producersOf, ref } from './util.js';

const MANAGER_OWNERS = ['ExternalSecret', 'SealedSecret', 'Certificate', 'SecretProviderClass'];
const MANAGER_ANNOTATION = /^(cert-manager\.io\/|sealedsecrets\.bitnami\.com\/|reconcile\.external-secrets\.io\/|external-secrets\.io\/|secrets-store\.csi)/;
const SECRETISH = /(^|_)(API_KEYS?|TOKEN|PASSWORD|SECRET|LICENSE(_KEY)?|CREDENTIALS?)$/;
const API_KEY_ENVS = ['API_KEY', 'CORDUM_API_KEY', 'CORDUM_SUPER_SECRET_API_TOKEN', 'CORDUM_API_KEYS'];

export function managedBy(s: KubeObject): string | undefined {
  const owner = (s.metadata.ownerReferences ?? []).find((o: { kind: string }) => MANAGER_OWNERS.includes(o.kind));
  if (owner) return `owner ${owner.kind}/${owner.name}`;
  const ann = Object.keys(s.metadata.annotations ?? {}).find((a) => MANAGER_ANNOTATION.test(a));
  if (ann) return `annotation ${ann}`;
  const m = s.metadata.labels?.['app.kubernetes.io/managed-by'];
  if (m && /external-secrets|sealed-secrets|cert-manager|vault/i.test(m)) return `label managed-by=${m}`;
  return undefined;
}

/** Secrets the Cordum pods consume (env refs and volumes). */
function consumedSecrets(idx: ObjectIndex): Set<string> {
  const out = new Set<string>();
  for (const w of idx.templates()) {
    for (const v of w.podSpec?.volumes ?? []) if (v.secret?.secretName) out.add(v.secret.secretName);
    for (const c of containersOf(w.podSpec)) {
      for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef?.name) out.add(e.valueFrom.secretKeyRef.name);
      for (const ef of c.envFrom ?? []) if (ef.secretRef?.name) out.add(ef.secretRef.name);
    }
  }
  for (const i of idx.kind('Ingress')) for (const t of i.spec?.tls ?? []) if (t.secretName) out.add(t.secretName);
  return out;
}

/** A manager object that produces the Secret `name` (the Secret itself may not be readable). */
function managerFor(idx: ObjectIndex, name: string): string | undefined {
  const es = producersOf(idx).externalSecret.get(name);
  if (es) return `ExternalSecret/${es.metadata.name}`;
  const ss = idx.get('SealedSecret', name);
  if (ss) return `SealedSecret/${name}`;
  const c = producersOf(idx).certificate.get(name);
  if (c) return `Certificate/${c.metadata.name}`;
  return undefined;
}

export const secretsChecks: Check[] = [
  defineCheck({
    id: 'secrets.no-literal',
    section: 'secrets',
    item: '3.6',
    title: 'No Secret with literal data in the rendered manifests',
    severity: 'fail',
    modes: ['static'],
    remediation: 'Move the value into a secrets manager (ExternalSecret, SealedSecret, Secrets Store CSI, cert-manager) and drop the Secret (data/stringData) from the manifests.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const literal = idx
        .kind('Secret')
        .filter((s) => (Object.keys(s.data ?? {}).length || Object.keys(s.stringData ?? {}).length) && !managedBy(s))
        .map((s) => ({ secret: s.metadata.name, keys: [...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})] }));
      if (literal.length) return fail(`literal Secrets: ${literal.map((l) => l.secret).join(', ')}`, { literal });
      return pass('no literal Secret data', { secrets: idx.kind('Secret').length, externalSecrets: idx.kind('ExternalSecret').length, sealedSecrets: idx.kind('SealedSecret').length });
    },
  }),
  defineCheck({
    id: 'secrets.env-refs',
    section: 'secrets',
    item: '3.6',
    title: 'Secret-looking env vars come from secretKeyRef, never literal values',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Replace `value:` with `valueFrom.secretKeyRef` for API keys, tokens and passwords (e.g. API_KEY from Secret cordum-api-key).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const literal: { workload: string; container: string; env: string }[] = [];
      for (const w of idx.templates())
        for (const c of containersOf(w.podSpec))
          for (const e of c.env ?? []) if (SECRETISH.test(e.name) && e.value !== undefined && e.value !== '' && !e.value.startsWith('/')) literal.push({ workload: ref(w), container: c.name, env: e.name });
      const gw = primary(idx, 'api-gateway');
      const keyRefs = gw ? API_KEY_ENVS.filter((k) => containersOf(gw.podSpec, false).some((c) => idx.env(c).get(k)?.secretRef)) : [];
      const evidence = { literal, gatewayKeyEnvFromSecret: keyRefs };
      if (literal.length) return fail(`literal secret env: ${literal.map((l) => `${l.workload}/${l.env}`).join(', ')}`, evidence);
      if (gw && !keyRefs.length) return fail('the gateway has no API key from a Secret: /api/* is unauthenticated', evidence);
      return pass(`API key from Secret (${keyRefs.join(', ')}), no literal secret env`, evidence);
    },
  }),
  defineCheck({
    id: 'secrets.managed',
    section: 'secrets',
    item: '3.6, 8.3',
    title: 'Cordum Secrets are managed externally and the gateway refuses the default API key',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Create the Secrets through ExternalSecret/SealedSecret/cert-manager/CSI, and replace any `super-secret-key` API key immediately (the gateway must answer 401 to it, and to requests without a key).',
    run(ctx) {
      // The API key is judged through the gateway, never by reading Secret values: the default key
      // must be refused, and so must a request without any key.
      const findings: Finding[] = [];
      const evidence: Record<string, unknown> = {};
      const dk = ctx.live?.defaultKey;
      const nk = ctx.live?.noKey;
      if (dk?.ok) {
        evidence.defaultKeyStatus = dk.value.status;
        if (dk.value.status >= 200 && dk.value.status < 300) findings.push({ status: 'fail', message: `the gateway accepts the documented default key super-secret-key (GET /api/v1/status answered ${dk.value.status})` });
      }
      if (nk?.ok) {
        evidence.noKeyStatus = nk.value.status;
        if (nk.value.status >= 200 && nk.value.status < 300) findings.push({ status: 'fail', message: `the gateway answers /api/v1/status without any API key (${nk.value.status}): the API is unauthenticated` });
      }
      const idx = ctx.objects;
      if (idx) {
        const rows = [...consumedSecrets(idx)].map((n) => {
          const s = idx.get('Secret', n);
          return { secret: n, managedBy: (s ? managedBy(s) : undefined) ?? managerFor(idx, n) ?? null, metadataRead: !!s };
        });
        evidence.secrets = rows;
        const unmanaged = rows.filter((r) => !r.managedBy && r.metadataRead).map((r) => r.secret);
        if (unmanaged.length) findings.push({ status: 'fail', message: `not managed by a secrets manager: ${unmanaged.join(', ')}` });
        const unknown = rows.filter((r) => !r.managedBy && !r.metadataRead).map((r) => r.secret);
        if (unknown.length) evidence.notReadable = `${unknown.join(', ')}: no manager object targets them and their metadata is not readable with this Role`;
      }
      if (!dk?.ok && !nk?.ok && !idx) return notCheckable(`the gateway was not probed (${dk && !dk.ok ? dk.reason : 'no gateway URL'}) and no Kubernetes objects were read`, evidence);
      return fromFindings(findings, `${idx ? 'consumed Secrets managed externally; ' : ''}the gateway refuses the default key${nk?.ok ? ' and requests without a key' : ''}`, evidence);
    },
  }),
  defineCheck({
    id: 'secrets.rotation',
    section: 'secrets',
    item: '3.7',
    title: 'API key and license Secrets rotated within 90 days (heuristic)',
    severity: 'warn',
    modes: ['live'],
    remediation: 'Rotate the API key (and license) and let the manager refresh the Secret; aim for rotation at least every 90 days.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const keySecrets = new Set<string>();
      const gw = primary(idx, 'api-gateway');
      if (gw) for (const c of containersOf(gw.podSpec, false)) for (const e of c.env ?? []) if (API_KEY_ENVS.includes(e.name) && e.valueFrom?.secretKeyRef?.name) keySecrets.add(e.valueFrom.secretKeyRef.name);
      const rows = [...keySecrets].map((n) => {
        const s = idx.get('Secret', n);
        const times = [s?.metadata.creationTimestamp, ...((s?.metadata as any)?.managedFields ?? []).map((m: { time?: string }) => m.time)].filter(Boolean).map((t) => Date.parse(t as string));
        const last = times.length ? Math.max(...times) : undefined;
        return { secret: n, lastChange: last ? new Date(last).toISOString() : null, ageDays: last ? Math.floor((ctx.now.getTime() - last) / 86_400_000) : null };
      });
      if (!rows.length || rows.every((r) => r.ageDays === null)) return notCheckable('no API key Secret with timestamps found', rows);
      const old = rows.filter((r) => (r.ageDays ?? 0) > 90);
      if (old.length) return warn(`not rotated for >90 days: ${old.map((o) => `${o.secret} (${o.ageDays}d)`).join(', ')}`, rows);
      return pass('API key Secret changed within 90 days', rows);
    },
  }),
];
