// Judges backup jobs by what they achieve (checklist §6, deploy facts §11): which Redis masters and
// which streams they reach against how many there are, whether NetworkPolicies and TLS material let
// them reach those servers, where the output lands (a claim, its access mode, two jobs writing one
// ReadWriteOnce claim at the same minute), retention and an off-cluster copy. Each gap is its own
// finding pointing at the script line that shows it.
import type { Finding } from './model.js';
import { containersOf, type Container, type ObjectIndex, type Workload } from './objects.js';
import { commandLocation, clusterInitJobs, type BackupJob, type ContainerCommands } from './scripts.js';
import type { ShellCommand } from './shell.js';
import { locate } from './source.js';
import { flowAllowed } from './checks/network.js';
import { natsBlock, natsConf, natsScalar, parseRedisConf, primary, redisArgs, redisConf, ref, volumeForPath, volumeKind } from './checks/util.js';

const STREAMS = ['CORDUM_SYS', 'CORDUM_JOBS'];

function hasResources(w: Workload): boolean {
  return containersOf(w.podSpec).every((c) => c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory);
}

const finding = (status: Finding['status'], message: string, cc: ContainerCommands | undefined, cmd: ShellCommand | undefined, w: Workload): Finding => ({
  status,
  message,
  location: cc && cmd ? commandLocation(cc, cmd) : locate(w.obj),
});

const at = (cmd: ShellCommand) => `line ${cmd.line}: \`${cmd.lineText}\``;

/** Files a command names must sit under a volume mounted in its container. */
function unmounted(c: Container, files: (string | undefined)[]): string[] {
  return files.filter((f): f is string => !!f && !f.includes('$')).filter((f) => !(c.volumeMounts ?? []).some((vm) => f === vm.mountPath || f.startsWith(vm.mountPath.replace(/\/$/, '') + '/')));
}

interface RedisLayout {
  workload?: Workload;
  pods: number;
  clustered: boolean;
  masters: number;
  tlsOnly: boolean;
  tls: boolean;
  clientCerts: boolean;
  service?: string;
}

function redisLayout(idx: ObjectIndex): RedisLayout {
  const w = primary(idx, 'redis');
  if (!w) return { pods: 0, clustered: false, masters: 1, tlsOnly: false, tls: false, clientCerts: false };
  const conf = parseRedisConf(redisConf(idx, w));
  const args = redisArgs(w);
  const get = (k: string) => args.get(k) ?? conf.get(k)?.[0];
  const clustered = get('cluster-enabled')?.toLowerCase() === 'yes';
  // Pods per master: 1 + `--cluster-replicas` of the cluster-init Job (no flag: every pod a master);
  // without an init Job, the production layout's 3 masters + 3 replicas.
  const init = clusterInitJobs(idx)[0]?.call.cmd.argv;
  const flag = init ? init.indexOf('--cluster-replicas') : -1;
  const perMaster = init ? 1 + (flag >= 0 ? Number(init[flag + 1]) || 0 : 0) : 2;
  const tls = !!get('tls-port');
  return {
    workload: w,
    pods: w.replicas,
    clustered,
    masters: clustered ? Math.max(1, Math.floor(w.replicas / perMaster)) : 1,
    tlsOnly: get('port') === '0',
    tls,
    clientCerts: tls && !['no', 'optional'].includes((get('tls-auth-clients') ?? 'yes').toLowerCase()),
    service: w.obj.spec?.serviceName,
  };
}

/** The namespace a `<a>.<b>.<ns>.svc[.cluster.local]` host names, if it names one. */
function hostNamespace(host: string): string | undefined {
  return /^[^.]+\.[^.]+\.([^.]+)\.svc(\.cluster\.local)?\.?$/.exec(host)?.[1];
}

/** Pod index a host names (`cordum-redis-2.cordum-redis…` → 2), for counting distinct nodes. */
function podOf(host: string, sts: string | undefined): number | undefined {
  if (!sts) return undefined;
  const m = new RegExp(`^${sts.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)(\\.|$)`).exec(host);
  return m ? Number(m[1]) : undefined;
}

