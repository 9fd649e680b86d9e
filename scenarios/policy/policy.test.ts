// Runbook `policy` (runbooks/policy.md): one step per step of the page, deadlines from the page.
// The drill (steps 4-7) changes live policy for a moment, so it runs only where the profile allows
// destructive drills; the rollback to the pre-drill bundle snapshot is registered for teardown
// before the first write, so an interrupted drill is rolled back.
import { fileURLToPath } from 'node:url';
import type { PolicyCheckBody, PolicyDecision, PublishResponse, RollbackResponse } from '../../helpers/gateway.js';
import * as policyBundles from '../../helpers/policy-bundles.js';
import { loadPolicyCaseFiles, type PolicyCase, type PolicyCaseFile } from '../../helpers/policy-cases.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { fail, scenario, stateSlot, type RunContext } from '../../helpers/steps.js';

const SHIPPED_CASES = fileURLToPath(new URL('../../runbooks/cases/stock-policy.cases.yaml', import.meta.url));

/**
 * Waits for the kernel allow two reload intervals plus 5 s (the reload timer's phase is unknown, and
 * a reload reads Redis). Step deadlines are derived from the target's reload interval: the DSL
 * resolves a timeoutMs function against the target when the run opens.
 */
const afterReload = (extraMs: number) => (t: TargetProfile) => policyBundles.kernelReloadWaitMs(t.policy.reload_interval_ms) + extraMs;
const DEADLINE = {
  cases: 10_000,
  decisions: 60_000,
  draft: 20_000,
  store: 20_000,
  publish: afterReload(20_000),
  rollback: afterReload(20_000),
  audit: 20_000,
};

/**
 * The drill (steps 3-7) needs nothing from the case table: a case that disagrees is reported and the
 * drill still runs. Within the drill each step needs the ones before it (a publish that failed is
 * rolled back by teardown).
 */
const SIMULATE_DRAFT = 'Simulate the draft bundle before publishing';
const STORE_DRAFT = 'Snapshot the bundles and store the draft disabled';
const PUBLISH = 'Publish the draft and wait for the kernel to load it';
const ROLLBACK = 'Roll back to the snapshot and wait for the kernel to load the old policy';

/** Names of everything the run creates, derived from ctx.prefix. */
function names(ctx: RunContext) {
  const p = ctx.prefix;
  return {
    bundleId: `secops/${p}-draft`,
    ruleId: `${p}-deny-probe`,
    probeTopic: `job.${p}.probe`,
    controlTopic: ctx.target.routing.mapped_topic,
    author: `cordum-runbooks (${p})`,
    teardownLabel: `policy: roll back the bundle map to the pre-drill snapshot (undo the drill's draft and publish)`,
  };
}

/** How this run changes policy: its deadlines, its author, its sub-steps in the report. */
function changeOptions(ctx: RunContext) {
  return { reloadIntervalMs: ctx.target.policy.reload_interval_ms, signal: ctx.signal, author: names(ctx).author, phase: ctx.step };
}

function draftContent(ctx: RunContext): string {
  const n = names(ctx);
  return [
    `# Written by the cordum-runbooks policy drill (${ctx.prefix}); removed by rolling back.`,
    'rules:',
    `  - id: ${n.ruleId}`,
    '    decision: deny',
    `    reason: policy drill ${ctx.prefix}`,
    '    match:',
    `      topics: ["job.${ctx.prefix}.*"]`,
    '',
  ].join('\n');
}

function short(d: PolicyDecision): string {
  return `${d.decision} rule ${JSON.stringify(d.ruleId ?? '')} reason ${JSON.stringify(d.reason ?? '')}`;
}

interface DrillState {
  before: policyBundles.BundleSnapshotState;
  kernelAfterPublish?: string;
  probeBefore: PolicyDecision;
  publish?: PublishResponse;
  rollback?: RollbackResponse;
}

