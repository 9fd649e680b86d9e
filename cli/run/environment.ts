// Who ran what, where: the environment block of the report (Allure's environment and summary.json).
import { hostname, userInfo } from 'node:os';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { suiteGitShaSoon } from '../../helpers/suite-version.js';

export async function runEnvironment(runbook: Runbook, profile: TargetProfile, platformVersion: string, ticket?: string): Promise<Record<string, string>> {
  return {
    target: profile.name,
    target_gateway: profile.gateway.url,
    platform_version: platformVersion,
    suite_git_sha: await suiteGitShaSoon(),
    operator: operator(),
    runbook: runbook.name,
    ...(ticket ? { ticket } : {}),
  };
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
