// Undo actions for what runbooks create through the gateway, built beside the client: every path
// comes from helpers/gateway.ts › paths (the routes and id encoding the client itself uses), and
// every builder states what counts as "removed" for that route in Cordum. Register the undo before
// the call that creates the object (helpers/teardown.ts):
//
//   ctx.teardown.add(`workflow ${id}`, undo.workflow(id));
//   await gw.createWorkflow({ id, ... });
//
// A 404 is "already gone" only where Cordum answers 404 for a missing object, and only once a GET
// of the object confirms it (HttpTeardown.confirmGone): an undo whose path went stale (a renamed
// route, an id encoded twice) is then a leftover, not a removal.
import { paths } from './gateway.js';
import type { HttpTeardown } from './teardown.js';

/** A delete that worked: Cordum answers 204 (a 200 would be just as final). */
const DELETED = [200, 204];

export const undo = {
  /** DELETE the workflow; 404 counts once GET of it is 404 too. */
  workflow(id: string): HttpTeardown {
    return { kind: 'http', method: 'DELETE', path: paths.workflow(id), okStatuses: DELETED, confirmGone: paths.workflow(id) };
  },

  /** DELETE the workflow run; 404 counts once GET of it is 404 too. */
  run(runId: string): HttpTeardown {
    return { kind: 'http', method: 'DELETE', path: paths.run(runId), okStatuses: DELETED, confirmGone: paths.run(runId) };
  },

  /**
   * Cancel the job. Cordum answers 200 for terminal jobs too ("job already terminal"), so this is
   * safe to replay; jobs cannot be deleted (their records expire). 404 counts once GET of the job
   * is 404 too (a step job that was never dispatched, say).
   */
  job(id: string): HttpTeardown {
    return { kind: 'http', method: 'POST', path: paths.jobCancel(id), okStatuses: [200], confirmGone: paths.job(id) };
  },

  /** DELETE the job's DLQ entry. Cordum answers 204 even when there is none, so a 404 means a wrong path. */
  dlqEntry(jobId: string): HttpTeardown {
    return { kind: 'http', method: 'DELETE', path: paths.dlqEntry(jobId), okStatuses: DELETED };
  },

  /** Release the lock as this owner. Cordum answers 200 even for a missing lock, so a 404 means a wrong path. */
  lock(resource: string, owner: string): HttpTeardown {
    return { kind: 'http', method: 'POST', path: paths.lockRelease, body: { resource, owner }, okStatuses: [200] };
  },
} as const;
