// Which values of a target profile are secrets: the environment variables it names for them. A
// module of its own, free of the profile parser (YAML, JSON Schema), because every scenario worker
// needs it at start-up to register the values for redaction.
import type { TargetProfile } from './profile-types.js';

/** The values of every environment variable the profile references (to register for redaction). */
export function secretValues(profile: TargetProfile, env: NodeJS.ProcessEnv = process.env): string[] {
  const values = new Set<string>();
  for (const name of secretEnvNames(profile)) {
    const v = env[name];
    if (v) values.add(v);
  }
  return [...values];
}

/** The env var names a profile uses for secrets. */
export function secretEnvNames(profile: TargetProfile): string[] {
  return [profile.gateway.api_key_env, profile.nats?.token_env, profile.nats?.password_env, profile.redis?.password_env].filter(
    (n): n is string => typeof n === 'string' && n.length > 0,
  );
}
