// A real Kubernetes control plane for the tests: etcd (Debian's etcd-server) and kube-apiserver, plus
// kube-controller-manager when a test needs controllers (Deployments get ReplicaSets and pods, scale to
// 0 removes them, HPAs are reconciled, namespaces get their default ServiceAccount). Everything listens
// on free 127.0.0.1 ports, with a CA, serving and client certificates and the ServiceAccount signing
// key generated here, at test time, into a temp folder that stop() removes.
//
// Authentication: the admin kubeconfig uses a client certificate in system:masters; extra users come
// from a static token file (humans, e.g. an on-call operator bound to a Role); ServiceAccounts get
// short-lived tokens through the TokenRequest API, exactly as a pod's projected token. Authorization
// is the real RBAC authorizer. An audit log (JSON lines) records every request that is not the
// controllers' own, so tests can see which calls a runbook made, in which order, and what RBAC decided.
//
// There is no kubelet and no scheduler: pods stay Pending. KubeletStandIn plays the node where a test
// needs pods that terminate gracefully (bound to a node, a deleted pod stays Terminating until its
// kubelet confirms; the stand-in confirms when the test says so).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { freePort } from '../../../helpers/processes.js';
import { kubeBinaries, type KubeBinaries } from './binaries.js';

export interface KubeClusterOptions {
  /** Start kube-controller-manager too (default false: API server only). */
  controllers?: boolean;
  /** Users of the static token file, e.g. a human operator: name → groups. Tokens are generated. */
  users?: Record<string, string[]>;
  /** Start-up deadline for the whole control plane (default 120 s: the machine may be busy). */
  startTimeoutMs?: number;
}

/** One request as the API server's audit log recorded it (stage ResponseComplete). */
export interface AuditEvent {
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestObject?: any;
  annotations?: Record<string, string>;
  stageTimestamp: string;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubeCluster {
  version: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin (system:masters) kubeconfig; context "admin". */
  kubeconfigPath: string;
  caFile: string;
  /** Tokens of the static users given in options. */
  userTokens: Record<string, string>;
  /** An admin client (helpers/kube.ts shape is built by the tests with createKube). */
  kc: k8s.KubeConfig;
  binaries: KubeBinaries;
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** kubectl apply of objects or YAML text, as admin; throws with kubectl's output when it fails. */
  apply(objects: object[] | string, opts?: { namespace?: string; dryRun?: boolean }): Promise<string>;
  /** A fresh namespace named <prefix>-<random> (with its default ServiceAccount when controllers run). */
  createNamespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  /** A ServiceAccount token from the TokenRequest API (what a pod's projected token is). */
  serviceAccountToken(namespace: string, serviceAccount: string, expirationSeconds?: number): Promise<string>;
  /** A kubeconfig file (context "test") that authenticates with `token`; default namespace `namespace`. */
  kubeconfigForToken(token: string, namespace: string): string;
  /** Audit events so far (requests by the controllers and the API server itself are not logged). */
  auditEvents(): AuditEvent[];
  /** Log tail of a component, for failure messages. */
  logTail(component: 'etcd' | 'kube-apiserver' | 'kube-controller-manager', lines?: number): string;
  stop(): Promise<void>;
}

const AUDIT_POLICY = {
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [
    { level: 'None', users: ['system:kube-controller-manager', 'system:apiserver', 'system:kube-scheduler'] },
    { level: 'None', userGroups: ['system:nodes'] },
    { level: 'None', nonResourceURLs: ['/readyz*', '/livez*', '/healthz*', '/version', '/openapi*', '/api', '/apis', '/api/*', '/apis/*'] },
    // Secret bodies never reach the log; everything else is logged with its request body.
    { level: 'Metadata', resources: [{ group: '', resources: ['secrets', 'serviceaccounts/token'] }] },
    { level: 'Request', verbs: ['create', 'update', 'patch', 'delete', 'deletecollection'] },
    { level: 'Metadata' },
  ],
};

/** The controllers the tests rely on; node lifecycle (no kubelet would ever report) stays off. */
const CONTROLLERS = ['deployment', 'replicaset', 'statefulset', 'job', 'cronjob', 'horizontalpodautoscaling', 'garbagecollector', 'namespace', 'serviceaccount', 'serviceaccount-token', 'disruption'];

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      if (err && code === -1 && !(err as { killed?: boolean }).killed) return reject(err);
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + ((err as { killed?: boolean })?.killed ? `\n(killed after ${opts.timeoutMs ?? 60_000} ms)` : '') });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** CA, API server serving cert, admin and controller-manager client certs, ServiceAccount key pair. */
async function makePki(dir: string): Promise<void> {
  await openssl(['req', '-x509', ...EC, '-subj', '/CN=cordum-runbooks-test-kube-ca', '-days', '3', '-keyout', 'ca.key', '-out', 'ca.crt'], dir);
  const sign = async (name: string, subj: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    await openssl(['req', ...EC, '-subj', subj, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
  };
  await Promise.all([
    sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n'),
    sign('admin', '/O=system:masters/CN=cordum-runbooks-test-admin', 'extendedKeyUsage=clientAuth\n'),
    // The controllers act with this identity (no per-controller ServiceAccounts): it is a superuser.
    sign('controller-manager', '/O=system:masters/CN=system:kube-controller-manager', 'extendedKeyUsage=clientAuth\n'),
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir).then(() => openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir)),
  ]);
}

