// Checklist §8: enterprise gating. Core deployments get "info / not applicable" rather than a pass
// for something they do not run.
import { defineCheck, fail, info, notCheckable, pass, type Check } from '../model.js';
import { containersOf } from '../objects.js';
import { isResult, needObjects, parseImage, primary, ref } from './util.js';

const isEnterprise = (image: string) => /enterprise/i.test(parseImage(image).repository);

export const enterpriseChecks: Check[] = [
  defineCheck({
    id: 'enterprise.license-required',
    section: 'enterprise',
    item: '8.1',
    title: 'CORDUM_LICENSE_REQUIRED=true on enterprise gateways',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Set CORDUM_LICENSE_REQUIRED="true" on the enterprise gateway Deployment.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const gw = primary(idx, 'api-gateway');
      if (!gw) return fail('no gateway workload found');
      const images = containersOf(gw.podSpec, false).map((c) => c.image ?? '');
      const value = idx.envOf(gw, 'CORDUM_LICENSE_REQUIRED');
      const evidence = { workload: ref(gw), images, CORDUM_LICENSE_REQUIRED: value ?? null };
      if (!images.some(isEnterprise)) return info('core gateway: license gating not applicable', evidence);
      if (value !== 'true') return fail(`enterprise gateway with CORDUM_LICENSE_REQUIRED=${value ?? '(unset)'}`, evidence);
      return pass('enterprise gateway requires a license', evidence);
    },
  }),
  defineCheck({
    id: 'enterprise.separate-registries',
    section: 'enterprise',
    item: '8.2',
    title: 'Enterprise images come from a different registry than public ones',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Pull enterprise images from your private registry, not the public one.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const images = idx.templates().flatMap((w) => containersOf(w.podSpec).map((c) => c.image ?? ''));
      const ent = new Set(images.filter(isEnterprise).map((i) => parseImage(i).registry));
      const pub = new Set(images.filter((i) => !isEnterprise(i) && /cordum/.test(i)).map((i) => parseImage(i).registry));
      const evidence = { enterpriseRegistries: [...ent], publicRegistries: [...pub] };
      if (!ent.size) return info('no enterprise images: not applicable', evidence);
      const shared = [...ent].filter((r) => pub.has(r));
      if (shared.length) return fail(`enterprise and public images share ${shared.join(', ')}`, evidence);
      return pass('enterprise images from a separate registry', evidence);
    },
  }),
  defineCheck({
    id: 'enterprise.default-key-rejected',
    section: 'enterprise',
    item: '8.3',
    title: 'The documented default API key is rejected',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Rotate the API key away from super-secret-key (CORDUM_API_KEYS with one key per principal where supported).',
    run(ctx) {
      const p = ctx.live?.defaultKey;
      if (!p) return notCheckable('the gateway was not probed');
      if (!p.ok) return notCheckable(`probe failed: ${p.reason}`);
      if (p.value.status >= 200 && p.value.status < 300) return fail(`GET /api/v1/status with X-API-Key super-secret-key answered ${p.value.status}`, p.value);
      if (p.value.status === 429) return notCheckable('the gateway answered 429 (rate limited) to the default-key probe', p.value);
      return pass(`default key rejected (${p.value.status})`, p.value);
    },
  }),
];