const DRILL = stateSlot<DrillState>('drill');
/** Why the drill did not start (the target allows no destructive drills). */
const DRILL_SKIPPED = stateSlot<string>('drillSkipped');
const CASES = stateSlot<PolicyCase[]>('cases');
/** The live decision for the probe topic before the drill. */
const PROBE_BEFORE = stateSlot<PolicyDecision>('probeBefore');

function requireDrill(ctx: RunContext): DrillState {
  const d = DRILL.get(ctx);
  if (!d) ctx.skip(DRILL_SKIPPED.get(ctx) ?? 'the drill did not start');
  return d!;
}

scenario('Policy decisions, draft simulation and a publish/rollback drill', (s) => {
  s.step('Load the policy cases', async (ctx) => {
    const files = [SHIPPED_CASES, ...ctx.target.policy.case_files];
    const loaded = await ctx.step(`Load ${files.length} case file(s)`, () => loadPolicyCaseFiles(files));
    // Stock-policy cases only mean something while no bundle adds rules (Cordum then stops
    // applying the tenant lists); on such a target they are reported, not failed.
    let bundleRules: number | undefined;
    if (loaded.some((f) => f.requiresStockPolicy)) {
      bundleRules = await ctx.step('Count the rules config-service bundles add (GET /api/v1/policy/rules)', async () => {
        const r = await ctx.gateway().policyRules();
        return (r.items ?? []).length;
      });
    }
    const active: PolicyCaseFile[] = [];
    for (const f of loaded) {
      if (f.requiresStockPolicy && bundleRules) {
        ctx.finding({
          id: 'policy-stock-cases-not-applicable',
          severity: 'warn',
          title: `Stock-policy cases in ${f.file} were not run`,
          detail: `the target's bundles add ${bundleRules} rule(s), so Cordum no longer applies the tenant allow/deny lists these ${f.cases.length} case(s) test; add the team's own case files (policy.case_files) for this target`,
        });
        continue;
      }
      active.push(f);
    }
    // No applicable case (a lived-in installation whose bundles add rules, and no team case files)
    // is not a defect of the platform: it is reported above, and the next step then checks only
    // that the three endpoints agree with each other.
    const cases = active.flatMap((f) => f.cases);
    CASES.set(ctx, cases);
    await ctx.evidence.json('policy cases', active);
  }, { timeoutMs: DEADLINE.cases });

  s.step('Evaluate, simulate and explain agree with every case', async (ctx) => {
    const cases = CASES.require(ctx, 'the policy cases were not loaded');
    const gw = ctx.gateway();
    const problems: string[] = [];
    const rows: string[] = ['| Case | Expected | evaluate | simulate | explain | Result |', '|---|---|---|---|---|---|'];
    let keys: { evaluate: string[]; explain: string[] } | undefined;
    if (cases.length === 0) {
      // Nothing to compare with expectations: the three endpoints must still agree on a request.
      const req: PolicyCheckBody = { topic: `job.${ctx.prefix}.agreement-probe` };
      const res = await ctx.step(`No applicable case: evaluate, simulate and explain ${req.topic}`, async () => ({
        evaluate: await gw.policyEvaluate(req),
        simulate: await gw.policySimulate(req),
        explain: await gw.policyExplain(req),
      }));
      await ctx.evidence.json('agreement probe', res);
      for (const other of ['simulate', 'explain'] as const) {
        for (const f of ['decision', 'ruleId', 'reason', 'policySnapshot'] as const) {
          const a = res.evaluate[f] ?? '';
          const b = res[other][f] ?? '';
          if (a !== b) fail(`${other} disagrees with evaluate on ${f} for ${req.topic}: ${JSON.stringify(b)} vs ${JSON.stringify(a)}`);
        }
      }
      return;
    }
    for (const c of cases) {
      const res = await ctx.step(`Case: ${c.name}`, async () => {
        const req: PolicyCheckBody = c.request;
        const evaluate = await gw.policyEvaluate(req);
        const simulate = await gw.policySimulate(req);
        const explain = await gw.policyExplain(req);
        return { evaluate, simulate, explain };
      });
      keys ??= { evaluate: Object.keys(res.evaluate).sort(), explain: Object.keys(res.explain).sort() };
      const own: string[] = [];
      for (const [endpoint, d] of Object.entries(res) as [string, PolicyDecision][]) {
        if (d.decision !== c.expect.decision) own.push(`${endpoint} decided ${d.decision}, the case expects ${c.expect.decision}`);
        if ((d.ruleId ?? '') !== c.expect.rule_id) own.push(`${endpoint} names rule ${JSON.stringify(d.ruleId ?? '')}, the case expects ${JSON.stringify(c.expect.rule_id)}`);
        if (c.expect.reason !== undefined && (d.reason ?? '') !== c.expect.reason) {
          own.push(`${endpoint} gives reason ${JSON.stringify(d.reason ?? '')}, the case expects ${JSON.stringify(c.expect.reason)}`);
        }
      }
      // The three endpoints run the same evaluation in Cordum: any disagreement is a defect even
      // when the case does not pin the field.
      for (const other of ['simulate', 'explain'] as const) {
        const a = res.evaluate;
        const b = res[other];
        for (const f of ['decision', 'ruleId', 'reason', 'policySnapshot'] as const) {
          if ((a[f] ?? '') !== (b[f] ?? '')) own.push(`${other} disagrees with evaluate on ${f}: ${JSON.stringify(b[f] ?? '')} vs ${JSON.stringify(a[f] ?? '')}`);
        }
      }
      rows.push(`| ${c.name} | ${c.expect.decision} ${c.expect.rule_id || '(no rule)'} | ${short(res.evaluate)} | ${short(res.simulate)} | ${short(res.explain)} | ${own.length ? '❌' : '✅'} |`);
      if (own.length) problems.push(`case '${c.name}' (${c.source}): ${own.join('; ')}`);
    }
    await ctx.evidence.text('decision table', rows.join('\n'));
    ctx.writeArtifact('policy-decisions.md', rows.join('\n') + '\n');

    // Documented for real Cordum: explain is evaluate under another name.
    if (keys) {
      const extra = keys.explain.filter((k) => !keys!.evaluate.includes(k));
      ctx.finding(
        extra.length === 0
          ? {
              id: 'policy-explain-adds-nothing',
              severity: 'info',
              title: 'Explain returns no more than evaluate',
              detail: `POST /api/v1/policy/explain answered with the same fields as evaluate (${keys.explain.join(', ')}); the only "explanation" is ruleId and reason, with no trace of the rules considered`,
            }
          : {
              id: 'policy-explain-adds-fields',
              severity: 'info',
              title: 'Explain returns fields evaluate does not',
              detail: `explain added ${extra.join(', ')} (documented Cordum returns the same shape as evaluate)`,
            },
      );
    }
    if (problems.length) {
      fail(`${problems.length} of ${cases.length} policy case(s) failed; ${problems[0]}${problems.length > 1 ? `\n- ${problems.slice(1).join('\n- ')}` : ''}`);
    }
  }, { timeoutMs: DEADLINE.decisions, needs: ['Load the policy cases'] });

  s.step(SIMULATE_DRAFT, async (ctx) => {
    const n = names(ctx);
    const gw = ctx.gateway();
    const content = draftContent(ctx);
    await ctx.evidence.text('draft bundle content', content);
    const probe: PolicyCheckBody = { topic: n.probeTopic };
    const control: PolicyCheckBody = { topic: n.controlTopic };
    const before = await ctx.step(`Live decision for ${n.probeTopic} (evaluate)`, () => gw.policyEvaluate(probe));
    if (before.decision === 'DECISION_TYPE_DENY' && before.ruleId === n.ruleId) fail(`the live policy already holds this run's rule ${n.ruleId}: a leftover of an earlier drill?`);
    PROBE_BEFORE.set(ctx, before);

    const drafted = await ctx.step(`Draft decision for ${n.probeTopic} (POST bundles/${n.bundleId}/simulate)`, () =>
      gw.simulateBundle(n.bundleId, { request: probe, content }),
    );
    if (drafted.decision !== 'DECISION_TYPE_DENY' || drafted.ruleId !== n.ruleId) {
      fail(`expected the draft to change ${n.probeTopic} from ${short(before)} to DECISION_TYPE_DENY by rule ${n.ruleId}; bundle simulate answered ${short(drafted)}`);
    }

    const liveControl = await ctx.step(`Live decision for ${n.controlTopic} (evaluate)`, () => gw.policyEvaluate(control));
    const draftControl = await ctx.step(`Draft decision for ${n.controlTopic} (bundle simulate)`, () => gw.simulateBundle(n.bundleId, { request: control, content }));
    if (draftControl.ruleId === n.ruleId) fail(`the draft rule ${n.ruleId} also matches ${n.controlTopic}: it would deny more than this run's topics`);

    // Documented for real Cordum: bundle simulate runs in the gateway on bundles only, without the
    // policy file the kernel also loads.
    const differs = liveControl.decision !== draftControl.decision || (liveControl.ruleId ?? '') !== (draftControl.ruleId ?? '');
    ctx.finding({
      id: 'policy-bundle-simulate-ignores-file-policy',
      severity: differs ? 'warn' : 'info',
      title: 'Bundle simulate ignores the policy file',
      detail: differs
        ? `for ${n.controlTopic}, which the draft does not touch, the kernel answers ${short(liveControl)} but bundle simulate answers ${short(draftControl)}: simulate evaluates the stored bundles plus the draft without config/safety.yaml, so a draft that looks right there can decide differently once published`
        : `for ${n.controlTopic} bundle simulate agreed with the kernel (${short(liveControl)}); Cordum documents that simulate leaves out the policy file, so this agreement may be a coincidence of this target's policy`,
    });
  }, { timeoutMs: DEADLINE.draft, independent: true });

  s.step(STORE_DRAFT, async (ctx) => {
    if (!ctx.target.destructive.allowed) {
      const reason = `the publish/rollback drill changes live policy and target '${ctx.target.name}' does not allow destructive drills (destructive.allowed: false); live policy was left alone`;
      DRILL_SKIPPED.set(ctx, reason);
      ctx.skip(reason);
    }
    const n = names(ctx);
    const gw = ctx.gateway();
    const before = await policyBundles.snapshotBundles(gw, `${ctx.prefix} policy drill: before`, { phase: ctx.step });
    const probeBefore = PROBE_BEFORE.require(ctx, 'the draft step did not read the live decision for the probe topic');
    DRILL.set(ctx, { before, probeBefore });
    await ctx.evidence.json('bundle map before the drill', { snapshot_id: before.snapshotId, kernel_snapshot: before.kernel, bundles: before.bundles });

    // Registered before the first write: whatever happens from here on, teardown restores the map.
    ctx.teardown.add(n.teardownLabel, policyBundles.rollbackAction(before.snapshotId, { author: n.author, message: `${ctx.prefix}: teardown rolled back an interrupted policy drill` }));
    await policyBundles.putDraft(gw, n.bundleId, draftContent(ctx), false, { ...changeOptions(ctx), message: `${ctx.prefix} policy drill draft` });
  }, { timeoutMs: DEADLINE.store, needs: [SIMULATE_DRAFT] });

  s.step(PUBLISH, async (ctx) => {
    const d = requireDrill(ctx);
    const n = names(ctx);
    const gw = ctx.gateway();
    const published = await policyBundles.publishAndWaitForKernel(gw, [n.bundleId], { ...changeOptions(ctx), kernelBefore: d.before.kernel, message: `${ctx.prefix} policy drill publish` });
    d.publish = published.response;
    d.kernelAfterPublish = published.kernelAfter;
    await ctx.evidence.json('publish response', published.response);
    const now = await ctx.step(`Evaluate ${n.probeTopic} on the live policy`, () => gw.policyEvaluate({ topic: n.probeTopic }));
    if (now.decision !== 'DECISION_TYPE_DENY' || now.ruleId !== n.ruleId) {
      fail(`the kernel loaded snapshot ${d.kernelAfterPublish}, but evaluate for ${n.probeTopic} answers ${short(now)}; expected DECISION_TYPE_DENY by rule ${n.ruleId} as the draft simulation said`);
    }
  }, { timeoutMs: DEADLINE.publish, needs: [SIMULATE_DRAFT, STORE_DRAFT] });

  s.step(ROLLBACK, async (ctx) => {
    const d = requireDrill(ctx);
    const n = names(ctx);
    const gw = ctx.gateway();
    const rolledBack = await policyBundles.rollbackAndWait(gw, d.before.snapshotId, { ...changeOptions(ctx), kernelBefore: d.before.kernel, message: `${ctx.prefix} policy drill rollback` });
    d.rollback = rolledBack.response;
    await ctx.evidence.json('rollback response', rolledBack.response);
    // The live policy is back in the config service: nothing is left for teardown to undo.
    ctx.teardown.forget(n.teardownLabel);
    const now = await ctx.step(`Evaluate ${n.probeTopic} on the live policy`, () => gw.policyEvaluate({ topic: n.probeTopic }));
    if (now.decision !== d.probeBefore.decision || (now.ruleId ?? '') !== (d.probeBefore.ruleId ?? '')) {
      fail(`after the rollback evaluate for ${n.probeTopic} answers ${short(now)}; expected the pre-drill decision ${short(d.probeBefore)}`);
    }
  }, { timeoutMs: DEADLINE.rollback, needs: [SIMULATE_DRAFT, STORE_DRAFT, PUBLISH] });

  s.step('The policy audit records both actions and the bundles are exactly as before', async (ctx) => {
    const d = requireDrill(ctx);
    const n = names(ctx);
    const gw = ctx.gateway();
    const items = (await ctx.step('Read the policy audit', () => gw.policyAudit())).items ?? [];
    const principal = ctx.target.gateway.principal;
    const actor = principal?.id;
    const expect = policyBundles.auditActor(principal);
    const pub = policyBundles.checkAuditEntry(items, 'publish', d.publish!, { ...expect, bundleIds: [n.bundleId] });
    const rb = policyBundles.checkAuditEntry(items, 'rollback', d.rollback!, expect);
    const problems = [...pub.problems, ...rb.problems];
    // Which spelling of an empty snapshot this Cordum used is evidence (a rollback to the empty map
    // of a fresh install records no snapshot_after), not a verdict.
    await ctx.evidence.json('policy audit entries of this drill', { publish: pub.entry, rollback: rb.entry, rollback_variant: rb.variant ?? null, rollback_response: d.rollback });
    if (!actor) {
      ctx.finding({ id: 'policy-audit-actor-unchecked', severity: 'warn', title: 'Audit actor not checked', detail: `target '${ctx.target.name}' sets no gateway.principal.id, so the drill sent no X-Principal-Id to compare the audit's actor_id with` });
    }

    const after = await ctx.step('Read the bundle map again', () => policyBundles.bundleMap(gw));
    const diff = policyBundles.diffBundleMaps(d.before.bundles, after);
    await ctx.evidence.json('bundle map after the drill', after);
    if (diff) problems.push(`the bundle map is not as it was before the drill: ${diff}`);
    if (problems.length) fail(problems.join('\n'));
  }, { timeoutMs: DEADLINE.audit, needs: [SIMULATE_DRAFT, STORE_DRAFT, PUBLISH, ROLLBACK] });
});
