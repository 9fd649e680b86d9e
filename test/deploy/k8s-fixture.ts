// Loads deploy/k8s as parsed YAML documents for the manifest tests.

import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const K8S_DIR = join(REPO, 'deploy/k8s');

// Manifests are plain data; `any` keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

export interface LoadedFile {
  file: string;
  docs: Doc[];
  errors: string[];
}

export function loadYamlFile(path: string): LoadedFile {
  const docs: Doc[] = [];
  const errors: string[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (doc.errors.length) errors.push(...doc.errors.map((e) => `${path}: ${e.message}`));
    const value = doc.toJS() as Doc | null;
    if (value) docs.push(value);
  }
  return { file: path, docs, errors };
}

export function loadK8sDir(dir = K8S_DIR): LoadedFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort()
    .map((f) => loadYamlFile(join(dir, f)));
}

export function allDocs(dir = K8S_DIR): Doc[] {
  return loadK8sDir(dir).flatMap((f) => f.docs);
}

export function byKind(docs: Doc[], kind: string): Doc[] {
  return docs.filter((d) => d.kind === kind);
}
