// Definition and run routes: status codes, error texts and quirks of api.md §10.5-10.6.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkflowEnv, type WorkflowEnv } from './workflow-support.js';

let env: WorkflowEnv;
beforeAll(async () => {
  env = await startWorkflowEnv();
});
afterAll(async () => {
  await env?.stop();
});

const APPROVAL = { approve: { type: 'approval' } };

describe('workflow definitions', () => {
  it('create is 201 {id}; steps must be an object; upsert keeps scalars and replaces steps', async () => {
    expect(await env.api('POST', '/api/v1/workflows', { name: 'x', steps: [{ type: 'approval' }] })).toMatchObject({ status: 400, text: 'invalid json\n' });
    expect(await env.api('POST', '/api/v1/workflows', '')).toMatchObject({ status: 400 });
    expect(await env.api('POST', '/api/v1/workflows', { name: 5 })).toMatchObject({ status: 400, text: 'invalid json\n' });
    expect(await env.api('POST', '/api/v1/workflows', { org_id: 'other', steps: {} })).toMatchObject({ status: 403, text: 'tenant access denied\n' });

    const created = await env.api('POST', '/api/v1/workflows', {
      id: 'wf-upsert',
      name: 'first',
      description: 'keep me',
      typo_field: true,
      steps: { s1: { id: 'ignored', type: 'approval' } },
    });
    expect(created).toMatchObject({ status: 201, json: { id: 'wf-upsert' } });
    const wf = (await env.api('GET', '/api/v1/workflows/wf-upsert')).json;
    expect(wf).toMatchObject({ id: 'wf-upsert', org_id: 'default', name: 'first', description: 'keep me', timeout_sec: 0 });
    expect(wf.steps.s1.id).toBe('s1');
    expect(wf.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z$/);

    expect((await env.api('POST', '/api/v1/workflows', { id: 'wf-upsert', name: 'second' })).status).toBe(201);
    const upserted = (await env.api('GET', '/api/v1/workflows/wf-upsert')).json;
    expect(upserted).toMatchObject({ name: 'second', description: 'keep me', steps: {}, created_at: wf.created_at });

    const generated = await env.api('POST', '/api/v1/workflows', { steps: APPROVAL });
    expect(generated.json.id).toMatch(/^[0-9a-f-]{36}$/);
    const list = (await env.api('GET', '/api/v1/workflows')).json;
    expect(Array.isArray(list)).toBe(true);
    expect(list.map((w: any) => w.id)).toContain('wf-upsert');
    expect(await env.api('GET', '/api/v1/workflows?org_id=other')).toMatchObject({ status: 403 });
    expect(await env.api('GET', '/api/v1/workflows/nope')).toMatchObject({ status: 404, text: 'not found\n' });
  });
});

