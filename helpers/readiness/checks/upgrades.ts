// Checklist §7: pinned images (explicit versions or digests, never latest) and, live, a released build.
import { defineCheck, fail, notCheckable, pass, warn, type Check } from '../model.js';
import { containersOf } from '../objects.js';
import { isResult, needObjects, parseImage, ref } from './util.js';

/** 'digest' | 'exact' | 'floating' (major or major.minor only) | 'latest' | 'untagged'. */
export function imagePinning(image: string): 'digest' | 'exact' | 'floating' | 'latest' | 'untagged' {
  const ref = parseImage(image);
  if (ref.digest) return 'digest';
  if (!ref.tag) return 'untagged';
  if (ref.tag === 'latest' || ref.tag.startsWith('latest-')) return 'latest';
  if (/^v?\d+(\.\d+)?(-[a-z][\w.-]*)?$/i.test(ref.tag) || /^(stable|edge|main|master|dev|nightly)(-|$)/.test(ref.tag)) return 'floating';
  return 'exact';
}

export const upgradeChecks: Check[] = [
  defineCheck({
    id: 'upgrades.pinned-images',
    section: 'upgrades',
    item: '7.1',
    title: 'Every image (init, Job and CronJob included) has an exact tag or digest',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Pin every image to an exact release tag (e.g. cordum/control-plane:v1.4.2-api-gateway, redis:7.2.5-alpine) or better a digest; never latest or no tag.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rows: { workload: string; container: string; image: string; pinning: string }[] = [];
      for (const w of idx.templates()) for (const c of containersOf(w.podSpec)) rows.push({ workload: ref(w), container: c.name, image: c.image ?? '', pinning: imagePinning(c.image ?? '') });
      const bad = rows.filter((r) => r.pinning === 'latest' || r.pinning === 'untagged');
      const floating = rows.filter((r) => r.pinning === 'floating');
      const evidence = { images: rows, digests: rows.filter((r) => r.pinning === 'digest').length };
      if (bad.length) return fail(`unpinned: ${bad.map((b) => `${b.workload}/${b.container}=${b.image}`).join(', ')}`, evidence);
      if (floating.length) return warn(`floating tags: ${floating.map((b) => `${b.workload}/${b.container}=${b.image}`).join(', ')}`, evidence);
      return pass(`${rows.length} images pinned (${evidence.digests} by digest)`, evidence);
    },
  }),
  defineCheck({
    id: 'upgrades.build-version',
    section: 'upgrades',
    item: '7.1',
    title: 'The running gateway reports a released build version',
    severity: 'warn',
    modes: ['live'],
    remediation: 'Deploy a released image: /api/v1/status build.version should be a release, not "dev".',
    run(ctx) {
      const s = ctx.live?.gatewayStatus;
      if (!s) return notCheckable('the gateway was not probed');
      if (!s.ok) return notCheckable(`gateway status unavailable: ${s.reason}`);
      const version = (s.value.body as { build?: { version?: string } } | undefined)?.build?.version;
      const evidence = { status: s.value.status, version: version ?? null };
      if (s.value.status !== 200) return notCheckable(`GET /api/v1/status answered ${s.value.status}`, evidence);
      if (!version || version === 'dev') return warn(`build.version is ${version ?? 'absent'}`, evidence);
      return pass(`build.version ${version}`, evidence);
    },
  }),
];
