// Checklist §7: pinned images (explicit versions or digests, never latest) and, live, a released build.
import { defineCheck, fail, info, notCheckable, pass, warn, type Check } from '../model.js';
import { containersOf, CORDUM_SERVICES, type Component } from '../objects.js';
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

/**
 * The release a Cordum image belongs to: published images are `cordum/control-plane:<tag>-<service>`
 * (deploy facts §3), so the service suffix is dropped; other images keep their tag. A digest-only
 * image has no comparable version (undefined).
 */
export function releaseOf(image: string, component: Component): string | undefined {
  const r = parseImage(image);
  if (!r.tag) return r.digest ? undefined : 'latest';
  return r.tag.endsWith(`-${component}`) ? r.tag.slice(0, -(component.length + 1)) : r.tag;
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
  defineCheck({
    id: 'upgrades.same-release',
    section: 'upgrades',
    item: '7.2',
    title: 'All Cordum components run the same release tag',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Roll every Cordum component (gateway, scheduler, workflow engine, safety kernel, context engine, dashboard) to the same release tag, promoted as one unit dev → staging → prod; mixed versions mean a rollout stopped half-way.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rows: { workload: string; image: string; release: string | null }[] = [];
      for (const c of [...CORDUM_SERVICES, 'dashboard'] as Component[])
        for (const w of idx.component(c))
          for (const ct of containersOf(w.podSpec, false).filter((x) => x.image && !/(^|\/)(nats|redis)(:|@|$)/.test(x.image))) rows.push({ workload: ref(w), image: ct.image!, release: releaseOf(ct.image!, c) ?? null });
      const evidence = { images: rows, releases: [...new Set(rows.map((r) => r.release).filter(Boolean))] };
      if (!rows.length) return notCheckable('no Cordum service workloads found', evidence);
      if (rows.every((r) => r.release === null)) return notCheckable('every Cordum image is pinned by digest only: versions cannot be compared from the manifests', evidence);
      const releases = evidence.releases as string[];
      if (releases.length > 1) {
        const by = releases.map((v) => `${v}: ${rows.filter((r) => r.release === v).map((r) => r.workload).join(', ')}`);
        return warn(`Cordum components run ${releases.length} different releases (${by.join('; ')})`, evidence);
      }
      return pass(`${rows.length} Cordum containers on release ${releases[0]}`, evidence);
    },
  }),
  defineCheck({
    id: 'upgrades.staged-rollout',
    section: 'upgrades',
    item: '7.2, 7.3, 7.4',
    title: 'Staged rollout dev → staging → prod, policy changes and payload compatibility validated in staging',
    severity: 'info',
    modes: ['static', 'live'],
    remediation: 'Process items: promote the same release tag through staging before prod (7.2), publish policy/schema changes in staging first (7.3), and replay stored workflow definitions against staging before upgrading (7.4). Record the evidence in your change ticket.',
    run(ctx) {
      const release = ctx.objects ? [...new Set(CORDUM_SERVICES.flatMap((c) => ctx.objects!.component(c).flatMap((w) => containersOf(w.podSpec, false).map((x) => releaseOf(x.image ?? '', c)))).filter(Boolean))] : [];
      return info('process items, not checkable here: this audit sees one target, not the staging history it was promoted through; confirm the release was validated in staging (7.2), policy changes published there first (7.3) and stored workflow payloads replayed (7.4)', { releasesSeen: release });
    },
  }),
];