describe('runs', () => {
  it('start: body is the input, empty/null = {}, non-object 400, unknown workflow 404', async () => {
    const wf = (await env.api('POST', '/api/v1/workflows', { steps: APPROVAL })).json.id;
    const empty = await env.api('POST', `/api/v1/workflows/${wf}/runs`, '');
    expect((await env.getRun(empty.json.run_id)).input).toEqual({});
    const nul = await env.api('POST', `/api/v1/workflows/${wf}/runs`, 'null');
    expect((await env.getRun(nul.json.run_id)).input).toEqual({});
    const given = await env.api('POST', `/api/v1/workflows/${wf}/runs`, { a: 1, input: { nested: true } });
    expect((await env.getRun(given.json.run_id)).input).toEqual({ a: 1, input: { nested: true } });
    expect(await env.api('POST', `/api/v1/workflows/${wf}/runs`, [1, 2])).toMatchObject({ status: 400, text: 'invalid json\n' });
    expect(await env.api('POST', `/api/v1/workflows/${wf}/runs`, '"text"')).toMatchObject({ status: 400, text: 'invalid json\n' });
    expect(await env.api('POST', '/api/v1/workflows/ghost/runs', {})).toMatchObject({ status: 404, text: 'workflow not found\n' });
    expect(await env.api('POST', `/api/v1/workflows/${wf}/runs?org_id=other`, {})).toMatchObject({ status: 403 });
    expect(await env.api('GET', '/api/v1/workflow-runs/ghost')).toMatchObject({ status: 404, text: 'not found\n' });
    expect(await env.api('GET', '/api/v1/workflow-runs/ghost/timeline')).toMatchObject({ status: 200, json: [] });
    expect(await env.api('GET', '/api/v1/workflows/ghost/runs')).toMatchObject({ status: 200, json: [] });
    const ofWf = (await env.api('GET', `/api/v1/workflows/${wf}/runs`)).json;
    // Scores are whole seconds, so runs started within one second have no defined order.
    expect(ofWf.map((r: any) => r.id).sort()).toEqual([given.json.run_id, nul.json.run_id, empty.json.run_id].sort());
  });

  it('idempotency key (header or query) is global across workflows', async () => {
    const wf1 = (await env.api('POST', '/api/v1/workflows', { steps: APPROVAL })).json.id;
    const wf2 = (await env.api('POST', '/api/v1/workflows', { steps: APPROVAL })).json.id;
    const a = await env.api('POST', `/api/v1/workflows/${wf1}/runs`, {}, { 'Idempotency-Key': 'idem-1' });
    const b = await env.api('POST', `/api/v1/workflows/${wf2}/runs`, { other: true }, { 'X-Idempotency-Key': 'idem-1' });
    const c = await env.api('POST', `/api/v1/workflows/${wf2}/runs?idempotency_key=idem-1`, {});
    expect(b.json.run_id).toBe(a.json.run_id);
    expect(c.json.run_id).toBe(a.json.run_id);
    expect(await env.redis.get('wf:run:idempotency:idem-1')).toBe(a.json.run_id);
    expect((await env.getRun(a.json.run_id)).idempotency_key).toBe('idem-1');
  });

  it('input_schema validation → 400 `input schema validation failed: ...`', async () => {
    const wf = (
      await env.api('POST', '/api/v1/workflows', {
        input_schema: { type: 'object', required: ['ticket'], properties: { ticket: { type: 'integer' } } },
        steps: APPROVAL,
      })
    ).json.id;
    const bad = await env.api('POST', `/api/v1/workflows/${wf}/runs`, { ticket: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/^input schema validation failed: /);
    expect((await env.api('POST', `/api/v1/workflows/${wf}/runs`, { ticket: 3 })).status).toBe(200);
  });

  it('max concurrent runs from the effective config → 429', async () => {
    const wf = (await env.api('POST', '/api/v1/workflows', { steps: APPROVAL })).json.id;
    await env.redis.set('cfg:workflow:' + wf, JSON.stringify({ scope: 'workflow', scope_id: wf, data: { limits: { max_concurrent_runs: 1 } }, revision: 1 }));
    // Other tests' waiting runs already occupy wf:runs:active:default.
    const res = await env.api('POST', `/api/v1/workflows/${wf}/runs`, {});
    expect(res).toMatchObject({ status: 429, text: 'max concurrent runs reached\n' });
    await env.redis.del('cfg:workflow:' + wf);
  });

  it('workflow-runs list: newest first, filters, seconds cursor', async () => {
    const wf = (await env.api('POST', '/api/v1/workflows', { steps: APPROVAL })).json.id;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await env.api('POST', `/api/v1/workflows/${wf}/runs`, {})).json.run_id);
    const page = (await env.api('GET', `/api/v1/workflow-runs?workflow_id=${wf}&limit=500`)).json;
    expect(page.items.map((r: any) => r.id).sort()).toEqual([...ids].sort());
    expect(page.next_cursor).toBeNull();
    const small = (await env.api('GET', '/api/v1/workflow-runs?limit=1')).json;
    expect(small.items).toHaveLength(1);
    const score = Number(await env.redis.zscore('wf:runs:all', small.items[0].id));
    expect(small.next_cursor).toBe(score - 1);
    const older = (await env.api('GET', `/api/v1/workflow-runs?limit=1000&cursor=${small.next_cursor}`)).json;
    expect(older.items.every((r: any) => Date.parse(r.updated_at) / 1000 < score)).toBe(true);
    const waiting = (await env.api('GET', '/api/v1/workflow-runs?status=waiting&limit=1000')).json;
    expect(waiting.items.every((r: any) => r.status === 'waiting')).toBe(true);
    expect(await env.api('GET', '/api/v1/workflow-runs?org_id=other')).toMatchObject({ status: 403 });
  });

  it('deleting a workflow leaves its runs alone', async () => {
    const { workflowId, runId } = await env.startWorkflow(APPROVAL);
    expect((await env.api('DELETE', `/api/v1/workflows/${workflowId}`)).status).toBe(204);
    expect((await env.getRun(runId)).status).toBe('waiting');
  });
});
