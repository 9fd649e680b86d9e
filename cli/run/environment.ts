// Who ran what, where: the environment block of the report (Allure's environment and summary.json).
import { execFileSync } from 'node:child_process';
import { hostname, userInfo } from 'node:os';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import type { TargetProfile } from '../../helpers/profile-types.js';

export function runEnvironment(runbook: Runbook, profile: TargetProfile, platformVersion: string, ticket?: string): Record<string, string> {
  return {
    target: profile.name,
    target_gateway: profile.gateway.url,
    platform_version: platformVersion,
    suite_git_sha: gitSha(),
    operator: operator(),
    runbook: runbook.name,
    ...(ticket ? { ticket } : {}),
  };
}

function gitSha(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'], timeout: 2000 })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

function operator(): string {
  const user = process.env.RUNBOOK_OPERATOR ?? process.env.USER ?? safeUser();
  return `${user}@${hostname()}`;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
