// Workflow step job ids: `<run_id>:<step_id>@<attempt>` (runtime.md §2.3). Run ids are UUIDs
// (no ':'), so the first ':' and the last '@' split the id unambiguously.
export function stepJobId(runId: string, stepId: string, attempt: number): string {
  return `${runId}:${stepId}@${attempt}`;
}

export function parseStepJobId(jobId: string): { runId: string; stepId: string; attempt: number } | null {
  const colon = jobId.indexOf(':');
  const at = jobId.lastIndexOf('@');
  if (colon <= 0 || at <= colon + 1) return null;
  const attempt = Number(jobId.slice(at + 1));
  if (!Number.isInteger(attempt) || attempt < 1) return null;
  return { runId: jobId.slice(0, colon), stepId: jobId.slice(colon + 1, at), attempt };
}