export function redisBackupFindings(idx: ObjectIndex, jobs: BackupJob[], namespace: string | undefined): { findings: Finding[]; evidence: unknown } {
  const layout = redisLayout(idx);
  const findings: Finding[] = [];
  const rows: unknown[] = [];
  const ns = namespace ?? layout.workload?.obj.metadata.namespace;
  for (const job of jobs) {
    const w = job.workload;
    const literalHosts = new Set<string>();
    let discovery: { cc: ContainerCommands; cmd: ShellCommand; masters: boolean } | undefined;
    let unknownSource: { cc: ContainerCommands; cmd: ShellCommand; from: string } | undefined;
    for (const { cc, call } of job.redisDumps) {
      const cmd = call.cmd;
      if (call.serverSave && !call.rdb) {
        findings.push(finding('fail', `${ref(w)} only asks Redis to BGSAVE: the snapshot stays on the Redis pod's own volume and nothing is copied out (${at(cmd)}); use \`redis-cli --rdb <file>\``, cc, cmd, w));
        continue;
      }
      const host = call.host ?? '127.0.0.1';
      if (!call.host) findings.push(finding('fail', `${ref(w)} runs redis-cli --rdb without -h: it dials 127.0.0.1 inside the backup pod, where no Redis runs (${at(cmd)})`, cc, cmd, w));
      else if (host.includes('$')) {
        const variable = /\$\{?(\w+)/.exec(host)?.[1];
        const loop = [...cmd.loops].reverse().find((l) => l.variable === variable);
        const src = loop?.source ?? [];
        const fromCluster = src.some((s) => s.argv[0]?.endsWith('redis-cli') && (/cluster\s+(nodes|shards|slots)/i.test(s.argv.join(' ')) || s.argv.includes('--cluster')));
        const mastersOnly = /master/i.test(loop?.sourceText ?? '') || src.some((s) => /master/i.test(s.argv.join(' ')));
        if (fromCluster) discovery = { cc, cmd, masters: mastersOnly };
        else unknownSource = { cc, cmd, from: loop ? `\`${loop.sourceText}\`` : variable ? `$${variable}, which the script never sets` : 'the output of a command substitution' };
      } else literalHosts.add(host);
      const missingFlags = call.unknownFlags;
      if (missingFlags.length) findings.push(finding('fail', `redis-cli has no ${missingFlags.map((f) => `\`${f}\``).join(', ')} flag (${at(cmd)}); its TLS flags are --tls, --cacert, --cert, --key, --sni`, cc, cmd, w));
      // TLS material the server demands.
      if (layout.tlsOnly && !call.tls) findings.push(finding('fail', `Redis is TLS-only (port 0) but the dump runs without --tls (${at(cmd)})`, cc, cmd, w));
      else if (call.tls && layout.workload && !layout.tls) findings.push(finding('fail', `the dump uses --tls but Redis serves plaintext (no tls-port) (${at(cmd)})`, cc, cmd, w));
      if (call.tls && layout.clientCerts && (!call.cert || !call.key)) findings.push(finding('fail', `Redis requires client certificates (tls-auth-clients) but the dump passes no --cert/--key (${at(cmd)})`, cc, cmd, w));
      if (call.tls && !call.cacert && !call.cmd.argv.includes('--insecure') && !call.cmd.argv.includes('--cacertdir')) findings.push(finding('fail', `the dump passes --tls without --cacert: the server certificate cannot be verified (${at(cmd)})`, cc, cmd, w));
      const notMounted = unmounted(cc.container, [call.cacert, call.cert, call.key]);
      if (notMounted.length) findings.push(finding('fail', `${notMounted.join(', ')} not mounted in container ${cc.container.name} (${at(cmd)}): mount the client certificate Secret there`, cc, cmd, w));
      const hostNs = hostNamespace(host);
      if (hostNs && ns && hostNs !== ns) findings.push(finding('fail', `the dump dials ${host}, in namespace ${hostNs}, but Redis runs in ${ns} (${at(cmd)})`, cc, cmd, w));
    }
    // Discovery commands need the same TLS and flags.
    for (const { cc, call } of job.redisCalls.filter((c) => c.call.cmd.substituted || !job.redisDumps.includes(c))) {
      if (call.unknownFlags.length) findings.push(finding('fail', `redis-cli has no ${call.unknownFlags.map((f) => `\`${f}\``).join(', ')} flag (${at(call.cmd)})`, cc, call.cmd, w));
      if (layout.tlsOnly && !call.tls) findings.push(finding('fail', `Redis is TLS-only (port 0) but \`${call.cmd.argv.join(' ')}\` runs without --tls (${at(call.cmd)})`, cc, call.cmd, w));
    }
    // Coverage: every master, now and after a failover.
    const first = job.redisDumps[0];
    const pods = new Set([...literalHosts].map((h) => podOf(h, layout.workload?.name)).filter((x) => x !== undefined));
    const serviceHosts = [...literalHosts].filter((h) => podOf(h, layout.workload?.name) === undefined);
    let coverage: string;
    if (discovery) coverage = discovery.masters ? 'masters discovered at run time' : 'every node discovered at run time';
    else if (unknownSource) {
      coverage = `hosts from ${unknownSource.from}`;
      findings.push(finding('warn', `${ref(w)} dumps hosts taken from ${unknownSource.from}: the audit cannot tell whether that covers every master (${at(unknownSource.cmd)}); discover them with \`redis-cli … CLUSTER NODES\``, unknownSource.cc, unknownSource.cmd, w));
    } else {
      const count = pods.size + serviceHosts.length;
      coverage = `${count} fixed host(s): ${[...literalHosts].join(', ')}`;
      if (layout.clustered && serviceHosts.length && !pods.size) {
        findings.push(finding('fail', `${ref(w)} dumps ${serviceHosts.join(', ')}, which reaches one node of the ${layout.pods}-pod cluster, not each of its ${layout.masters} masters (${at(first.call.cmd)})`, first.cc, first.call.cmd, w));
      } else if (layout.clustered && count < layout.masters) {
        findings.push(finding('fail', `${ref(w)} backs up ${count} of the ${layout.masters} Redis masters (${[...literalHosts].join(', ')}): the other shards are never dumped (${at(first.call.cmd)})`, first.cc, first.call.cmd, w));
      } else if (layout.clustered && pods.size < layout.pods) {
        findings.push(finding('warn', `${ref(w)} dumps a fixed list of ${count} pod(s) (${[...literalHosts].join(', ')}): right only while those pods are the masters; after a failover a shard is missed (${at(first.call.cmd)})`, first.cc, first.call.cmd, w));
      }
    }
    const allowed = layout.workload ? flowAllowed(idx, w, layout.workload, 6379, namespace ?? layout.workload.obj.metadata.namespace) : undefined;
    if (allowed && !allowed.allowed) findings.push(finding('fail', `NetworkPolicies do not let ${ref(w)} (pod labels ${JSON.stringify(w.podLabels)}) reach ${ref(layout.workload!)}:6379`, undefined, undefined, w));
    if (!hasResources(w)) findings.push(finding('fail', `${ref(w)} has no resource requests/limits`, undefined, undefined, w));
    rows.push({ job: ref(w), coverage, dumps: job.redisDumps.map((d) => ({ line: d.call.cmd.line, command: d.call.cmd.lineText, host: d.call.host ?? null, rdb: d.call.rdb ?? null, tls: d.call.tls })), networkPolicy: allowed ?? null });
  }
  return { findings, evidence: { redis: layout.workload ? ref(layout.workload) : null, pods: layout.pods, masters: layout.masters, clustered: layout.clustered, tlsOnly: layout.tlsOnly, jobs: rows } };
}