function kubeconfigYaml(server: string, caFile: string, user: Record<string, string>, namespace = 'default', name = 'admin'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': name,
    clusters: [{ name: 'cordum-test', cluster: { server, 'certificate-authority-data': readFileSync(caFile).toString('base64') } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: 'cordum-test', user: name, namespace } }],
  });
}

interface Proc {
  name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager';
  child: ChildProcess;
  log: string;
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function startProc(name: Proc['name'], bin: string, args: string[], dir: string): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  child.on('error', () => undefined);
  return { name, child, log };
}

const exited = (p: Proc) => p.child.exitCode !== null || p.child.signalCode !== null;

function httpsGet(url: string, dir: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')), timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, deadline: number, procs: Proc[], probe: () => Promise<boolean>): Promise<void> {
  for (;;) {
    const dead = procs.find(exited);
    if (dead) throw new Error(`${dead.name} exited (code ${dead.child.exitCode ?? dead.child.signalCode}) while waiting for ${what}:\n${tail(dead.log, 8)}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last log lines:\n${procs.map((p) => `[${p.name}] ${tail(p.log, 4)}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopProcs(procs: Proc[]): Promise<void> {
  for (const p of [...procs].reverse()) {
    if (exited(p)) continue;
    const gone = new Promise<void>((r) => p.child.once('exit', () => r()));
    try {
      process.kill(-p.child.pid!, 'SIGTERM');
    } catch {
      continue;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-p.child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 10_000);
    await gone;
    clearTimeout(timer);
  }
}

/**
 * A crashed test worker runs no exit handler: one small shell loop per cluster stops the processes
 * and removes the folder once the worker is gone. It ends by itself after a normal stop.
 */
function watchdog(procs: Proc[], dir: string): void {
  const pids = procs.map((p) => p.child.pid).filter(Boolean).join(' ');
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null && [ -d '${dir}' ]; do sleep 1; done`,
    `for p in ${pids}; do kill -TERM -$p 2>/dev/null; done; sleep 3; for p in ${pids}; do kill -KILL -$p 2>/dev/null; done; rm -rf '${dir}'`,
  ].join('; ');
  const dog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  dog.on('error', () => undefined);
  dog.unref();
}

export async function startKubeCluster(opts: KubeClusterOptions = {}): Promise<KubeCluster> {
  const binaries = kubeBinaries();
  const startTimeout = opts.startTimeoutMs ?? 120_000;
  // tmpfs: etcd fsyncs every write; on a shared disk that alone can take seconds.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'cordum-rb-kube-'));
  const procs: Proc[] = [];
  const onExit = () => {
    for (const p of procs) if (!exited(p)) try { process.kill(-p.child.pid!, 'SIGKILL'); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  try {
    await makePki(dir);
    const userTokens: Record<string, string> = {};
    const lines = Object.entries(opts.users ?? {}).map(([user, groups], i) => {
      userTokens[user] = randomBytes(24).toString('hex');
      return `${userTokens[user]},${user},u${i + 1},"${groups.join(',')}"`;
    });
    writeFileSync(join(dir, 'tokens.csv'), lines.join('\n') + '\n', { mode: 0o600 });
    writeFileSync(join(dir, 'audit-policy.yaml'), stringify(AUDIT_POLICY));
    const deadline = Date.now() + startTimeout;

    // Ports are picked free and then bound by another process: a rare clash is retried with new ones.
    let server = '';
    for (let attempt = 1; ; attempt++) {
      const [client, peer, secure] = [await freePort(), await freePort(), await freePort()];
      const etcd = startProc('etcd', binaries.etcd, [
        '--name', 'default', '--data-dir', join(dir, `etcd-${attempt}`),
        '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `default=http://127.0.0.1:${peer}`, '--log-level', 'warn',
      ], dir);
      procs.push(etcd);
      try {
        await until('etcd /health', deadline, [etcd], async () => {
          const res = await fetch(`http://127.0.0.1:${client}/health`, { signal: AbortSignal.timeout(2000) });
          return res.ok && /"health":\s*"true"/.test(await res.text());
        });
        server = `https://127.0.0.1:${secure}`;
        const api = startProc('kube-apiserver', binaries.apiserver, [
          `--etcd-servers=http://127.0.0.1:${client}`,
          '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${secure}`, `--cert-dir=${dir}`,
          `--tls-cert-file=${join(dir, 'apiserver.crt')}`, `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
          `--client-ca-file=${join(dir, 'ca.crt')}`, `--token-auth-file=${join(dir, 'tokens.csv')}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--authorization-mode=RBAC', '--service-cluster-ip-range=10.0.0.0/24',
          `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`, `--audit-log-path=${join(dir, 'audit.log')}`, '--audit-log-mode=blocking',
          // 127.0.0.1 cannot be the "kubernetes" Service's endpoint; nothing here needs that endpoint.
          '--endpoint-reconciler-type=none', '--profiling=false', '--enable-priority-and-fairness=false',
          // Its finalizer is removed by a controller that does not run here: a deleted PVC would never go.
          '--disable-admission-plugins=StorageObjectInUseProtection',
        ], dir);
        procs.push(api);
        await until('kube-apiserver /readyz', deadline, [etcd, api], async () => (await httpsGet(`${server}/readyz`, dir, 5000)).status === 200);
        break;
      } catch (err) {
        const clash = procs.some((p) => /address already in use/i.test(tail(p.log, 20)));
        await stopProcs(procs.splice(0));
        if (!clash || attempt >= 3) throw err;
      }
    }

    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, join(dir, 'ca.crt'), { 'client-certificate-data': readFileSync(join(dir, 'admin.crt')).toString('base64'), 'client-key-data': readFileSync(join(dir, 'admin.key')).toString('base64') }), { mode: 0o600 });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);

    if (opts.controllers) {
      const kcmConfig = join(dir, 'controller-manager.kubeconfig');
      writeFileSync(kcmConfig, kubeconfigYaml(server, join(dir, 'ca.crt'), { 'client-certificate': join(dir, 'controller-manager.crt'), 'client-key': join(dir, 'controller-manager.key') }, 'default', 'kcm'), { mode: 0o600 });
      const kcm = startProc('kube-controller-manager', binaries.controllerManager, [
        `--kubeconfig=${kcmConfig}`, '--leader-elect=false', '--secure-port=0', '--use-service-account-credentials=false',
        `--controllers=${CONTROLLERS.join(',')}`, `--service-account-private-key-file=${join(dir, 'sa.key')}`, `--root-ca-file=${join(dir, 'ca.crt')}`,
        // Faster than the defaults, so tests see controller effects sooner; the logic is the same.
        '--concurrent-deployment-syncs=2', '--horizontal-pod-autoscaler-sync-period=5s',
      ], dir);
      procs.push(kcm);
      // Controllers are working once the ServiceAccount controller has made "default" in "default".
      await until('kube-controller-manager (default ServiceAccount)', deadline, procs, async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      });
    }
    watchdog(procs, dir);

    const cluster: KubeCluster = {
      version: binaries.version,
      server,
      kubeconfigPath,
      caFile: join(dir, 'ca.crt'),
      userTokens,
      kc,
      binaries,
      kubectl: (args, o = {}) => run(binaries.kubectl, ['--kubeconfig', o.kubeconfig ?? kubeconfigPath, ...args], { input: o.input, timeoutMs: o.timeoutMs, env: { ...process.env, KUBECONFIG: '' } }),
      async apply(objects, o = {}) {
        const text = typeof objects === 'string' ? objects : objects.map((x) => stringify(x)).join('---\n');
        const args = ['apply', '-f', '-', ...(o.namespace ? ['-n', o.namespace] : []), ...(o.dryRun ? ['--dry-run=server'] : [])];
        const r = await cluster.kubectl(args, { input: text });
        if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
        return r.stdout;
      },
      async createNamespace(prefix, labels) {
        const name = `${prefix}-${randomBytes(3).toString('hex')}`;
        await core.createNamespace({ body: { metadata: { name, labels } } });
        if (opts.controllers) {
          await until(`ServiceAccount default in ${name}`, Date.now() + 30_000, procs, async () => {
            await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
            return true;
          });
        }
        return name;
      },
      async serviceAccountToken(namespace, serviceAccount, expirationSeconds = 3600) {
        const tr = await core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace, body: { spec: { expirationSeconds, audiences: [] } } });
        if (!tr.status?.token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
        return tr.status.token;
      },
      kubeconfigForToken(token, namespace) {
        const file = join(dir, `token-${randomBytes(4).toString('hex')}.kubeconfig`);
        writeFileSync(file, kubeconfigYaml(server, join(dir, 'ca.crt'), { token }, namespace, 'test'), { mode: 0o600 });
        return file;
      },
      auditEvents() {
        let text = '';
        try {
          text = readFileSync(join(dir, 'audit.log'), 'utf8');
        } catch {
          return [];
        }
        return text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as AuditEvent);
      },
      logTail: (component, n = 10) => {
        const p = procs.find((x) => x.name === component);
        return p ? tail(p.log, n) : '(not running)';
      },
      async stop() {
        await stopProcs(procs);
        process.removeListener('exit', onExit);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return cluster;
  } catch (err) {
    await stopProcs(procs);
    process.removeListener('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
