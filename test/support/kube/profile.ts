// A target profile (YAML) for runs against a sandbox started by a test, with a kube section pointing
// at the tests' API server through a given kubeconfig (an operator's token, a ServiceAccount's).
import type { Sandbox } from '../../../sandbox/index.js';
import { SANDBOX_API_KEY_ENV } from '../../../sandbox/index.js';

export function sandboxProfileYaml(sb: Sandbox, kube: { kubeconfig: string; context?: string; namespace: string }, opts: { name?: string; backupDir?: string } = {}): string {
  const p = sb.profile;
  return [
    `name: ${opts.name ?? 'kube-sandbox'}`,
    'gateway:',
    `  url: ${p.gateway.url}`,
    `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
    '  principal: { id: runbook-operator, role: admin }',
    'metrics:',
    `  gateway: ${p.metrics!.gateway}`,
    `  scheduler: ${p.metrics!.scheduler}`,
    'workflow_engine:',
    `  health_url: ${p.workflow_engine!.health_url}`,
    `nats: { url: "${sb.natsUrl}" }`,
    `redis: { url: "${sb.redisUrl}" }`,
    'kube:',
    `  kubeconfig: ${kube.kubeconfig}`,
    `  context: ${kube.context ?? 'test'}`,
    `  namespace: ${kube.namespace}`,
    ...(opts.backupDir ? ['backup:', `  dir: ${opts.backupDir}`] : []),
    '',
  ].join('\n');
}
