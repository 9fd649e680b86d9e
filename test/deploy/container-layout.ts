// The runbook container as deploy/Dockerfile builds it and a CronJob in deploy/k8s runs it, put
// together from those two files (no Docker engine here) and run with bubblewrap: the image's /app
// assembled in a temp dir, the host's Debian /usr and /etc standing in for the image's OS layer, the
// pod's volumes bound where the manifest mounts them, everything else read-only, the pod's uid/gid,
// env and command. What the layout cannot reproduce (the Kubernetes API) is left to the caller.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, posix } from 'node:path';
import { RUNTIME_STAGE, STAGES, contextFiles, envOf, runCommandsOf, type Instruction } from './dockerfile.js';
import { findBinary } from '../../helpers/processes.js';
import { REPO, type Doc } from './k8s-fixture.js';

/** PATH of the Debian-based node image (Docker's default; the Dockerfile does not change it). */
const BASE_IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Host folders that stand in for the image's OS layer (Debian, with the packages the Dockerfile installs). */
const OS_LAYER = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib64'];

/** Can bubblewrap make a user namespace here (root, or unprivileged user namespaces allowed)? */
export function bwrapWorks(): boolean {
  if (!findBinary('bwrap')) return false;
  return spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-user', '--uid', '10001', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** The Debian package that installed this binary on the host, by dpkg's own records. */
export function debianPackageOf(binary: string): string | undefined {
  const path = findBinary(binary);
  if (!path || !findBinary('dpkg-query')) return undefined;
  const r = spawnSync('dpkg-query', ['-S', path], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(':')[0]!.trim() : undefined;
}

// ---------------------------------------------------------------------------------------------
// The image

export interface ImageLayout {
  /** Host folder holding the image's files at their container paths (e.g. <root>/app). */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: { uid: number; gid: number };
  /** Debian packages the runtime stage installs (the host's OS layer must have them). */
  packages: string[];
  /** Container paths the Dockerfile expects a volume at (mkdir + chown for the runtime user). */
  volumePaths: string[];
}

function single(stage: Instruction[], op: string): string {
  const found = stage.filter((i) => i.op === op);
  if (found.length !== 1) throw new Error(`the runtime stage has ${found.length} ${op} instructions; the layout reproduces exactly one`);
  return found[0]!.args;
}

/** Runs the deps stage's install (offline, from the local store) and returns its node_modules. */
function buildDepsStage(scratch: string): string {
  const deps = STAGES.find((s) => /\bAS\s+deps\b/i.test(s[0]!.args));
  if (!deps) throw new Error('deploy/Dockerfile has no "deps" stage');
  const dir = join(scratch, 'deps');
  mkdirSync(dir);
  for (const copy of deps.filter((i) => i.op === 'COPY')) {
    const files = copy.args.split(/\s+/).slice(0, -1);
    // A file or a folder (patches/), to the same name in the stage's WORKDIR.
    for (const f of files) cpSync(join(REPO, f), join(dir, f), { recursive: true });
  }
  const install = runCommandsOf(deps).find((argv) => argv[0] === 'pnpm' && argv[1] === 'install');
  if (!install) throw new Error('the deps stage runs no `pnpm install`');
  const r = spawnSync('pnpm', [...install.slice(1), '--offline'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`deps stage: pnpm ${install.slice(1).join(' ')} --offline failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return join(dir, 'node_modules');
}

/**
 * Assembles the runtime stage in a temp dir: COPY instructions, then each RUN step reproduced
 * (symlinks) or stood in for (packages: the host's; user: the uid/gid; folders: volumes). A RUN
 * step of another kind fails the assembly, so a new one cannot be silently left out.
 */
export function assembleImage(scratch: string): ImageLayout {
  const root = join(scratch, 'root');
  const workdir = single(RUNTIME_STAGE, 'WORKDIR');
  const inRoot = (p: string) => join(root, isAbsolute(p) ? p : posix.join(workdir, p));
  mkdirSync(inRoot(workdir), { recursive: true });
  const packages: string[] = [];
  const volumePaths: string[] = [];
  let user: ImageLayout['user'] | undefined;
  for (const i of RUNTIME_STAGE) {
    if (i.op === 'COPY') {
      const [src, dest] = i.args.split(/\s+/).filter((a) => !a.startsWith('--from='));
      if (i.args.startsWith('--from=deps') && src === `${workdir}/node_modules`) renameSync(buildDepsStage(scratch), inRoot(dest!));
      else if (src === '.' && dest === '.') {
        for (const f of contextFiles()) {
          mkdirSync(dirname(inRoot(f)), { recursive: true });
          copyFileSync(join(REPO, f), inRoot(f));
        }
      } else throw new Error(`COPY ${i.args}: not reproduced by the layout`);
    } else if (i.op === 'RUN') {
      for (const argv of runCommandsOf([i])) {
        const cmd = argv.filter((a) => !/^[A-Z_]+=/.test(a));
        if (cmd[0] === 'apt-get' && cmd[1] === 'install') packages.push(...cmd.slice(2).filter((a) => !a.startsWith('-')));
        else if ((cmd[0] === 'apt-get' && cmd[1] === 'update') || (cmd[0] === 'rm' && cmd.at(-1) === '/var/lib/apt/lists/*')) continue;
        else if (cmd[0] === 'groupadd' || cmd[0] === 'useradd') continue; // the uid/gid: USER below
        else if (cmd[0] === 'mkdir' || cmd[0] === 'chown') volumePaths.push(cmd.at(-1)!);
        else if (cmd[0] === 'ln' && cmd[1] === '-s' && cmd.length === 4) symlinkSync(cmd[2]!, inRoot(cmd[3]!));
        else if (cmd[0] === 'printf' && cmd.at(-2) === '>') {
          // The suite's git sha, stamped at build time: an image built without --build-arg says unknown.
          writeFileSync(inRoot(cmd.at(-1)!), 'unknown\n');
        } else if (cmd[0] === 'node' && cmd[1] === 'bin/build.mjs' && cmd.length === 2) {
          // The ahead-of-time build, run in the assembled tree as the image build runs it.
          const r = spawnSync('node', ['bin/build.mjs'], { cwd: inRoot(workdir), encoding: 'utf8', timeout: 120_000 });
          if (r.status !== 0) throw new Error(`RUN node bin/build.mjs failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
        }
        else throw new Error(`RUN step "${cmd.join(' ')}" is not reproduced by the layout`);
      }
    } else if (i.op === 'USER') {
      const [uid, gid] = i.args.split(':').map(Number);
      user = { uid: uid!, gid: gid ?? uid! };
    }
  }
  if (!user) throw new Error('the runtime stage sets no USER');
  return { root, workdir, env: { PATH: BASE_IMAGE_PATH, ...envOf(RUNTIME_STAGE) }, user, packages, volumePaths };
}

