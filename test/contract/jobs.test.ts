// Jobs: submit validation and its texts, idempotency, the detail/list shapes and units, cancel,
// decisions and traces.
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/waits.js';
import { isRecentMicros, pinnedJobBody, submitPinned, UUID, uniq, useContract } from './support.js';

const fx = useContract();

async function submitRaw(body: unknown) {
  return fx.gw.request<Record<string, any>>('POST', '/api/v1/jobs', { body, expect: [200, 400, 403, 409, 413] });
}

describe('submit', () => {
  it('job submit answers 200 (not 201) with job_id and trace_id', async () => {
    const res = await submitRaw(pinnedJobBody(fx.profile));
    expect(res.status).toBe(200);
    const ids = res.json!;
    fx.cleanup(() => fx.gw.request('POST', `/api/v1/jobs/${ids.job_id}/cancel`, { expect: [200, 404] }));
    expect(Object.keys(ids).sort()).toEqual(['job_id', 'trace_id']);
    expect(ids.job_id).toMatch(UUID);
    expect(ids.trace_id).toMatch(UUID);
  });

  it('a submitted job on a mapped topic with no matching worker reads back PENDING', async () => {
    const { job_id } = await submitPinned(fx);
    const job = await fx.gw.getJob(job_id);
    expect(job.state).toBe('PENDING');
  });

  it('an empty prompt answers 400 prompt is required', async () => {
    const res = await submitRaw({ prompt: '', topic: fx.profile.routing.mapped_topic });
    expect(res.status).toBe(400);
    expect(res.text).toBe('prompt is required\n');
  });

  it('a body without prompt answers 400 prompt is required', async () => {
    const res = await submitRaw({ topic: fx.profile.routing.mapped_topic });
    expect(res.status).toBe(400);
    expect(res.text).toBe('prompt is required\n');
  });

  it('an empty submit body answers 400', async () => {
    const res = await fx.gw.request('POST', '/api/v1/jobs', { body: '', expect: [200, 400] });
    expect(res.status).toBe(400);
  });

  it('a prompt over 100000 bytes answers 400 prompt too long (>100000 chars)', async () => {
    const res = await submitRaw({ prompt: 'x'.repeat(100_001), topic: fx.profile.routing.mapped_topic });
    expect(res.status).toBe(400);
    expect(res.text).toBe('prompt too long (>100000 chars)\n');
  });

  it('a topic not starting with job. answers 400 topic must start with job.', async () => {
    const res = await submitRaw({ prompt: 'x', topic: 'ct.not-a-job' });
    expect(res.status).toBe(400);
    expect(res.text).toBe('topic must start with job.\n');
  });

  it("an actor_type other than human/service answers 400 actor_type must be 'human' or 'service'", async () => {
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, actor_type: 'robot' });
    expect(res.status).toBe(400);
    expect(res.text).toBe("actor_type must be 'human' or 'service'\n");
  });

  it('a non-string label value answers 400 invalid json', async () => {
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, labels: { n: 1 } });
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid json\n');
  });

  it('more than 50 labels answers 400', async () => {
    const labels = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`l${i}`, 'v']));
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, labels });
    expect(res.status).toBe(400);
  });

  it('more than 50 tags answers 400', async () => {
    const tags = Array.from({ length: 51 }, (_, i) => `t${i}`);
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, tags });
    expect(res.status).toBe(400);
  });

  it('a negative token budget answers 400', async () => {
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, max_output_tokens: -1 });
    expect(res.status).toBe(400);
  });

  it('an org_id other than the server tenant answers 403 tenant access denied', async () => {
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, org_id: uniq('ct-tenant') });
    expect(res.status).toBe(403);
    expect(res.text).toBe('tenant access denied\n');
  });

  it('a body over 2 MiB answers 400 invalid json (not 413)', async () => {
    const res = await submitRaw({ prompt: 'x', topic: fx.profile.routing.mapped_topic, context: { pad: 'y'.repeat(2 * 1024 * 1024 + 16) } });
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid json\n');
  });

  it('unknown body fields are silently ignored', async () => {
    const res = await submitRaw({ ...pinnedJobBody(fx.profile), ct_no_such_field: true });
    expect(res.status).toBe(200);
    fx.cleanup(() => fx.gw.request('POST', `/api/v1/jobs/${res.json!.job_id}/cancel`, { expect: [200, 404] }));
  });

  it('a repeated idempotency_key answers 200 with the original job_id and trace_id', async () => {
    const key = uniq();
    const first = await submitPinned(fx, { idempotency_key: key });
    const again = await submitRaw(pinnedJobBody(fx.profile, { idempotency_key: key }));
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first);
  });
});

