// SARIF that GitHub code scanning accepts: a static audit's log validates against the SARIF 2.1.0
// JSON schema (the copy @microsoft/jest-sarif ships), every result has a physical location (file
// and line of the object, or of the script line a finding quotes), rules carry fullDescription and
// helpUri, results that are not failures have level "none" (§3.27.10), waived ones suppressions.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import AjvDraft04 from 'ajv-draft-04';
import type { Log } from 'sarif';
import { describe, expect, it } from 'vitest';
import { ALL_CHECKS, loadManifestDir, parseWaivers, runAudit, toSarif } from '../../helpers/readiness/index.js';
import type { KubeObject } from '../../helpers/readiness/objects.js';
import { COMPLIANT_DIR, NOW, STATIC_VARIANTS } from './fixtures.js';

const require = createRequire(import.meta.url);
const SCHEMA = join(dirname(require.resolve('@microsoft/jest-sarif/package.json')), 'lib/schemas/sarif-2.1.0-rtm.5.json');

// CommonJS default export: at run time the import is the class itself.
const Ajv = AjvDraft04 as unknown as typeof AjvDraft04.default;

function validator() {
  // unicodeRegExp off: one pattern in the schema (language tags) is not valid with the u flag.
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
  // The schema's formats, checked the way GitHub's upload does (absolute/relative URIs, dates).
  ajv.addFormat('uri', (s: string) => /^[a-z][a-z0-9+.-]*:[^\s]*$/i.test(s));
  ajv.addFormat('uri-reference', (s: string) => !/\s/.test(s));
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
  return ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')));
}

/** A static audit with fails, warns, findings, a waiver, passes, info and not-checkable results. */
async function mixedStaticLog(): Promise<Log> {
  const loaded = loadManifestDir(COMPLIANT_DIR);
  const objs = loaded.objects;
  for (const id of ['tls.redis', 'limits.rate-limit-config', 'netpol.default-deny']) STATIC_VARIANTS.find((v) => v.id === id)!.mutate(objs);
  // A finding quoting a script line: the one-node backup from the defect classes.
  const cls = loadManifestDir(resolve(COMPLIANT_DIR, '../classes/backups-one-node.yaml')).objects;
  const merged: KubeObject[] = [...objs.filter((o) => !(o.kind === 'CronJob' && o.metadata.name === 'cordum-redis-backup')), ...cls];
  const waivers = parseWaivers('waivers:\n  - check: limits.rate-limit-config\n    scope: "*"\n    reason: sized by the platform team\n    owner: ops@example.com\n    ticket: OPS-9\n    expires: 2026-12-31\n', 'w.yaml', new Set(ALL_CHECKS.map((c) => c.id)));
  const r = await runAudit({ mode: 'static', objects: merged, waivers, now: NOW, entry: loaded.entry });
  return toSarif(r);
}

describe('SARIF 2.1.0', () => {
  it('a static audit validates against the SARIF 2.1.0 schema', async () => {
    const log = await mixedStaticLog();
    const validate = validator();
    const ok = validate(JSON.parse(JSON.stringify(log)));
    expect(validate.errors ?? [], JSON.stringify(validate.errors?.slice(0, 3))).toEqual([]);
    expect(ok).toBe(true);
  });

  it('every static result has a physical location: file and line', async () => {
    const log = await mixedStaticLog();
    const results = log.runs[0].results!;
    expect(results.length).toBeGreaterThanOrEqual(ALL_CHECKS.length);
    const unplaced = results.filter((res) => !/\.ya?ml$/.test(res.locations?.[0]?.physicalLocation?.artifactLocation?.uri ?? '') || !(res.locations![0].physicalLocation!.region!.startLine! >= 1));
    expect(unplaced.map((u) => `${u.ruleId}: ${JSON.stringify(u.locations)}`)).toEqual([]);
    // A finding points at its script line.
    const backup = results.find((x) => x.ruleId === 'backups.redis-cronjob')!;
    const file = 'test/fixtures/readiness/classes/backups-one-node.yaml';
    const line = readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('redis-cli --tls --cacert')) + 1;
    expect(backup.locations![0].physicalLocation).toMatchObject({ artifactLocation: { uri: file, uriBaseId: '%SRCROOT%' }, region: { startLine: line, snippet: { text: expect.stringContaining('redis-cli --tls') } } });
    // An object-level result points at the object's document.
    const redisTls = results.find((x) => x.ruleId === 'tls.redis')!;
    expect(redisTls.locations![0].physicalLocation?.artifactLocation?.uri).toMatch(/compliant\/10-cordum-services\.yaml$/);
    expect(log.runs[0].originalUriBaseIds?.['%SRCROOT%']?.uri).toMatch(/^file:\/\/.*\/$/);
  });

  it('rules have fullDescription and helpUri; levels follow §3.27.10; waived results are suppressed', async () => {
    const log = await mixedStaticLog();
    const run = log.runs[0];
    for (const rule of run.tool.driver.rules!) {
      expect(rule.fullDescription?.text, rule.id).toBeTruthy();
      expect(rule.helpUri, rule.id).toMatch(/^https:\/\//);
      expect(rule.help?.text, rule.id).toBeTruthy();
    }
    for (const res of run.results!) {
      if (res.kind !== 'fail') expect(res.level, `${res.ruleId} ${res.kind}`).toBe('none');
      else expect(['error', 'warning', 'note']).toContain(res.level);
    }
    const by = (id: string) => run.results!.filter((x) => x.ruleId === id);
    expect(by('tls.redis')[0]).toMatchObject({ kind: 'fail', level: 'error' });
    expect(by('netpol.default-deny')[0]).toMatchObject({ kind: 'fail', level: 'warning' });
    expect(by('tls.nats')[0]).toMatchObject({ kind: 'pass', level: 'none' });
    expect(by('limits.rate-limit-live')[0]).toMatchObject({ kind: 'notApplicable', level: 'none' });
    expect(by('upgrades.staged-rollout')[0]).toMatchObject({ kind: 'informational', level: 'none' });
    expect(by('limits.rate-limit-config')[0]).toMatchObject({ kind: 'fail', level: 'warning', suppressions: [{ kind: 'external', status: 'accepted', justification: expect.stringContaining('OPS-9') }] });
  });
});
