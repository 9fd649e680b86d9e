// DLQ: the entry a job on an unmapped topic produces, list/page shapes and units, delete and retry.
// No worker is needed: a topic no pool maps fails at once with no_pool_mapping.
import { beforeAll, describe, expect, it } from 'vitest';
import { isRecentSeconds, RFC3339, uniq, useContract, waitForDlqEntry, waitForJobState } from './support.js';

const fx = useContract();

/** A topic that is unmapped on any target: pools map exact topics only. */
const unmappedTopic = `job.${uniq()}.unmapped`;
let jobId: string;
let entry: Record<string, unknown>;

async function submitUnmapped(): Promise<string> {
  const res = await fx.gw.request<{ job_id: string }>('POST', '/api/v1/jobs', { body: { prompt: 'contract: dlq', topic: unmappedTopic }, expect: 200 });
  const id = res.json!.job_id;
  fx.cleanup(() => fx.gw.dlqDelete(id));
  return id;
}

beforeAll(async () => {
  jobId = await submitUnmapped();
  await waitForJobState(fx.gw, jobId, (s) => s === 'FAILED');
  entry = await waitForDlqEntry(fx.gw, jobId);
});

describe('entry after an unmapped-topic job', () => {
  it('a job on an unmapped topic ends FAILED', async () => {
    expect((await fx.gw.getJob(jobId)).state).toBe('FAILED');
  });

  it('the DLQ entry has reason_code no_pool_mapping and reason naming the topic', () => {
    expect(entry.reason_code).toBe('no_pool_mapping');
    expect(entry.reason).toBe(`no_pool_mapping: topic "${unmappedTopic}"`);
  });

  it('the DLQ entry has status JOB_STATUS_FAILED and last_state FAILED', () => {
    expect(entry.status).toBe('JOB_STATUS_FAILED');
    expect(entry.last_state).toBe('FAILED');
  });

  it('the DLQ entry carries job_id, topic and an RFC3339 created_at', () => {
    expect(entry.job_id).toBe(jobId);
    expect(entry.topic).toBe(unmappedTopic);
    expect(entry.created_at).toMatch(RFC3339);
  });

  it('the DLQ entry of a never-scheduled job has no attempts field', () => {
    expect(entry).not.toHaveProperty('attempts');
  });

  it('job detail merges the DLQ fields as error_message, error_status, error_code and last_state', async () => {
    const job = await fx.gw.getJob(jobId);
    expect(job.error_code).toBe('no_pool_mapping');
    expect(job.error_status).toBe('JOB_STATUS_FAILED');
    expect(job.error_message).toBe(`no_pool_mapping: topic "${unmappedTopic}"`);
    expect(job.last_state).toBe('FAILED');
  });

  it('after the DLQ tap the job result is the synthetic error body from cordum-scheduler', async () => {
    const job = await fx.gw.getJob(jobId);
    const result = job.result as Record<string, any>;
    expect(result).toMatchObject({ job_id: jobId, processed_by: 'cordum-scheduler' });
    expect(result).toHaveProperty('status');
    expect(result).toHaveProperty('completed_at');
    expect(typeof result.error?.message).toBe('string');
    expect(job.result_ptr).toBe(`redis://res:${jobId}`);
  });
});

describe('list and page', () => {
  it('GET /api/v1/dlq answers a bare array', async () => {
    const res = await fx.gw.request('GET', '/api/v1/dlq', { query: { limit: 200 }, expect: 200 });
    expect(Array.isArray(res.json)).toBe(true);
    expect((res.json as { job_id: string }[]).some((e) => e.job_id === jobId)).toBe(true);
  });

  it('GET /api/v1/dlq/page answers {items, next_cursor}', async () => {
    const page = await fx.gw.dlqPage({ limit: 200 });
    expect(Object.keys(page).sort()).toEqual(['items', 'next_cursor']);
    expect(Array.isArray(page.items)).toBe(true);
  });

  it('the DLQ page next_cursor is in unix seconds: last created_at seconds - 1 on a full page', async () => {
    const page = await fx.gw.dlqPage({ limit: 1 });
    expect(page.items).toHaveLength(1);
    const createdS = Math.floor(Date.parse(page.items![0].created_at) / 1000);
    expect(isRecentSeconds(page.next_cursor)).toBe(true);
    expect(page.next_cursor).toBe(createdS - 1);
  });

  it('a DLQ page cursor before the entry was created excludes it', async () => {
    const createdS = Math.floor(Date.parse(entry.created_at as string) / 1000);
    const page = await fx.gw.dlqPage({ limit: 200, cursor: createdS - 1 });
    expect((page.items ?? []).some((e) => e.job_id === jobId)).toBe(false);
  });
});

describe('delete and retry', () => {
  it('DELETE of an unknown DLQ entry answers 204', async () => {
    const res = await fx.gw.request('DELETE', `/api/v1/dlq/${uniq()}`, { expect: 204 });
    expect(res.text).toBe('');
  });

  it('retry of an unknown DLQ entry answers 404 dlq entry not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/dlq/${uniq()}/retry`, { expect: 404 });
    expect(res.text).toBe('dlq entry not found\n');
  });

  it('retry answers 200 {job_id: <id>-retry-<8 hex>} with no trace_id', async () => {
    const id = await submitUnmapped();
    await waitForDlqEntry(fx.gw, id);
    const res = await fx.gw.request<Record<string, string>>('POST', `/api/v1/dlq/${id}/retry`, { expect: 200 });
    const newId = res.json!.job_id;
    fx.cleanup(() => fx.gw.dlqDelete(newId));
    expect(Object.keys(res.json!)).toEqual(['job_id']);
    expect(newId).toMatch(new RegExp(`^${id}-retry-[0-9a-f]{8}$`));
  });

  it('the retried job has trace id dlq-retry-<original id> and retry labels', async () => {
    const id = await submitUnmapped();
    await waitForDlqEntry(fx.gw, id);
    const { job_id: newId } = await fx.gw.dlqRetry(id);
    fx.cleanup(() => fx.gw.dlqDelete(newId));
    const job = await fx.gw.getJob(newId);
    expect(job.trace_id).toBe(`dlq-retry-${id}`);
    expect(job.labels).toEqual({ retry: 'true', dlq_entry: id, retry_of_job: id });
    expect(job.topic).toBe(unmappedTopic);
  });

  it('retry deletes the original DLQ entry and the retried job fails again into the DLQ under the new id', async () => {
    const id = await submitUnmapped();
    await waitForDlqEntry(fx.gw, id);
    const { job_id: newId } = await fx.gw.dlqRetry(id);
    fx.cleanup(() => fx.gw.dlqDelete(newId));
    const list = await fx.gw.dlqList(1000);
    expect(list.some((e) => e.job_id === id)).toBe(false);
    const again = await waitForDlqEntry(fx.gw, newId);
    expect(again.reason_code).toBe('no_pool_mapping');
  });

  it('DELETE of an existing DLQ entry answers 204 and removes it', async () => {
    const res = await fx.gw.request('DELETE', `/api/v1/dlq/${jobId}`, { expect: 204 });
    expect(res.text).toBe('');
    const list = await fx.gw.dlqList(1000);
    expect(list.some((e) => e.job_id === jobId)).toBe(false);
  });
});