describe('detail and list', () => {
  it('GET /api/v1/jobs/{id} of an unknown job answers 404 job not found', async () => {
    const res = await fx.gw.request('GET', `/api/v1/jobs/${uniq()}`, { expect: 404 });
    expect(res.text).toBe('job not found\n');
  });

  it('job detail carries the always-present keys with context_ptr redis://ctx:<id>', async () => {
    const { job_id, trace_id } = await submitPinned(fx, { context: { ct: true } });
    const job = await fx.gw.getJob(job_id);
    for (const k of [
      'id', 'state', 'trace_id', 'topic', 'tenant', 'actor_id', 'actor_type', 'idempotency_key', 'capability', 'pack_id', 'risk_tags', 'requires', 'attempts',
      'context_ptr', 'context', 'result_ptr', 'result', 'safety_decision', 'safety_reason', 'safety_rule_id', 'safety_snapshot', 'safety_constraints',
      'safety_remediations', 'safety_job_hash', 'approval_required', 'approval_ref', 'labels', 'workflow_id', 'run_id', 'step_id',
    ]) {
      expect(job, `key ${k}`).toHaveProperty(k);
    }
    expect(job.id).toBe(job_id);
    expect(job.trace_id).toBe(trace_id);
    expect(job.context_ptr).toBe(`redis://ctx:${job_id}`);
    expect(typeof job.labels).toBe('object');
    expect(job.labels).not.toBeNull();
  });

  it('job detail has no DLQ error fields while the job is not in the DLQ', async () => {
    const { job_id } = await submitPinned(fx);
    const job = await fx.gw.getJob(job_id);
    for (const k of ['error_message', 'error_status', 'error_code', 'last_state']) expect(job).not.toHaveProperty(k);
  });

  it('job list items carry updated_at as integer microseconds', async () => {
    const { job_id } = await submitPinned(fx);
    const page = await fx.gw.listJobs({ limit: 200 });
    const item = (page.items ?? []).find((j) => j.id === job_id);
    expect(item, 'own job in the 200 most recent').toBeDefined();
    expect(isRecentMicros(item!.updated_at)).toBe(true);
    expect(item!.state).toBe('PENDING');
  });

  it('a job submitted with deadline_ms lists deadline_unix in unix seconds', async () => {
    const { job_id } = await submitPinned(fx, { deadline_ms: 600_000 });
    const item = await waitFor(
      'deadline_unix on the list item',
      async () => ((await fx.gw.listJobs({ limit: 200 })).items ?? []).find((j) => j.id === job_id),
      (j) => j?.deadline_unix !== undefined,
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(Math.abs(Number(item!.deadline_unix) - (Date.now() / 1000 + 600))).toBeLessThan(120);
  });

  it('job list answers {items, next_cursor} with next_cursor = last updated_at - 1 when the page is full', async () => {
    await submitPinned(fx);
    const page = await fx.gw.listJobs({ limit: 1 });
    expect(Object.keys(page).sort()).toEqual(['items', 'next_cursor']);
    expect(page.items).toHaveLength(1);
    expect(page.next_cursor).toBe(page.items![0].updated_at - 1);
  });

  it('the job list cursor (microseconds) pages to older jobs', async () => {
    await submitPinned(fx);
    await submitPinned(fx);
    const first = await fx.gw.listJobs({ limit: 1 });
    const second = await fx.gw.listJobs({ limit: 1, cursor: first.next_cursor! });
    expect(second.items).toHaveLength(1);
    expect(second.items![0].id).not.toBe(first.items![0].id);
    expect(second.items![0].updated_at).toBeLessThanOrEqual(first.next_cursor!);
  });

  it('job list next_cursor is null when the page is shorter than limit', async () => {
    const page = await fx.gw.listJobs({ limit: 5, state: 'CT_NO_SUCH_STATE' });
    expect(page.items ?? []).toHaveLength(0);
    expect(page.next_cursor).toBeNull();
  });

  it('job list with another tenant answers 403', async () => {
    const res = await fx.gw.request('GET', '/api/v1/jobs', { query: { tenant: uniq('ct-tenant') }, expect: [200, 403] });
    expect(res.status).toBe(403);
    expect(res.text).toBe('tenant access denied\n');
  });

  it('decisions of an unknown job answer 200 []', async () => {
    const res = await fx.gw.request('GET', `/api/v1/jobs/${uniq()}/decisions`, { expect: 200 });
    expect(res.json).toEqual([]);
  });

  it('a trace of unknown id answers 200 []', async () => {
    const res = await fx.gw.request('GET', `/api/v1/traces/${uniq()}`, { expect: 200 });
    expect(res.json).toEqual([]);
  });

  it('the trace of a submitted job lists it, with updated_at 0 in this view', async () => {
    const { job_id, trace_id } = await submitPinned(fx);
    const items = await fx.gw.trace(trace_id);
    const item = items.find((j) => j.id === job_id);
    expect(item).toBeDefined();
    expect(item!.updated_at).toBe(0);
  });

  it('a jobs cursor given in seconds is normalised to microseconds', async () => {
    const { job_id } = await submitPinned(fx);
    const own = ((await fx.gw.listJobs({ limit: 200 })).items ?? []).find((j) => j.id === job_id)!;
    const cursorS = Math.ceil(own.updated_at / 1e6) + 1;
    const page = await fx.gw.listJobs({ limit: 200, cursor: cursorS });
    expect((page.items ?? []).map((j) => j.id)).toContain(job_id);
  });

  it('X-Principal-Id becomes the job principal when the body names none', async () => {
    const principal = uniq('ct-principal');
    const res = await fx.gw.request<{ job_id: string }>('POST', '/api/v1/jobs', { body: pinnedJobBody(fx.profile), headers: { 'x-principal-id': principal }, expect: 200 });
    const id = res.json!.job_id;
    fx.cleanup(() => fx.gw.request('POST', `/api/v1/jobs/${id}/cancel`, { expect: [200, 404] }));
    const item = ((await fx.gw.listJobs({ limit: 200 })).items ?? []).find((j) => j.id === id);
    expect(item?.principal).toBe(principal);
  });

  it('safety decisions are recorded per job with an upper-case decision and checked_at in microseconds', async () => {
    const { job_id } = await submitPinned(fx);
    const decisions = await waitFor('a safety decision', () => fx.gw.jobDecisions(job_id), (d) => d.length > 0, { timeoutMs: 10_000, intervalMs: 100 });
    expect(['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'THROTTLE', 'ALLOW_WITH_CONSTRAINTS']).toContain(decisions[0].decision);
    expect(isRecentMicros(decisions[0].checked_at)).toBe(true);
    const job = await fx.gw.getJob(job_id);
    expect(job.safety_decision).toBe(decisions[0].decision);
  });
});

describe('cancel', () => {
  it('cancel of a PENDING job answers 200 {id, state: CANCELLED}', async () => {
    const { job_id } = await submitPinned(fx);
    const res = await fx.gw.request<Record<string, unknown>>('POST', `/api/v1/jobs/${job_id}/cancel`, { expect: 200 });
    expect(res.json).toEqual({ id: job_id, state: 'CANCELLED' });
    expect((await fx.gw.getJob(job_id)).state).toBe('CANCELLED');
  });

  // Recorded on a real Cordum: "job already terminal" is only said of jobs that ended another way.
  it('cancel twice answers 200 {id, state: CANCELLED} again, without reason', async () => {
    const { job_id } = await submitPinned(fx);
    await fx.gw.cancelJob(job_id);
    const res = await fx.gw.request<Record<string, unknown>>('POST', `/api/v1/jobs/${job_id}/cancel`, { expect: 200 });
    expect(res.json).toEqual({ id: job_id, state: 'CANCELLED' });
  });

  it('cancel of an unknown job answers 404 job not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/jobs/${uniq()}/cancel`, { expect: 404 });
    expect(res.text).toBe('job not found\n');
  });
});

describe('remediate', () => {
  it('remediate of an unknown job answers 404 job not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/jobs/${uniq()}/remediate`, { body: {}, expect: 404 });
    expect(res.text).toBe('job not found\n');
  });

  it('remediate of a job without remediations answers 409 no remediations available', async () => {
    const { job_id } = await submitPinned(fx);
    const res = await fx.gw.request('POST', `/api/v1/jobs/${job_id}/remediate`, { body: {}, expect: [404, 409] });
    expect(res.status).toBe(409);
    expect(res.text).toBe('no remediations available\n');
  });
});


