// Keys real Cordum keeps forever for every job: it sets no TTL on a job's event list, its result
// pointer, or the trace set the job joins (recorded from a real platform; the job's other keys
// expire with JOB_META_TTL). A runbook that submits jobs hands them to ctx.residue() so nightly
// runs do not grow Redis without bound.

/** The keys with no TTL that submitting this job leaves (its own job id and trace id only). */
export function jobResidueKeys(job: { jobId: string; traceId?: string }): string[] {
  const keys = [`job:events:${job.jobId}`, `job:result_ptr:${job.jobId}`];
  if (job.traceId) keys.push(`trace:${job.traceId}`);
  return keys;
}