interface NatsLayout {
  workload?: Workload;
  tls: boolean;
  verify: boolean;
}

function natsLayout(idx: ObjectIndex): NatsLayout {
  const w = primary(idx, 'nats');
  const tls = natsBlock(w ? natsConf(idx, w) : undefined, 'tls');
  return { workload: w, tls: !!tls, verify: natsScalar(tls, 'verify') === 'true' };
}

export function jetstreamFindings(idx: ObjectIndex, jobs: BackupJob[], namespace: string | undefined): { findings: Finding[]; evidence: unknown } {
  const layout = natsLayout(idx);
  const findings: Finding[] = [];
  const covered = new Set<string>();
  const rows: unknown[] = [];
  const ns = namespace ?? layout.workload?.obj.metadata.namespace;
  for (const job of jobs) {
    const w = job.workload;
    for (const { cc, call } of job.natsBackups) {
      const cmd = call.cmd;
      if (call.action === 'account-backup') STREAMS.forEach((s) => covered.add(s));
      else if (call.stream && !call.stream.includes('$')) covered.add(call.stream);
      else if (call.stream) {
        // `for S in $(nats stream ls --names)`: every stream of the account.
        const variable = /\$\{?(\w+)/.exec(call.stream)?.[1];
        const loop = [...cmd.loops].reverse().find((l) => l.variable === variable);
        if (loop?.source.some((s) => s.argv[0]?.endsWith('nats') && /\b(stream|str)\s+(ls|list)\b/.test(s.argv.join(' ')))) STREAMS.forEach((s) => covered.add(s));
        else findings.push(finding('warn', `the stream name comes from ${loop ? `\`${loop.sourceText}\`` : `$${variable}`}: the audit cannot tell which streams are backed up (${at(cmd)})`, cc, cmd, w));
      }
      if (call.unknownFlags.length) findings.push(finding('fail', `natscli has no ${call.unknownFlags.map((f) => `\`${f}\``).join(', ')} flag (${at(cmd)}); its TLS flags are --tlsca, --tlscert, --tlskey`, cc, cmd, w));
      const server = call.server;
      if (!server && !call.context) findings.push(finding('fail', `\`nats ${call.path.join(' ')}\` has no --server (nor NATS_URL or --context): it dials nats://127.0.0.1:4222 inside the backup pod (${at(cmd)})`, cc, cmd, w));
      if (layout.tls && !call.context) {
        if (!call.tlsca) findings.push(finding('fail', `NATS requires TLS but the backup passes no --tlsca (${at(cmd)})`, cc, cmd, w));
        if (layout.verify && (!call.tlscert || !call.tlskey)) findings.push(finding('fail', `NATS verifies client certificates (tls { verify: true }) but the backup passes no --tlscert/--tlskey (${at(cmd)})`, cc, cmd, w));
      }
      const notMounted = unmounted(cc.container, [call.tlsca, call.tlscert, call.tlskey]);
      if (notMounted.length) findings.push(finding('fail', `${notMounted.join(', ')} not mounted in container ${cc.container.name} (${at(cmd)})`, cc, cmd, w));
      const host = server ? /^(?:\w+:\/\/)?(?:[^@/]*@)?([^:/,]+)/.exec(server)?.[1] : undefined;
      const hostNs = host ? hostNamespace(host) : undefined;
      if (hostNs && ns && hostNs !== ns) findings.push(finding('fail', `the backup dials ${host}, in namespace ${hostNs}, but NATS runs in ${ns} (${at(cmd)})`, cc, cmd, w));
    }
    const allowed = layout.workload ? flowAllowed(idx, w, layout.workload, 4222, namespace ?? layout.workload.obj.metadata.namespace) : undefined;
    if (allowed && !allowed.allowed) findings.push(finding('fail', `NetworkPolicies do not let ${ref(w)} (pod labels ${JSON.stringify(w.podLabels)}) reach ${ref(layout.workload!)}:4222`, undefined, undefined, w));
    if (!hasResources(w)) findings.push(finding('fail', `${ref(w)} has no resource requests/limits`, undefined, undefined, w));
    rows.push({ job: ref(w), backups: job.natsBackups.map((b) => ({ line: b.call.cmd.line, command: b.call.cmd.lineText, action: b.call.action, path: b.call.path.join(' '), stream: b.call.stream ?? null, target: b.call.target ?? null })), networkPolicy: allowed ?? null });
  }
  const missing = STREAMS.filter((s) => !covered.has(s));
  if (missing.length) {
    const j = jobs[0];
    const b = j.natsBackups[0];
    findings.push(finding('fail', `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} never backed up (streams covered: ${[...covered].join(', ') || 'none'}; ${at(b.call.cmd)})`, b.cc, b.call.cmd, j.workload));
  }
  return { findings, evidence: { nats: layout.workload ? ref(layout.workload) : null, tls: layout.tls, verify: layout.verify, streamsCovered: [...covered], jobs: rows } };
}

// ---------------------------------------------------------------------------------------------
// Storage: where each dump lands, and jobs that collide on one ReadWriteOnce claim.

/** Minutes of the day and days of the week a 5-field cron schedule fires at. */
export function cronFires(schedule: string): { minutes: Set<number>; days: Set<number> } | undefined {
  const macros: Record<string, string> = { '@hourly': '0 * * * *', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@weekly': '0 0 * * 0', '@monthly': '0 0 1 * *', '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *' };
  const fields = (macros[schedule.trim()] ?? schedule.trim().replace(/^CRON_TZ=\S+\s+|^TZ=\S+\s+/, '')).split(/\s+/);
  if (fields.length !== 5) return undefined;
  const expand = (f: string, lo: number, hi: number): Set<number> | undefined => {
    const out = new Set<number>();
    for (const part of f.split(',')) {
      const m = /^(\*|\?|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
      if (!m) return undefined;
      const from = m[2] !== undefined ? Number(m[2]) : lo;
      const to = m[3] !== undefined ? Number(m[3]) : m[2] !== undefined && !m[4] ? from : hi;
      const step = m[4] ? Number(m[4]) : 1;
      for (let v = from; v <= to; v += step) out.add(v === 7 && hi === 6 ? 0 : v);
    }
    return out;
  };
  const [mi, h, dom, , dow] = fields;
  const mins = expand(mi, 0, 59);
  const hours = expand(h, 0, 23);
  const days = dow === '*' || dow === '?' || (dom !== '*' && dom !== '?') ? new Set([0, 1, 2, 3, 4, 5, 6]) : expand(dow, 0, 6);
  if (!mins || !hours || !days) return undefined;
  const minutes = new Set<number>();
  for (const hh of hours) for (const mm of mins) minutes.add(hh * 60 + mm);
  return { minutes, days };
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

export function storageFindings(idx: ObjectIndex, jobs: BackupJob[]): { findings: Finding[]; evidence: unknown } {
  const findings: Finding[] = [];
  const rows: { job: Workload; claim?: string; accessModes?: string[]; cmd?: ShellCommand; cc?: ContainerCommands }[] = [];
  for (const job of jobs) {
    const w = job.workload;
    const outputs = [
      ...job.redisDumps.filter((d) => d.call.rdb).map((d) => ({ cc: d.cc, cmd: d.call.cmd, path: d.call.rdb! })),
      ...job.natsBackups.filter((b) => b.call.target).map((b) => ({ cc: b.cc, cmd: b.call.cmd, path: b.call.target! })),
    ];
    const seen = new Set<string>();
    for (const o of outputs) {
      const dir = o.path.split('$')[0].replace(/\/+$/, '') || o.path;
      const { volume } = volumeForPath(w, o.cc.container.name, dir.startsWith('/') ? dir : `/${dir}`);
      const kind = volumeKind(w, volume);
      const key = `${volume}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (kind !== 'pvc') {
        findings.push(finding('fail', `${ref(w)} writes ${o.path} to ${kind === 'emptyDir' ? `emptyDir volume "${volume}", deleted with the pod` : kind}: the backup is gone when the Job's pod is (line ${o.cmd.line}: \`${o.cmd.lineText}\`)`, o.cc, o.cmd, w));
        continue;
      }
      const vol = (w.podSpec?.volumes ?? []).find((v: { name: string }) => v.name === volume);
      const claim: string | undefined = vol?.persistentVolumeClaim?.claimName;
      const pvc = claim ? idx.get('PersistentVolumeClaim', claim) : undefined;
      rows.push({ job: w, claim, accessModes: pvc?.spec?.accessModes, cmd: o.cmd, cc: o.cc });
    }
  }
  // Two jobs on one ReadWriteOnce claim firing in the same minute: the second pod cannot attach it
  // on another node (Multi-Attach error) and waits until it times out.
  const byClaim = new Map<string, typeof rows>();
  for (const r of rows) {
    if (!r.claim) continue;
    let users = byClaim.get(r.claim);
    if (!users) byClaim.set(r.claim, (users = []));
    users.push(r);
  }
  const collisions: unknown[] = [];
  for (const [claim, users] of byClaim) {
    const modes = users[0].accessModes ?? [];
    if (!modes.includes('ReadWriteOnce') && !modes.includes('ReadWriteOncePod')) continue;
    const distinct = [...new Map(users.map((u) => [u.job, u])).values()];
    // Each schedule is read once, not once per pair of jobs sharing the claim.
    const schedules = distinct.map((u) => String(u.job.obj.spec?.schedule ?? ''));
    const fires = schedules.map((sch, i) => (distinct[i].job.kind === 'CronJob' ? cronFires(sch) : undefined));
    for (let i = 0; i < distinct.length; i++)
      for (let j = i + 1; j < distinct.length; j++) {
        const a = distinct[i];
        const b = distinct[j];
        if (a.job.kind !== 'CronJob' || b.job.kind !== 'CronJob') continue;
        const sa = schedules[i];
        const sb = schedules[j];
        const fa = fires[i];
        const fb = fires[j];
        if (!fa || !fb || ![...fa.days].some((d) => fb.days.has(d))) continue;
        const same = [...fa.minutes].filter((m) => fb.minutes.has(m));
        if (!same.length) continue;
        collisions.push({ claim, jobs: [ref(a.job), ref(b.job)], at: same.slice(0, 5).map(hhmm) });
        const mode = modes.includes('ReadWriteOncePod') ? 'ReadWriteOncePod' : 'ReadWriteOnce';
        findings.push({
          status: 'fail',
          message: `${ref(a.job)} (\`${sa}\`) and ${ref(b.job)} (\`${sb}\`) both write claim ${claim} (${mode}) at ${same.slice(0, 3).map(hhmm).join(', ')}: the second pod cannot attach the volume while the first holds it on another node`,
          location: { ...locate(b.job.obj, 'schedule:'), snippet: `schedule: ${sb}` },
        });
      }
  }
  return { findings, evidence: { outputs: rows.map((r) => ({ job: ref(r.job), claim: r.claim ?? null, accessModes: r.accessModes ?? null, line: r.cmd?.line ?? null })), collisions } };
}

// ---------------------------------------------------------------------------------------------
// Off-cluster copy and retention.

/** A command that copies data off the cluster (object store, remote host). */
function copiesOff(cmd: ShellCommand): boolean {
  const [bin, a1, a2] = cmd.argv.map((x) => x.split('/').pop() ?? x);
  if (bin === 'aws') return a1 === 's3' && ['cp', 'sync', 'mv'].includes(a2) && cmd.argv.some((x) => x.startsWith('s3://'));
  if (bin === 'rclone') return ['copy', 'sync', 'move', 'copyto', 'moveto'].includes(a1);
  if (bin === 'mc') return ['cp', 'mirror', 'mv'].includes(a1);
  if (bin === 'gsutil') return cmd.argv.some((x) => x.startsWith('gs://'));
  if (bin === 'gcloud') return a1 === 'storage' && ['cp', 'rsync', 'mv'].includes(a2);
  if (bin === 'azcopy') return ['copy', 'cp', 'sync'].includes(a1);
  if (bin === 's5cmd') return cmd.argv.some((x) => x.startsWith('s3://'));
  if (bin === 'restic' || bin === 'kopia') return ['backup', 'snapshot'].includes(a1);
  if (bin === 'rsync' || bin === 'scp') return cmd.argv.slice(1).some((x) => /^[\w.@-]+:/.test(x) && !x.startsWith('-'));
  if (bin === 'curl') return cmd.argv.some((x) => x === '-T' || x === '--upload-file');
  return false;
}

/** A command that deletes old backups. */
function prunes(cmd: ShellCommand): boolean {
  const [bin, a1, a2] = cmd.argv.map((x) => x.split('/').pop() ?? x);
  const args = cmd.argv.join(' ');
  if (bin === 'find') return /-(m|c)(time|min)\s+\+?\d+/.test(args) && (cmd.argv.includes('-delete') || cmd.argv.includes('-exec'));
  if (bin === 'xargs') return cmd.argv.includes('rm');
  if (bin === 'rm') return cmd.pipeline.length > 1;
  if (bin === 'rclone') return ['delete', 'purge'].includes(a1) && /--min-age/.test(args);
  if (bin === 'aws') return a1 === 's3' && a2 === 'rm';
  if (bin === 'mc') return a1 === 'rm' && /--older-than/.test(args);
  if (bin === 'restic' || bin === 'kopia') return a1 === 'forget' || (a1 === 'snapshot' && a2 === 'expire');
  if (bin === 'gsutil' || bin === 's5cmd') return /\brm\b/.test(args);
  return /--(max-age|keep-(last|daily|weekly|within))\b/.test(args);
}

export function offClusterFindings(jobs: BackupJob[]): { findings: Finding[]; evidence: unknown } {
  const findings: Finding[] = [];
  const rows: unknown[] = [];
  for (const job of jobs) {
    const w = job.workload;
    const copy = job.all.find((x) => copiesOff(x.cmd));
    const prune = job.all.find((x) => prunes(x.cmd));
    const dump = job.redisDumps[0] ?? job.natsBackups[0];
    if (!copy) findings.push(finding('warn', `${ref(w)} keeps its backups in the cluster only: no step copies them to an object store (the dump is line ${dump.call.cmd.line}: \`${dump.call.cmd.lineText}\`)`, dump.cc, dump.call.cmd, w));
    if (!prune) findings.push(finding('warn', `${ref(w)} never prunes old backups: the volume fills up (no \`find … -mtime +N -delete\` or equivalent after line ${dump.call.cmd.line})`, dump.cc, dump.call.cmd, w));
    rows.push({ job: ref(w), offCluster: copy ? { line: copy.cmd.line, command: copy.cmd.lineText } : null, prunes: prune ? { line: prune.cmd.line, command: prune.cmd.lineText } : null });
  }
  return { findings, evidence: { jobs: rows } };
}
