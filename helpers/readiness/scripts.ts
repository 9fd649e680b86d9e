// The commands each workload's containers run, read once per object index: inline `sh -c`
// scripts, plain command/args, and scripts a container runs from a mounted ConfigMap
// (`sh /scripts/backup.sh`). Backup jobs are then recognised by what their commands do.
import { containersOf, type Container, type KubeObject, type ObjectIndex, type Workload } from './objects.js';
import { containerScript, parseScript, type ShellCommand } from './shell.js';
import { locate, type Location } from './source.js';
import { readNats, readRedisCli, type NatsCall, type RedisCliCall } from './tools.js';

export interface ContainerCommands {
  workload: Workload;
  container: Container;
  /** The object whose text holds the script (the workload, or the ConfigMap it mounts). */
  holder: KubeObject;
  commands: ShellCommand[];
  /** Literal env of the container (what `$VAR` expands to). */
  env: Record<string, string>;
}

const cache = new WeakMap<ObjectIndex, Map<Workload, ContainerCommands[]>>();

/** A script file under a ConfigMap volume mount: its text and the ConfigMap. */
function mountedFile(idx: ObjectIndex, w: Workload, c: Container, path: string): { text: string; configMap: KubeObject } | undefined {
  for (const vm of c.volumeMounts ?? []) {
    const mp = vm.mountPath.replace(/\/$/, '');
    if (!(path === mp || path.startsWith(mp + '/'))) continue;
    const vol = (w.podSpec?.volumes ?? []).find((v: { name: string }) => v.name === vm.name);
    const name = vol?.configMap?.name;
    const cm = name ? idx.get('ConfigMap', name) : undefined;
    if (!cm) continue;
    const key = vm.subPath ?? path.slice(mp.length + 1);
    const item = (vol.configMap.items ?? []).find((it: { path: string }) => it.path === key);
    const text = cm.data?.[item?.key ?? key];
    if (typeof text === 'string') return { text, configMap: cm };
  }
  return undefined;
}

function literalEnv(idx: ObjectIndex, c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of idx.env(c)) if (v.value !== undefined && !k.startsWith('*')) out[k] = v.value;
  return out;
}

export function commandsOf(idx: ObjectIndex, w: Workload): ContainerCommands[] {
  let byW = cache.get(idx);
  if (!byW) cache.set(idx, (byW = new Map()));
  const hit = byW.get(w);
  if (hit) return hit;
  const out: ContainerCommands[] = [];
  for (const c of containersOf(w.podSpec)) {
    const s = containerScript(c.command, c.args);
    if (!s) continue;
    const env = literalEnv(idx, c);
    const parsed = parseScript(s.script, env);
    out.push({ workload: w, container: c, holder: w.obj, commands: parsed.commands, env });
    // `sh /scripts/backup.sh` or `/scripts/backup.sh`: read the mounted script too.
    for (const cmd of parsed.commands) {
      const file = /^(ba|a|da)?sh$/.test(cmd.argv[0]?.split('/').pop() ?? '') ? cmd.argv.find((a, i) => i > 0 && a.startsWith('/')) : cmd.argv[0]?.startsWith('/') ? cmd.argv[0] : undefined;
      const mounted = file ? mountedFile(idx, w, c, file) : undefined;
      if (mounted) out.push({ workload: w, container: c, holder: mounted.configMap, commands: parseScript(mounted.text, env).commands, env });
    }
  }
  byW.set(w, out);
  return out;
}

/** Location of a command: the line of the script that holds it, in the object that holds the script. */
export function commandLocation(cc: ContainerCommands, cmd: ShellCommand): Location {
  return locate(cc.holder, cmd.lineText);
}

export interface BackupJob {
  workload: Workload;
  /** redis-cli calls that dump a node (`--rdb`) or make it save (`BGSAVE`). */
  redisDumps: { cc: ContainerCommands; call: RedisCliCall }[];
  /** Every redis-cli call (discovery, ping…). */
  redisCalls: { cc: ContainerCommands; call: RedisCliCall }[];
  /** `nats stream backup|snapshot` and `nats account backup` calls. */
  natsBackups: { cc: ContainerCommands; call: NatsCall }[];
  /** Every command of the job, for copy/prune steps. */
  all: { cc: ContainerCommands; cmd: ShellCommand }[];
}

const jobsCache = new WeakMap<ObjectIndex, BackupJob[]>();

/** CronJobs (and Jobs not owned by a CronJob) whose commands dump Redis or back up JetStream. */
export function backupJobs(idx: ObjectIndex): BackupJob[] {
  const hit = jobsCache.get(idx);
  if (hit) return hit;
  const out: BackupJob[] = [];
  for (const w of idx.workloads) {
    if (w.kind !== 'CronJob' && !(w.kind === 'Job' && !(w.obj.metadata.ownerReferences ?? []).some((o: { kind: string }) => o.kind === 'CronJob'))) continue;
    const job: BackupJob = { workload: w, redisDumps: [], redisCalls: [], natsBackups: [], all: [] };
    for (const cc of commandsOf(idx, w)) {
      for (const cmd of cc.commands) {
        job.all.push({ cc, cmd });
        const r = readRedisCli(cmd);
        if (r) {
          job.redisCalls.push({ cc, call: r });
          if ((r.rdb || r.serverSave) && !cmd.substituted) job.redisDumps.push({ cc, call: r });
        }
        const n = readNats(cmd, cc.env);
        if (n && (n.action === 'stream-backup' || n.action === 'account-backup')) job.natsBackups.push({ cc, call: n });
      }
    }
    if (job.redisDumps.length || job.natsBackups.length) out.push(job);
  }
  jobsCache.set(idx, out);
  return out;
}

/** Jobs that form the Redis cluster (`redis-cli … --cluster create <nodes…>`), with that call. */
export function clusterInitJobs(idx: ObjectIndex): { workload: Workload; call: RedisCliCall; cc: ContainerCommands }[] {
  const out: { workload: Workload; call: RedisCliCall; cc: ContainerCommands }[] = [];
  for (const w of idx.workloads) {
    if (w.kind !== 'Job') continue;
    for (const cc of commandsOf(idx, w))
      for (const cmd of cc.commands) {
        const call = readRedisCli(cmd);
        if (call?.cluster?.sub === 'create') out.push({ workload: w, call, cc });
      }
  }
  return out;
}
