// Builds the kernel's effective policy from the file policy and the config-service bundles
// (cfg:system:policy data.bundles) and names it with Cordum's snapshot string.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { mergePolicies, parsePolicy, type PolicyDoc } from './policy.js';
import { compilePolicy, type CompiledPolicy } from './evaluate.js';

export const POLICY_DOC_KEY = 'cfg:system:policy';

export interface StoredBundle {
  content?: string;
  enabled?: boolean;
  author?: string;
  message?: string;
  created_at?: string;
  updated_at?: string;
  version?: string;
  installed_at?: string;
  sha256?: string;
  [k: string]: unknown;
}

export interface Fragment {
  id: string;
  content: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Enabled bundles (missing `enabled` counts as true), sorted by bundle id. */
export function enabledFragments(bundles: Record<string, StoredBundle> | undefined | null): Fragment[] {
  return Object.entries(bundles ?? {})
    .filter(([, b]) => b && b.enabled !== false)
    .map(([id, b]) => ({ id, content: typeof b.content === 'string' ? b.content : '' }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `cfg:<sha256 over sorted id+content>`, or "" when there are no fragments. */
export function fragmentsSnapshot(fragments: Fragment[]): string {
  if (!fragments.length) return '';
  return 'cfg:' + sha256(fragments.map((f) => f.id + f.content).join(''));
}

/** `<version>:<sha256>` of the file, or just the sha256 when the file has no version. */
export function fileSnapshot(fileYaml: string, doc: PolicyDoc): string {
  const digest = sha256(fileYaml);
  return doc.version ? `${doc.version}:${digest}` : digest;
}

/** Parse fragments; throws naming the bad bundle. */
export function parseFragments(fragments: Fragment[]): PolicyDoc[] {
  return fragments.map((f) => {
    try {
      return parsePolicy(f.content);
    } catch (err) {
      throw new Error(`bundle ${f.id}: ${(err as Error).message}`);
    }
  });
}

export async function readStoredBundles(redis: Redis): Promise<Record<string, StoredBundle>> {
  const raw = await redis.get(POLICY_DOC_KEY);
  if (!raw) return {};
  const doc = JSON.parse(raw) as { data?: { bundles?: Record<string, StoredBundle> } };
  return doc?.data?.bundles ?? {};
}

/** The file policy merged with the given fragments (the kernel's view). */
export function buildKernelPolicy(fileYaml: string, fragments: Fragment[]): CompiledPolicy {
  const file = parsePolicy(fileYaml, { validate: false });
  const docs = parseFragments(fragments);
  const parts = [fileSnapshot(fileYaml, file), fragmentsSnapshot(fragments)].filter(Boolean);
  return compilePolicy(mergePolicies(file, docs), parts.join('|'));
}

/** Bundles only, as the gateway's bundle simulate evaluates them (no file policy). */
export function buildBundlesOnlyPolicy(fragments: Fragment[]): CompiledPolicy {
  const docs = parseFragments(fragments);
  return compilePolicy(mergePolicies({}, docs), fragmentsSnapshot(fragments));
}
