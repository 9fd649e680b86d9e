// Every readiness check, in checklist order. Adding a check = adding it to its section file.
import type { Check } from '../model.js';
import { persistenceChecks } from './persistence.js';
import { haChecks } from './ha.js';
import { tlsChecks } from './tls.js';
import { networkChecks } from './network.js';
import { secretsChecks } from './secrets.js';
import { observabilityChecks } from './observability.js';
import { limitsChecks } from './limits.js';
import { backupChecks } from './backups.js';
import { upgradeChecks } from './upgrades.js';
import { enterpriseChecks } from './enterprise.js';
import { functionalChecks } from './functional.js';
import { kubernetesChecks } from './kubernetes.js';

export const ALL_CHECKS: Check[] = [
  ...persistenceChecks,
  ...haChecks,
  ...tlsChecks,
  ...networkChecks,
  ...secretsChecks,
  ...observabilityChecks,
  ...limitsChecks,
  ...backupChecks,
  ...upgradeChecks,
  ...enterpriseChecks,
  ...functionalChecks,
  ...kubernetesChecks,
];
