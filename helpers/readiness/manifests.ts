// Loads the manifests a static audit reads: a folder of YAML/JSON (recursive, multi-document, List
// kinds flattened), a kustomize overlay or Helm chart rendered with the real tool when it is on the
// PATH, or text from stdin. Render and parse problems are kept as findings (checklist 11.1) and the
// audit continues on whatever did parse.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PreconditionError, ConfigError } from '../errors.js';
import { MiB, checkUserPath, readUserFile } from '../files.js';
import { findBinary } from '../../sandbox/processes.js';
import type { KubeObject } from './objects.js';

export interface LoadedManifests {
  objects: KubeObject[];
  /** Human-readable problems: "file:line: message" or the render tool's error text. */
  errors: string[];
  /** How the objects were obtained, for the report. */
  source: string;
  /** Set when a kustomize/helm render was attempted; false = it failed. */
  rendered?: boolean;
}

/** Parse YAML/JSON text with one or more documents; `origin` names it in errors. */
export function parseManifestText(text: string, origin: string): { objects: KubeObject[]; errors: string[] } {
  const objects: KubeObject[] = [];
  const errors: string[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(`${origin}:${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
      continue;
    }
    flatten(doc.toJS(), objects);
  }
  return { objects, errors };
}

function flatten(v: unknown, out: KubeObject[]): void {
  if (!v || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (const x of v) flatten(x, out);
    return;
  }
  const o = v as KubeObject;
  if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray((o as { items?: unknown }).items)) {
    flatten((o as unknown as { items: unknown[] }).items, out);
    return;
  }
  if (typeof o.kind === 'string' && o.metadata && typeof o.metadata.name === 'string') out.push(o);
}

function walk(dir: string, skip: (name: string) => boolean, acc: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, skip, acc);
    else if (/\.(ya?ml|json)$/i.test(name) && !skip(name)) acc.push(p);
  }
  return acc;
}

/** A rendered chart with its CRDs is a few MiB; anything far beyond is not a manifest. */
const MAX_MANIFEST_BYTES = 64 * MiB;

export function loadManifestDir(dir: string, opts: { skipKustomizeFiles?: boolean } = {}): LoadedManifests {
  if (!existsSync(dir)) throw new ConfigError(`manifests: ${dir} does not exist`);
  checkUserPath(dir, { what: 'manifests path', kinds: ['file', 'dir'] });
  const skip = (n: string) => !!opts.skipKustomizeFiles && /^kustomization\.ya?ml$|^Kustomization$/.test(n);
  const files = statSync(dir).isDirectory() ? walk(dir, skip) : [dir];
  const objects: KubeObject[] = [];
  const errors: string[] = [];
  for (const f of files) {
    // Bounded and type-checked: a FIFO or /dev/zero given as manifests must not hang the audit.
    const r = parseManifestText(readUserFile(f, { what: 'manifest file', maxBytes: MAX_MANIFEST_BYTES }), relative(process.cwd(), f) || f);
    objects.push(...r.objects);
    errors.push(...r.errors);
  }
  return { objects, errors, source: `dir:${dir}` };
}

function run(bin: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 128 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err ? err.message : '') });
    });
  });
}

/** `kubectl kustomize <dir>` (what `kubectl apply -k` renders), or standalone `kustomize build`. */
export async function renderKustomize(dir: string, timeoutMs = 60_000): Promise<LoadedManifests> {
  const kubectl = findBinary('kubectl');
  const kustomize = findBinary('kustomize');
  if (!kubectl && !kustomize) throw new PreconditionError(`cannot render ${dir}: neither kubectl nor kustomize is on PATH (install one, or pass rendered YAML on stdin)`);
  const [bin, args] = kubectl ? [kubectl, ['kustomize', dir]] : [kustomize!, ['build', dir]];
  const r = await run(bin, args, timeoutMs);
  if (r.code !== 0) {
    // 11.1: the render error is a finding; keep auditing the raw files that still parse.
    const fallback = loadManifestDir(dir, { skipKustomizeFiles: true });
    return { objects: fallback.objects, errors: [`render failed (${bin.split('/').pop()} ${args.join(' ')}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`, ...fallback.errors], source: `kustomize:${dir}`, rendered: false };
  }
  const parsed = parseManifestText(r.stdout, `kustomize:${dir}`);
  return { ...parsed, source: `kustomize:${dir}`, rendered: true };
}

export async function renderHelm(chart: string, opts: { release?: string; namespace?: string; valuesFiles?: string[]; timeoutMs?: number } = {}): Promise<LoadedManifests> {
  const helm = findBinary('helm');
  if (!helm) throw new PreconditionError(`cannot render chart ${chart}: helm is not on PATH (install helm, or pass \`helm template\` output on stdin)`);
  const args = ['template', opts.release ?? 'cordum', chart, ...(opts.namespace ? ['-n', opts.namespace] : []), ...(opts.valuesFiles ?? []).flatMap((f) => ['-f', f])];
  const r = await run(helm, args, opts.timeoutMs ?? 60_000);
  if (r.code !== 0) return { objects: [], errors: [`render failed (helm ${args.join(' ')}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`], source: `helm:${chart}`, rendered: false };
  return { ...parseManifestText(r.stdout, `helm:${chart}`), source: `helm:${chart}`, rendered: true };
}

export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<LoadedManifests> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return { ...parseManifestText(Buffer.concat(chunks).toString('utf8'), 'stdin'), source: 'stdin' };
}

/** A path: kustomization → kustomize, Chart.yaml → helm, otherwise a plain folder/file; "-" = stdin. */
export async function loadManifests(path: string, opts: { namespace?: string; valuesFiles?: string[] } = {}): Promise<LoadedManifests> {
  if (path === '-') return readStdin();
  if (!existsSync(path)) throw new ConfigError(`manifests: ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    if (['kustomization.yaml', 'kustomization.yml', 'Kustomization'].some((f) => existsSync(join(path, f)))) return renderKustomize(path);
    if (existsSync(join(path, 'Chart.yaml'))) return renderHelm(path, { namespace: opts.namespace, valuesFiles: opts.valuesFiles });
  }
  return loadManifestDir(path);
}
