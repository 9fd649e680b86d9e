// The weekly in-cluster backup-restore drill, end to end in the container's own layout: the files
// and binaries deploy/Dockerfile puts in the image, the user, the read-only root filesystem with the
// writable mounts, the env and the command of the CronJob in deploy/k8s, all read from those files
// (container-layout.ts). The target is a sandbox Cordum on real Redis/NATS on loopback, reached
// through the CronJob's own profile (the ConfigMap) with its addresses pointed there.
// Not reproduced: the Kubernetes API (the drill's Lease and ConfigMap record; the profile's kube
// section is dropped, so the drill locks through the gateway) and TLS to NATS/Redis.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { findBinary } from '../../helpers/processes.js';
import { assembleImage, bwrapWorks, debianPackageOf, runCronJobPod, scratchDir, type ImageLayout, type PodRun } from './container-layout.js';
import { allDocs, byKind, type Doc } from './k8s-fixture.js';

const docs = allDocs();
const cronjob = byKind(docs, 'CronJob').find((c) => c.metadata.labels?.['app.kubernetes.io/component'] === 'backup-restore')!;
const pod = cronjob.spec.jobTemplate.spec.template.spec;
const container = pod.containers[0];

/** The servers the drill starts as its scratch restore target (helpers/backup/drill.ts). */
const SCRATCH_SERVERS = ['redis-server', 'nats-server'];

const missing = !bwrapWorks()
  ? 'bubblewrap (bwrap) is not installed or cannot create a user namespace here (.ci/run installs it: apt-get install bubblewrap)'
  : !findBinary('dpkg-query')
    ? 'not a Debian host: the image layer stand-in is the host Debian system'
    : undefined;

const name = 'the backup-restore CronJob in the image layout';
describe.skipIf(missing !== undefined)(missing ? `${name} (skipped: ${missing})` : name, () => {
  let sb: Sandbox;
  let image: ImageLayout;
  let run: PodRun;
  const scratch = scratchDir();

  /** The CronJob's profile (ConfigMap), with only the addresses pointed at the sandbox. */
  function profileConfigMaps(): Record<string, Record<string, string>> {
    const volume = pod.volumes.find((v: { configMap?: { name: string } }) => v.configMap);
    const cm = byKind(docs, 'ConfigMap').find((d: Doc) => d.metadata.name === volume.configMap.name)!;
    const data: Record<string, string> = {};
    for (const [key, text] of Object.entries(cm.data as Record<string, string>)) {
      const profile = parse(text);
      profile.gateway.url = sb.profile.gateway.url;
      profile.metrics = sb.profile.metrics;
      profile.workflow_engine = sb.profile.workflow_engine;
      profile.nats = { url: sb.natsUrl };
      profile.redis = { url: sb.redisUrl };
      delete profile.kube;
      data[key] = stringify(profile);
    }
    return { [volume.configMap.name]: data };
  }

  beforeAll(async () => {
    image = assembleImage(scratch.dir);
    sb = await startSandbox();
    const apiKey = container.env.find((e: { name: string }) => e.name === 'CORDUM_API_KEY').valueFrom.secretKeyRef;
    run = await runCronJobPod(image, cronjob, { configMaps: profileConfigMaps(), secrets: { [`${apiKey.name}/${apiKey.key}`]: sb.apiKey }, timeoutMs: 180_000 }, scratch.dir);
  }, 240_000);

  afterAll(async () => {
    await sb?.stop();
    scratch.remove();
  });

  it('the image installs the Debian packages that provide the scratch servers the drill starts', () => {
    for (const server of SCRATCH_SERVERS) {
      const pkg = debianPackageOf(server);
      expect(pkg, `${server} on this host comes from no Debian package`).toBeDefined();
      expect(image.packages, `${server} (Debian package ${pkg}) is not installed by deploy/Dockerfile`).toContain(pkg);
    }
  });

  it('the Dockerfile volume folders and the read-only root match the CronJob', () => {
    const mounts = container.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
    for (const p of new Set(image.volumePaths)) expect(mounts, `${p} is prepared in the image but not mounted by the CronJob`).toContain(p);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(`${container.securityContext.runAsUser}:${container.securityContext.runAsGroup}`).toBe(`${image.user.uid}:${image.user.gid}`);
  });

  it('runs the drill to a pass: exit 0, a passed report and drill record on the reports volume', () => {
    expect(run.exitCode, run.output.slice(-3000)).toBe(0);
    expect(run.output).toContain('run-group: backup-restore exited 0');
    const reports = run.volumes.reports!;
    const runs = readdirSync(reports).filter((d) => d.includes('-backup-restore-'));
    expect(runs).toHaveLength(1);
    const summary = JSON.parse(readFileSync(join(reports, runs[0]!, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ runbook: 'backup-restore', target: 'in-cluster', status: 'passed', exit_code: 0 });
    const restore = summary.steps.find((s: { name: string }) => s.name.startsWith('Scratch restore'));
    expect(restore.status).toBe('passed');
    const drills = readFileSync(join(reports, '.drills.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(drills.at(-1)).toMatchObject({ kind: 'restore-drill', target: 'in-cluster', status: 'passed' });
    expect(drills.at(-1).sizes.redis_keys).toBeGreaterThan(0);
  });

  it('leaves the scratch servers and the archive behind nowhere (backup.keep: false)', () => {
    expect(readdirSync(run.volumes.backups!)).toEqual([]);
    expect(readdirSync(run.volumes.tmp!).filter((f) => f.startsWith('cordum-rb-'))).toEqual([]);
    // Nothing reached the image itself: its root was read-only, and the assembled /app is unchanged.
    expect(existsSync(join(image.root, image.workdir, '.runbook-state'))).toBe(false);
  });
});