// ---------------------------------------------------------------------------------------------
// The pod

export interface PodRun {
  exitCode: number | null;
  output: string;
  /** Host folder of each volume, by volume name. */
  volumes: Record<string, string>;
}

export interface PodInputs {
  /** Data of the ConfigMaps the pod mounts, by name (key -> file content). */
  configMaps: Record<string, Record<string, string>>;
  /** Secret values, by "secret/key"; an optional Secret that is not given is not mounted. */
  secrets: Record<string, string>;
  timeoutMs: number;
}

/** The first container of a CronJob's pod, run in the image layout under bubblewrap. */
export async function runCronJobPod(image: ImageLayout, cronjob: Doc, inputs: PodInputs, scratch: string): Promise<PodRun> {
  const pod = cronjob.spec.jobTemplate.spec.template.spec;
  const container = pod.containers[0];
  const sc = { ...pod.securityContext, ...container.securityContext };
  const args: string[] = ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--die-with-parent', '--new-session', '--clearenv'];
  args.push('--uid', String(sc.runAsUser ?? image.user.uid), '--gid', String(sc.runAsGroup ?? image.user.gid));
  for (const dir of OS_LAYER) {
    if (!existsSync(dir)) continue;
    if (lstatSync(dir).isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else args.push('--ro-bind', dir, dir);
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--ro-bind', join(image.root, image.workdir), image.workdir);

  const volumes: Record<string, string> = {};
  const volumeByName = new Map<string, Record<string, any>>(pod.volumes.map((v: { name: string }) => [v.name, v]));
  for (const m of container.volumeMounts as Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>) {
    const v = volumeByName.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} names no volume`);
    let src: string;
    if (v.emptyDir || v.persistentVolumeClaim) {
      src = mkdtempSync(join(scratch, `vol-${m.name}-`));
    } else if (v.configMap || v.secret) {
      const data = v.configMap ? inputs.configMaps[v.configMap.name] : secretData(inputs.secrets, v.secret.secretName);
      if (!data) {
        if (v.secret?.optional) continue; // Kubernetes mounts nothing useful either; nothing here reads it
        throw new Error(`volume ${m.name}: no data given for ${v.configMap ? 'ConfigMap' : 'Secret'} ${v.configMap?.name ?? v.secret.secretName}`);
      }
      src = mkdtempSync(join(scratch, `vol-${m.name}-`));
      for (const [key, content] of Object.entries(data)) writeFileSync(join(src, key), content);
    } else throw new Error(`volume ${m.name}: kind not reproduced by the layout`);
    volumes[m.name] = src;
    const from = m.subPath ? join(src, m.subPath) : src;
    // A subPath file mount needs its mount point in the image, as a kubelet creates it.
    if (m.subPath && m.mountPath.startsWith(`${image.workdir}/`) && !existsSync(join(image.root, m.mountPath))) writeFileSync(join(image.root, m.mountPath), '');
    args.push(m.readOnly ? '--ro-bind' : '--bind', from, m.mountPath);
  }
  if (sc.readOnlyRootFilesystem) args.push('--remount-ro', '/');
  args.push('--chdir', image.workdir);

  const env: Record<string, string> = { ...image.env };
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const value = inputs.secrets[`${ref.name}/${ref.key}`];
      if (value !== undefined) env[e.name] = value;
      else if (!ref.optional) throw new Error(`env ${e.name}: Secret ${ref.name}/${ref.key} not given`);
    }
  }
  for (const [k, v] of Object.entries(env)) args.push('--setenv', k, v);

  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  const child = spawn('bwrap', [...args, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const add = (d: Buffer) => {
    output = (output + d.toString()).slice(-64_000);
  };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  const timer = setTimeout(() => child.kill('SIGKILL'), inputs.timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      output += `\nbwrap: ${err.message}`;
      resolve(null);
    });
    child.on('close', (code) => resolve(code));
  });
  clearTimeout(timer);
  return { exitCode, output, volumes };
}

function secretData(secrets: Record<string, string>, name: string): Record<string, string> | undefined {
  const entries = Object.entries(secrets).filter(([k]) => k.startsWith(`${name}/`));
  return entries.length ? Object.fromEntries(entries.map(([k, v]) => [k.slice(name.length + 1), v])) : undefined;
}

export function scratchDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'rb-layout-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
