// Checklist §1: JetStream and Redis state survive pod loss (PVCs, replication, persistence).
import { defineCheck, fail, fromFindings, info, notCheckable, pass, warn, type Check, type Finding } from '../model.js';
import { containersOf } from '../objects.js';
import { claimNames, isResult, natsBlock, natsConf, natsRoutes, natsScalar, needObjects, NATS_CLIENTS, parseDurationHours, parseRedisConf, primary, redisArgs, redisConf, ref, volumeForPath, volumeKind } from './util.js';

const STREAMS = ['CORDUM_SYS', 'CORDUM_JOBS'];

export const persistenceChecks: Check[] = [
  defineCheck({
    id: 'persistence.jetstream-pvc',
    section: 'persistence',
    item: '1.1',
    title: 'JetStream store_dir is on a persistent volume',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Run NATS as a StatefulSet with a volumeClaimTemplate mounted at or above the JetStream store_dir (e.g. `data` at /data, store_dir /data/jetstream).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const nats = primary(idx, 'nats');
      if (!nats) return fail('no NATS workload found (label app: nats / component nats, or a nats image)');
      const conf = natsConf(idx, nats);
      const argv = containersOf(nats.podSpec, false).flatMap((c) => [...(c.command ?? []), ...(c.args ?? [])]);
      const sdFlag = argv.findIndex((a) => a === '-sd' || a === '--store_dir');
      const storeDir = natsScalar(natsBlock(conf, 'jetstream'), 'store_dir') ?? (sdFlag >= 0 ? argv[sdFlag + 1] : undefined);
      if (!storeDir) return fail(`${ref(nats)}: no JetStream store_dir found in nats.conf or -sd`, { workload: ref(nats) });
      const { volume, mountPath } = volumeForPath(nats, undefined, storeDir);
      const kind = volumeKind(nats, volume);
      const evidence: Record<string, unknown> = { workload: ref(nats), storeDir, volume, mountPath, volumeKind: kind };
      if (kind !== 'pvc') return fail(`${ref(nats)}: store_dir ${storeDir} is on ${kind}`, evidence);
      if (ctx.mode === 'live') {
        const claims = claimNames(nats, volume!);
        const phases = claims.map((c) => ({ claim: c, phase: idx.get('PersistentVolumeClaim', c)?.status?.phase ?? 'missing' }));
        evidence.claims = phases;
        const bad = phases.filter((p) => p.phase !== 'Bound');
        if (bad.length) return fail(`PVCs not Bound: ${bad.map((b) => `${b.claim}=${b.phase}`).join(', ')}`, evidence);
      }
      return pass(`${ref(nats)}: store_dir ${storeDir} on PVC volume "${volume}"`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.nats-cluster',
    section: 'persistence',
    item: '1.2',
    title: 'NATS runs as a routed cluster of at least 3 servers',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Run 3 NATS replicas with a `cluster { routes: [...] }` block listing one route per pod.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const nats = primary(idx, 'nats');
      if (!nats) return warn('no NATS workload found');
      const routes = natsRoutes(natsBlock(natsConf(idx, nats), 'cluster'));
      const evidence = { workload: ref(nats), replicas: nats.replicas, routes };
      if (nats.replicas < 3) return warn(`${ref(nats)} has ${nats.replicas} replica(s); a 3-node cluster is preferred`, evidence);
      if (routes.length !== nats.replicas) return { ...fail(`cluster configured for ${nats.replicas} servers but ${routes.length} route(s) listed`, evidence) };
      return pass(`${nats.replicas} NATS servers with ${routes.length} routes`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.jetstream-replicas-env',
    section: 'persistence',
    item: '1.3, 11.5',
    title: 'NATS_JS_REPLICAS is 3 on every stream creator and fits the NATS cluster',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Set NATS_JS_REPLICAS=3 on the gateway, scheduler and workflow engine (identical values, at most the NATS replica count). Existing streams keep their settings: check them live.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const natsReplicas = primary(idx, 'nats')?.replicas ?? 0;
      const values: Record<string, string> = {};
      for (const c of NATS_CLIENTS) for (const w of idx.component(c)) values[ref(w)] = idx.envOf(w, 'NATS_JS_REPLICAS') ?? '(unset → 1)';
      const evidence = { values, natsReplicas };
      if (!Object.keys(values).length) return fail('no NATS clients found', evidence);
      const nums = Object.values(values).map((v) => (/^\d+$/.test(v) ? Number(v) : 1));
      if (new Set(nums).size > 1) return fail('NATS_JS_REPLICAS differs between components', evidence);
      if (nums[0] < 3) return fail(`NATS_JS_REPLICAS=${nums[0]}; streams are created with fewer than 3 replicas`, evidence);
      if (nums[0] > natsReplicas) return fail(`NATS_JS_REPLICAS=${nums[0]} exceeds the ${natsReplicas} NATS servers`, evidence);
      return pass(`NATS_JS_REPLICAS=${nums[0]} everywhere (NATS has ${natsReplicas})`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.streams-file-backed',
    section: 'persistence',
    item: '1.3',
    title: 'CORDUM_SYS and CORDUM_JOBS exist and use file storage',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Streams keep the config they were created with: back up, delete and let Cordum recreate (or `nats stream restore --config`) CORDUM_SYS/CORDUM_JOBS with file storage.',
    run(ctx) {
      const n = ctx.live?.nats;
      if (!n) return notCheckable('NATS was not probed (no nats.url in the profile)');
      if (!n.ok) return notCheckable(`NATS unreachable: ${n.reason}`);
      const evidence = STREAMS.map((s) => ({ stream: s, storage: n.value.streams[s]?.storage ?? 'missing' }));
      const bad = evidence.filter((e) => e.storage !== 'file');
      if (bad.length) return fail(`streams not file-backed: ${bad.map((b) => `${b.stream}=${b.storage}`).join(', ')}`, evidence);
      return pass('both streams exist with file storage', evidence);
    },
  }),
  defineCheck({
    id: 'persistence.streams-replicated',
    section: 'persistence',
    item: '1.3',
    title: 'CORDUM_* streams are replicated and every replica is current',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Raise the live streams to R3 (`nats stream edit <S> --replicas 3`) once 3 JetStream servers are up; NATS_JS_REPLICAS only applies at creation.',
    run(ctx) {
      const n = ctx.live?.nats;
      if (!n) return notCheckable('NATS was not probed (no nats.url in the profile)');
      if (!n.ok) return notCheckable(`NATS unreachable: ${n.reason}`);
      const min = ctx.thresholds.minStreamReplicas;
      const evidence = STREAMS.map((s) => ({ stream: s, num_replicas: n.value.streams[s]?.num_replicas ?? null, replicas_current: n.value.streams[s]?.replicas_current ?? null }));
      const missing = evidence.filter((e) => e.num_replicas === null);
      if (missing.length) return fail(`streams missing: ${missing.map((m) => m.stream).join(', ')}`, evidence);
      const low = evidence.filter((e) => (e.num_replicas ?? 0) < min);
      if (low.length) return fail(`streams below R${min}: ${low.map((l) => `${l.stream}=R${l.num_replicas}`).join(', ')}`, evidence);
      const lagging = evidence.filter((e) => e.replicas_current === false);
      if (lagging.length) return fail(`replicas not current on ${lagging.map((l) => l.stream).join(', ')}`, evidence);
      return pass(`both streams at ≥R${min}, replicas current`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.redis-config',
    section: 'persistence',
    item: '1.4',
    title: 'Redis persistence configured on a PVC',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'In redis.conf set `appendonly yes` (and/or `save`) with `dir /data`, and mount /data from a volumeClaimTemplate.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const redis = primary(idx, 'redis');
      if (!redis) return fail('no Redis workload found (label app: redis / component redis, or a redis image)');
      const conf = parseRedisConf(redisConf(idx, redis));
      const args = redisArgs(redis);
      const appendonly = args.get('appendonly') ?? conf.get('appendonly')?.[0] ?? 'no';
      const save = args.has('save') ? [args.get('save')!] : conf.get('save');
      const rdbOn = save === undefined ? true : !(save.length === 1 && save[0] === ''); // no save line = Redis 7 default schedule
      const dir = args.get('dir') ?? conf.get('dir')?.[0] ?? '/data';
      const { volume } = volumeForPath(redis, undefined, dir);
      const kind = volumeKind(redis, volume);
      const evidence = { workload: ref(redis), appendonly, save: save ?? '(unset: Redis default schedule)', dir, volume, volumeKind: kind };
      if (appendonly !== 'yes' && !rdbOn) return fail('both AOF and RDB snapshots are off', evidence);
      if (kind !== 'pvc') return fail(`Redis dir ${dir} is on ${kind}`, evidence);
      return pass(`${appendonly === 'yes' ? 'AOF' : 'RDB'} persistence in ${dir} on PVC`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.redis-live',
    section: 'persistence',
    item: '1.4',
    title: 'Redis persistence is really on (CONFIG GET, INFO persistence)',
    severity: 'fail',
    modes: ['live'],
    remediation: '`CONFIG SET appendonly yes` then `CONFIG REWRITE` (and fix redis.conf); investigate aof_last_write_status / rdb_last_bgsave_status errors (disk full, permissions).',
    run(ctx) {
      const r = ctx.live?.redis;
      if (!r) return notCheckable('Redis was not probed (no redis.url in the profile)');
      if (!r.ok) return notCheckable(`Redis unreachable: ${r.reason}`);
      const { config, persistence } = r.value;
      const aof = config.appendonly === 'yes' && persistence.aof_enabled === '1';
      const rdb = (config.save ?? '').trim() !== '';
      const evidence = { config, persistence };
      if (!aof && !rdb) return fail('appendonly no and no save schedule: Redis keeps state in memory only', evidence);
      if (aof && persistence.aof_last_write_status && persistence.aof_last_write_status !== 'ok') return fail(`aof_last_write_status=${persistence.aof_last_write_status}`, evidence);
      if (persistence.rdb_last_bgsave_status && persistence.rdb_last_bgsave_status !== 'ok') return fail(`rdb_last_bgsave_status=${persistence.rdb_last_bgsave_status}`, evidence);
      return pass(`${aof ? 'AOF' : 'RDB'} on in ${config.dir}, last writes ok`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.redis-ha',
    section: 'persistence',
    item: '1.5',
    title: 'Redis is highly available (cluster with replicas, TLS replication when TLS-only)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Run Redis Cluster (≥3 masters with replicas, e.g. 6 pods, `cluster-enabled yes`) or a managed/Sentinel Redis; with `port 0` also set `tls-replication yes` and `tls-cluster yes`.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const redis = primary(idx, 'redis');
      if (!redis) return warn('no in-namespace Redis; assuming an external managed endpoint (verify its HA)');
      const conf = parseRedisConf(redisConf(idx, redis));
      const cluster = conf.get('cluster-enabled')?.[0] === 'yes';
      const tlsOnly = conf.get('port')?.[0] === '0';
      const evidence = { workload: ref(redis), replicas: redis.replicas, cluster, tlsOnly, tlsReplication: conf.get('tls-replication')?.[0], tlsCluster: conf.get('tls-cluster')?.[0] };
      if (!cluster || redis.replicas < 6) return warn(`${ref(redis)}: ${cluster ? '' : 'not in cluster mode, '}${redis.replicas} pod(s); 3 masters + 3 replicas expected`, evidence);
      if (tlsOnly && (evidence.tlsReplication !== 'yes' || evidence.tlsCluster !== 'yes')) return fail('TLS-only Redis (port 0) without tls-replication/tls-cluster: replication and the cluster bus cannot work', evidence);
      return pass(`Redis Cluster with ${redis.replicas} pods`, evidence);
    },
  }),
  defineCheck({
    id: 'persistence.retention-live',
    section: 'persistence',
    item: '1.7',
    title: 'Cordum key families that should expire carry a TTL (sampled live in Redis)',
    severity: 'warn',
    modes: ['live'],
    remediation: 'Find what writes the keys without TTL in the evidence (a client or script bypassing Cordum, JOB_META_TTL/REDIS_DATA_TTL set to 0, a restore that dropped TTLs) and set an EXPIRE on them. Families Cordum keeps forever (job:events, job:result_ptr, trace, DLQ entries) need a pruning job of your own sized to the growth shown.',
    run(ctx) {
      const r = ctx.live?.redis;
      if (!r) return notCheckable('Redis was not probed (no redis.url in the profile)');
      if (!r.ok) return notCheckable(`Redis unreachable: ${r.reason}`);
      const ret = r.value.retention;
      if (!ret) return notCheckable('retention was not sampled');
      if ('error' in ret) return notCheckable(`retention sampling failed: ${ret.error}`, ret);
      const mb = (n: number, bytes: number | null) => (bytes === null ? '' : `, ~${((n * bytes) / 1048576).toFixed(1)} MiB`);
      const findings: Finding[] = [];
      for (const f of ret.families) {
        if (!f.withoutTtl) continue;
        const growth = `${f.estimatedWithoutTtl} key(s) without TTL (${f.withoutTtl} of ${f.sampled} sampled${mb(f.estimatedWithoutTtl, f.meanBytes)})`;
        // Families Cordum itself keeps forever are reported, not warned: a real, healthy Cordum
        // has them (the recording of a fresh install shows it), and a warning on every healthy
        // installation would teach on-call to ignore the audit.
        if (f.expires) findings.push({ status: 'warn', message: `${f.family}: ${growth}; they should expire (${f.why}) and will pile up` });
        else findings.push({ status: 'info', message: `${f.family}: ${growth}, kept by Cordum's design (${f.why}): grows with every job and never shrinks` });
      }
      if (ret.dlqOrphans) findings.push({ status: 'info', message: `${ret.dlqOrphans} DLQ entries no longer in dlq:index (trimmed, kept forever)` });
      const evidence = { ...ret, sampledOn: 'the Redis node the profile names' };
      const result = fromFindings(findings, `every family that should expire has TTLs (${ret.families.filter((f) => f.expires && f.sampled).map((f) => `${f.family} ${f.keys}`).join(', ') || 'no Cordum keys yet'})`, evidence);
      const notes = findings.filter((f) => f.status === 'info').map((f) => f.message);
      return notes.length && result.status !== 'pass' ? { ...result, message: `${result.message}. Also: ${notes.join('; ')}` } : notes.length ? { ...result, message: `${result.message}. ${notes.join('; ')}` } : result;
    },
  }),
  defineCheck({
    id: 'persistence.retention-ttls',
    section: 'persistence',
    item: '1.7',
    title: 'Retention TTLs per component (report)',
    severity: 'info',
    modes: ['static', 'live'],
    remediation: 'Set REDIS_DATA_TTL, JOB_META_TTL, ARTIFACT_TTL_* and NATS_JS_MAX_AGE to what your compliance rules require.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const defaults: Record<string, string> = { REDIS_DATA_TTL: '24h', JOB_META_TTL: '168h', NATS_JS_MAX_AGE: '168h', ARTIFACT_TTL_SHORT: '24h', ARTIFACT_TTL_STANDARD: '168h', ARTIFACT_TTL_AUDIT: '720h' };
      const per: Record<string, Record<string, string>> = {};
      for (const c of NATS_CLIENTS) {
        const w = primary(idx, c);
        if (!w) continue;
        per[ref(w)] = Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, idx.envOf(w, k) ?? `${d} (default)`]));
      }
      const hours = Object.values(per).flatMap((o) => Object.values(o).map((v) => parseDurationHours(v.split(' ')[0])));
      return info(`effective TTLs reported for ${Object.keys(per).length} component(s); shortest ${Math.min(...hours.filter((h): h is number => h !== undefined))}h`, per);
    },
  }),
];
