// HTTP client for Cordum's API gateway, on undici (never Node's global fetch with an npm-undici
// dispatcher: that combination fails with "invalid onRequestStart method").
// It encodes Cordum's quirks once so runbooks do not have to: X-API-Key, principal headers,
// plain-text error bodies, JSON served as text/plain, encoded path segments, `~` in bundle ids,
// and the shared rate limiter's bare 429 (no Retry-After) handled with bounded backoff.
// Every call is bounded: one deadline for the whole answer (headers and body), a cap on the body
// size, and the caller's abort signal (a step's, a teardown action's) handed to undici, so a stop
// cancels the request on the socket instead of abandoning it.
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { ConfigError, ResponseTooLargeError, TargetTimeoutError, UnreachableError } from './errors.js';
import { readTlsFiles } from './files.js';
import { registerSecret, type Exchange } from './evidence.js';
import type { TargetProfile } from './profile-types.js';
import type * as T from './gateway-types.js';
import { anySignal } from './waits.js';

export type { Exchange } from './evidence.js';
export type * from './gateway-types.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD';
export type QueryValue = string | number | boolean | undefined | null;

export interface GatewayResponse<T> {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** Parsed body for 2xx responses whose text is JSON (whatever the content type says). */
  json: T | undefined;
  durationMs: number;
}

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** Objects are sent as JSON; strings as they are. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Accepted status code(s); anything else throws GatewayError. Default: any 2xx. */
  expect?: number | number[];
  /** Retry the rate limiter's 429 with backoff (default true). */
  retry429?: boolean;
  /**
   * Deadline for one complete answer, headers AND body (default the profile's request_timeout_ms).
   * A target that trickles or streams without end fails here as "too slow" (exit 3).
   */
  timeoutMs?: number;
  /** Abort the request (and any 429 backoff) when this aborts; combined with the client's own signal. */
  signal?: AbortSignal;
  /** Stop reading and fail once the body is larger than this (default MAX_BODY_BYTES). */
  maxBodyBytes?: number;
}

export interface RateLimitPolicy {
  /** Total attempts including the first (default 6). */
  maxAttempts: number;
  /** First backoff step (default 250 ms), doubled per attempt. */
  baseDelayMs: number;
  /** Cap on one backoff step (default 4000 ms). */
  maxDelayMs: number;
  /** Give up once this much time has gone by since the first attempt (default 20000 ms). */
  deadlineMs: number;
}

export interface GatewayStats {
  requests: number;
  /** 429 responses from the rate limiter that were retried. */
  retried429: number;
  /** Requests that still got 429 after the backoff budget ran out. */
  exhausted429: number;
}

/** A signal, or a function giving the one in force when a request starts (e.g. the running step's). */
export type SignalSource = AbortSignal | (() => AbortSignal | undefined);

export interface GatewayClientOptions {
  onExchange?: (ex: Exchange) => void;
  /** Override the key: a string is sent as is, null sends no key, undefined reads the profile's env var. */
  apiKey?: string | null;
  principal?: { id?: string; role?: string };
  env?: NodeJS.ProcessEnv;
  rateLimit?: Partial<RateLimitPolicy>;
  /** Every request of this client is aborted when this aborts (see withSignal). */
  signal?: SignalSource;
  /** Body cap for every request (default MAX_BODY_BYTES). */
  maxBodyBytes?: number;
}

export class GatewayError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
    readonly expected: number[] | 'any 2xx',
    note?: string,
  ) {
    const exp = Array.isArray(expected) ? expected.join(' or ') : expected;
    super(`${method} ${path} → ${status} ${JSON.stringify(excerpt(body, 300))} (expected ${exp})${note ? `; ${note}` : ''}`);
    this.name = 'GatewayError';
  }
}

/**
 * A 2xx whose body is not what the endpoint documents: HTML from a proxy or login page, text that
 * does not parse, `null` or an array where an object belongs. A failed check (exit 1) that names the
 * endpoint and what came back, instead of a TypeError in the step that read it.
 */
export class UnexpectedBodyError extends Error {
  /** What the endpoint documents. Own, like GatewayError's: reports read an error with `expected` as a failed check, not broken code. */
  readonly expected: string;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly got: string,
    readonly wanted: string,
    body: string,
  ) {
    const shown = body.trim() ? `: ${JSON.stringify(excerpt(body, 120))}` : '';
    super(`${method} ${path} answered ${status} with ${got}, expected ${wanted}${shown}`);
    this.name = 'UnexpectedBodyError';
    this.expected = wanted;
  }
}

/**
 * The most one answer may carry. Cordum's largest answers (job and DLQ pages, bundles, /metrics)
 * are far below; a body past this is a runaway stream, not data.
 */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

const DEFAULT_RATE_LIMIT: RateLimitPolicy = { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 4000, deadlineMs: 20000 };
const REDACTED = '***';

/** TLS trust for an https:// gateway from the profile's gateway.tls (CA, client cert, server name). */
function gatewayTls(profile: TargetProfile): { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string; rejectUnauthorized?: boolean } {
  const t = profile.gateway.tls;
  if (!t) return {};
  return { ...readTlsFiles(t, `${profile.source}: gateway.tls`), ...(t.server_name ? { servername: t.server_name } : {}), ...(t.insecure_skip_verify ? { rejectUnauthorized: false } : {}) };
}

/** What a client and the views made by withSignal share: one connection pool, one key, one set of stats. */
interface Connection {
  agent: Agent;
  apiKey: string | undefined;
  principal: { id?: string; role?: string } | undefined;
  rateLimit: RateLimitPolicy;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  maxBodyBytes: number;
  stats: GatewayStats;
}

/** One exchange as the transport saw it; `label` is what error messages name ("GET /api/v1/status"). */
interface Send {
  method: string;
  url: string;
  label: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  maxBodyBytes?: number;
}

export class GatewayClient {
  readonly baseUrl: string;
  readonly stats: GatewayStats;
  private readonly conn: Connection;
  private readonly signalSource: SignalSource | undefined;

  constructor(
    readonly profile: TargetProfile,
    private readonly opts: GatewayClientOptions = {},
    /** Internal: a view made by withSignal shares its parent's connection. */
    shared?: Connection,
  ) {
    this.baseUrl = profile.gateway.url.replace(/\/+$/, '');
    this.signalSource = opts.signal;
    this.conn = shared ?? openConnection(profile, opts);
    this.stats = this.conn.stats;
  }

  /**
   * The same client (pool, key, stats, transcripts) with every request also bound to `signal`.
   * A function is asked when each request starts, so a client kept across steps follows the
   * step that is running at the time (that is what ctx.gateway() hands to scenarios).
   */
  withSignal(signal: SignalSource): GatewayClient {
    const outer = this.signalSource;
    const source: SignalSource =
      outer === undefined ? signal : () => anySignal(resolveSignal(outer), resolveSignal(signal));
    return new GatewayClient(this.profile, { ...this.opts, signal: source }, this.conn);
  }

  /** Release pooled connections once in-flight requests are done (they are all bounded). */
  async close(): Promise<void> {
    await this.conn.agent.close();
  }

  /** Drop every connection now, in-flight requests included: for cleanup that must not wait. */
  async destroy(): Promise<void> {
    await this.conn.agent.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // Core request

  async request<R = unknown>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<GatewayResponse<R>> {
    const url = this.baseUrl + path + queryString(opts.query);
    const headers: Record<string, string> = { accept: 'application/json, text/plain;q=0.9' };
    if (this.conn.apiKey) headers['x-api-key'] = this.conn.apiKey;
    if (this.conn.principal?.id) headers['x-principal-id'] = this.conn.principal.id;
    if (this.conn.principal?.role) headers['x-principal-role'] = this.conn.principal.role;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    Object.assign(headers, lowerKeys(opts.headers ?? {}));

    const send: Send = { method, url, label: `${method} ${this.baseUrl}${path}`, headers, body, timeoutMs: opts.timeoutMs, signal: opts.signal, maxBodyBytes: opts.maxBodyBytes };
    const res = await this.sendWithBackoff(send, opts.retry429 !== false);
    const expected = opts.expect === undefined ? undefined : Array.isArray(opts.expect) ? opts.expect : [opts.expect];
    const ok = expected ? expected.includes(res.status) : res.status >= 200 && res.status < 300;
    if (!ok) {
      const note = res.status === 429 && res.attempts > 1 ? `still rate limited after ${res.attempts} attempts` : undefined;
      throw new GatewayError(method, path, res.status, res.text, expected ?? 'any 2xx', note);
    }
    let json: R | undefined;
    // Error bodies are always plain text in Cordum; only parse successes (and never trust content-type).
    if (res.status >= 200 && res.status < 300 && res.text.trim() !== '') {
      try {
        json = JSON.parse(res.text) as R;
      } catch {
        json = undefined;
      }
    }
    return { status: res.status, headers: res.headers, text: res.text, json, durationMs: res.durationMs };
  }

  private async sendWithBackoff(send: Send, retry429: boolean): Promise<RawResponse & { attempts: number }> {
    const started = Date.now();
    const policy = this.conn.rateLimit;
    for (let attempt = 1; ; attempt++) {
      const signal = anySignal(resolveSignal(this.signalSource), send.signal);
      const res = await this.sendOnce({ ...send, signal });
      if (res.status !== 429 || !retry429 || !isRateLimiter429(res.text)) return { ...res, attempts: attempt };
      const wait = backoffDelay(attempt, policy, res.headers['retry-after']);
      const outOfTime = Date.now() - started + wait > policy.deadlineMs;
      if (attempt >= policy.maxAttempts || outOfTime) {
        this.conn.stats.exhausted429++;
        return { ...res, attempts: attempt };
      }
      this.conn.stats.retried429++;
      try {
        await delay(wait, undefined, { signal });
      } catch (err) {
        throw signal?.aborted ? signal.reason : err;
      }
    }
  }

  /**
   * One exchange, bounded three ways: the caller's signal, one deadline for the whole answer (the
   * per-read timeouts of undici alone let a body that trickles a byte a second run forever) and a
   * cap on the body size.
   */
  private async sendOnce(s: Send): Promise<RawResponse> {
    this.conn.stats.requests++;
    const t0 = performance.now();
    const timeout = s.timeoutMs ?? this.conn.requestTimeoutMs;
    const deadline = AbortSignal.timeout(timeout);
    const signal = anySignal(s.signal, deadline)!;
    const cap = s.maxBodyBytes ?? this.conn.maxBodyBytes;
    try {
      const res = await undiciRequest(s.url, {
        method: s.method as 'GET',
        headers: s.headers,
        body: s.body,
        dispatcher: this.conn.agent,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal,
      });
      const text = await readCapped(res, cap, s.label);
      const durationMs = performance.now() - t0;
      const resHeaders = flattenHeaders(res.headers);
      this.opts.onExchange?.({
        method: s.method,
        url: s.url,
        requestHeaders: maskKey(s.headers),
        requestBody: s.body,
        status: res.statusCode,
        responseHeaders: resHeaders,
        responseBody: text,
        durationMs,
      });
      return { status: res.statusCode, headers: resHeaders, text, durationMs };
    } catch (err) {
      // The caller stopped it (step timeout, Ctrl-C, teardown budget): its reason is the failure.
      if (s.signal?.aborted) throw s.signal.reason;
      if (deadline.aborted) throw this.tooSlow(s.label, timeout);
      throw this.unreachable(s.label, err, timeout);
    }
  }

  /** The deadline covers the whole answer: a body that trickles in is as late as headers that never come. */
  private tooSlow(what: string, timeoutMs: number): TargetTimeoutError {
    return new TargetTimeoutError(`gateway unreachable: ${what}: no complete response within the request timeout of ${timeoutMs} ms`);
  }

  private unreachable(what: string, err: unknown, timeoutMs: number): Error {
    if (err instanceof ResponseTooLargeError) return err;
    const code = errorCode(err);
    const connectTimeoutMs = this.conn.connectTimeoutMs;
    switch (code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new UnreachableError(`gateway unreachable: ${what}: no TCP connection within the connect timeout of ${connectTimeoutMs} ms`);
      case 'UND_ERR_HEADERS_TIMEOUT':
      case 'UND_ERR_BODY_TIMEOUT':
        return this.tooSlow(what, timeoutMs);
      case 'ECONNREFUSED':
        return new UnreachableError(`gateway unreachable: ${what}: connection refused (connect timeout ${connectTimeoutMs} ms)`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new UnreachableError(`gateway unreachable: ${what}: host name does not resolve`);
      case 'ECONNRESET':
      case 'EPIPE':
      case 'UND_ERR_SOCKET':
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'ETIMEDOUT':
        return new UnreachableError(`gateway unreachable: ${what}: ${code} (connect timeout ${connectTimeoutMs} ms, request timeout ${timeoutMs} ms)`);
      default:
        return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** A JSON object answer (what most endpoints document); anything else fails naming the endpoint. */
  private async call<R>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<R> {
    const res = await this.request<R>(method, path, opts);
    const value = parsedBody(method, path, res);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new UnexpectedBodyError(method, path, res.status, jsonKind(value), 'a JSON object', shownBody(value, res.text));
    }
    return value as R;
  }

  /** A JSON array answer; Cordum answers `null` for an empty list on several endpoints, read as []. */
  private async list<R>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<R[]> {
    const res = await this.request<R[] | null>(method, path, opts);
    const value = parsedBody(method, path, res);
    if (value === null) return [];
    if (!Array.isArray(value)) throw new UnexpectedBodyError(method, path, res.status, jsonKind(value), 'a JSON array', shownBody(value, res.text));
    return value as R[];
  }

  private async callNoContent(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<void> {
    await this.request(method, path, { expect: 204, ...opts });
  }

  // -------------------------------------------------------------------------------------------
  // Health, status, workers

  /** GET /health: the text body (`ok`). No auth, no rate limit, checks neither Redis nor NATS. */
  async health(): Promise<string> {
    return (await this.request('GET', '/health', { expect: 200 })).text.trim();
  }

  async status(): Promise<T.StatusResponse> {
    return this.call('GET', '/api/v1/status', { expect: 200 });
  }

  /** Heartbeats the gateway has seen since it started (never pruned). */
  async workers(): Promise<T.WorkerHeartbeat[]> {
    return this.list('GET', '/api/v1/workers', { expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Jobs

  /** POST /api/v1/jobs (200, not 201). The job is only queued when this returns. */
  async submitJob(body: T.SubmitJobBody): Promise<T.SubmitJobResponse> {
    return this.call('POST', '/api/v1/jobs', { body, expect: 200 });
  }

  /** `cursor` is in microseconds. Filters apply after the page is read, so pages can be short. */
  async listJobs(query: T.ListJobsQuery = {}): Promise<T.Page<T.JobRecord>> {
    return this.call('GET', '/api/v1/jobs', { query: { ...query }, expect: 200 });
  }

  /** GET /api/v1/jobs/{id}: JSON served as text/plain; parsed regardless. */
  async getJob(id: string): Promise<T.JobDetail> {
    return this.call('GET', paths.job(id), { expect: 200 });
  }

  async jobDecisions(id: string, limit?: number): Promise<T.SafetyDecisionRecord[]> {
    return this.list('GET', `/api/v1/jobs/${seg(id)}/decisions`, { query: { limit }, expect: 200 });
  }

  /**
   * 200 even for terminal jobs: `reason: "job already terminal"` for one that ended SUCCEEDED,
   * FAILED, DENIED or TIMEOUT; an already CANCELLED job answers `{"id","state":"CANCELLED"}` again,
   * with no reason.
   */
  async cancelJob(id: string): Promise<T.CancelJobResponse> {
    return this.call('POST', paths.jobCancel(id), { expect: 200 });
  }

  async remediateJob(id: string, remediationId?: string): Promise<T.SubmitJobResponse> {
    return this.call('POST', `/api/v1/jobs/${seg(id)}/remediate`, { body: remediationId ? { remediation_id: remediationId } : {}, expect: 200 });
  }

  async trace(traceId: string): Promise<T.JobRecord[]> {
    return this.list('GET', `/api/v1/traces/${seg(traceId)}`, { expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Workflows and runs

  /** Upsert; 201 `{id}`. `steps` must be an object keyed by step id. */
  async createWorkflow(def: T.WorkflowDefinition): Promise<{ id: string }> {
    return this.call('POST', '/api/v1/workflows', { body: def, expect: 201 });
  }

  async getWorkflow(id: string): Promise<T.Workflow> {
    return this.call('GET', paths.workflow(id), { expect: 200 });
  }

  async deleteWorkflow(id: string): Promise<void> {
    await this.callNoContent('DELETE', paths.workflow(id));
  }

  /** The body IS the run input object. The idempotency key is global across workflows. */
  async startRun(
    wfId: string,
    input: Record<string, unknown> = {},
    opts: { idempotencyKey?: string; dryRun?: boolean } = {},
  ): Promise<{ run_id: string }> {
    return this.call('POST', `/api/v1/workflows/${seg(wfId)}/runs`, {
      body: input,
      headers: opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : undefined,
      query: { dry_run: opts.dryRun ? 'true' : undefined },
      expect: 200,
    });
  }

  async getRun(runId: string): Promise<T.WorkflowRun> {
    return this.call('GET', paths.run(runId), { expect: 200 });
  }

  /** GET /api/v1/workflow-runs. `cursor` is in unix SECONDS (unlike jobs). */
  async listRuns(query: T.ListRunsQuery = {}): Promise<T.Page<T.WorkflowRun>> {
    return this.call('GET', '/api/v1/workflow-runs', { query: { ...query }, expect: 200 });
  }

  /** Runs of one workflow (newest first, at most 100). */
  async workflowRuns(wfId: string): Promise<T.WorkflowRun[]> {
    return this.list('GET', `/api/v1/workflows/${seg(wfId)}/runs`, { expect: 200 });
  }

  async timeline(runId: string, limit?: number): Promise<T.TimelineEvent[]> {
    return this.list('GET', `/api/v1/workflow-runs/${seg(runId)}/timeline`, { query: { limit }, expect: 200 });
  }

  /**
   * Approve (or reject) a workflow approval step: 204. `approved` is always sent explicitly, since a
   * missing field silently rejects the step. May get 409 "workflow run is busy, retry": wrap in retryOn409.
   */
  async approveStep(wfId: string, runId: string, stepId: string, approved: boolean): Promise<void> {
    await this.callNoContent('POST', `/api/v1/workflows/${seg(wfId)}/runs/${seg(runId)}/steps/${seg(stepId)}/approve`, { body: { approved } });
  }

  async cancelRun(wfId: string, runId: string): Promise<void> {
    await this.callNoContent('POST', `/api/v1/workflows/${seg(wfId)}/runs/${seg(runId)}/cancel`);
  }

  async rerun(runId: string, body: { from_step?: string; dry_run?: boolean } = {}): Promise<{ run_id: string }> {
    return this.call('POST', `/api/v1/workflow-runs/${seg(runId)}/rerun`, { body, expect: 200 });
  }

  async deleteRun(runId: string): Promise<void> {
    await this.callNoContent('DELETE', paths.run(runId));
  }

  // -------------------------------------------------------------------------------------------
  // Job approvals

  /** Oldest first; the job id is at items[i].job.id; the cursor does not advance (use one big limit). */
  async approvals(query: { limit?: number; cursor?: number } = {}): Promise<T.Page<T.ApprovalItem>> {
    return this.call('GET', '/api/v1/approvals', { query: { ...query }, expect: 200 });
  }

  /** `principal` overrides the client's X-Principal-Id/Role for this call (recorded as approval_by). */
  async approveJob(id: string, body: { reason?: string; note?: string } = {}, principal?: { id?: string; role?: string }): Promise<T.SubmitJobResponse> {
    return this.call('POST', `/api/v1/approvals/${seg(id)}/approve`, { body, headers: principalHeaders(principal), expect: 200 });
  }

  async rejectJob(id: string, body: { reason?: string; note?: string } = {}, principal?: { id?: string; role?: string }): Promise<{ job_id: string }> {
    return this.call('POST', `/api/v1/approvals/${seg(id)}/reject`, { body, headers: principalHeaders(principal), expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // DLQ

  async dlqList(limit?: number): Promise<T.DlqEntry[]> {
    return this.list('GET', '/api/v1/dlq', { query: { limit }, expect: 200 });
  }

  /** `cursor` is unix SECONDS with no normalisation. */
  async dlqPage(query: { limit?: number; cursor?: number } = {}): Promise<T.Page<T.DlqEntry>> {
    return this.call('GET', '/api/v1/dlq/page', { query: { ...query }, expect: 200 });
  }

  /** 204 even when the entry does not exist. */
  async dlqDelete(jobId: string): Promise<void> {
    await this.callNoContent('DELETE', paths.dlqEntry(jobId));
  }

  /** New id `<orig>-retry-<8hex>`; deletes the original entry. */
  async dlqRetry(jobId: string): Promise<{ job_id: string }> {
    return this.call('POST', `/api/v1/dlq/${seg(jobId)}/retry`, { expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Policy decisions (protojson responses: camelCase)

  async policyEvaluate(req: T.PolicyCheckBody): Promise<T.PolicyDecision> {
    return this.call('POST', '/api/v1/policy/evaluate', { body: req, expect: 200 });
  }

  async policySimulate(req: T.PolicyCheckBody): Promise<T.PolicyDecision> {
    return this.call('POST', '/api/v1/policy/simulate', { body: req, expect: 200 });
  }

  async policyExplain(req: T.PolicyCheckBody): Promise<T.PolicyDecision> {
    return this.call('POST', '/api/v1/policy/explain', { body: req, expect: 200 });
  }

  /** Kernel snapshots, newest first; changes only after a kernel reload. */
  async policySnapshots(): Promise<{ snapshots: string[] }> {
    return this.call('GET', '/api/v1/policy/snapshots', { expect: 200 });
  }

  async policyRules(includeDisabled = false): Promise<T.PolicyRulesResponse> {
    return this.call('GET', '/api/v1/policy/rules', { query: { include_disabled: includeDisabled ? 'true' : undefined }, expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Policy bundles (config-service backed). Ids contain `/`, written as `~` in paths.

  /** `items` is null (not []) when there are no bundles. */
  async bundles(): Promise<T.BundlesResponse> {
    return this.call('GET', '/api/v1/policy/bundles', { expect: 200 });
  }

  async getBundle(id: string): Promise<T.Bundle> {
    return this.call('GET', `/api/v1/policy/bundles/${bundleSeg(id)}`, { expect: 200 });
  }

  /** Only `secops/*` ids. Omitting `enabled` on a new bundle makes it live without publish. */
  async putBundle(id: string, body: { content: string; enabled?: boolean; author?: string; message?: string }): Promise<{ id: string; updated_at: string }> {
    return this.call('PUT', `/api/v1/policy/bundles/${bundleSeg(id)}`, { body, expect: 200 });
  }

  async simulateBundle(id: string, body: { request: T.PolicyCheckBody; content: string }): Promise<T.PolicyDecision> {
    return this.call('POST', `/api/v1/policy/bundles/${bundleSeg(id)}/simulate`, { body, expect: 200 });
  }

  async bundleSnapshots(): Promise<{ items: T.BundleSnapshotSummary[] | null }> {
    return this.call('GET', '/api/v1/policy/bundles/snapshots', { expect: 200 });
  }

  async createBundleSnapshot(note?: string): Promise<T.BundleSnapshot> {
    return this.call('POST', '/api/v1/policy/bundles/snapshots', { body: note === undefined ? {} : { note }, expect: 200 });
  }

  /** Snapshot ids contain `:`; always encoded. */
  async getBundleSnapshot(id: string): Promise<T.BundleSnapshot> {
    return this.call('GET', `/api/v1/policy/bundles/snapshots/${seg(id)}`, { expect: 200 });
  }

  async publishPolicy(body: { bundle_ids?: string[]; author?: string; message?: string; note?: string } = {}): Promise<T.PublishResponse> {
    return this.call('POST', '/api/v1/policy/publish', { body, expect: 200 });
  }

  async rollbackPolicy(body: { snapshot_id: string; author?: string; message?: string; note?: string }): Promise<T.RollbackResponse> {
    return this.call('POST', '/api/v1/policy/rollback', { body, expect: 200 });
  }

  async policyAudit(): Promise<{ items: T.PolicyAuditEntry[] | null }> {
    return this.call('GET', '/api/v1/policy/audit', { expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Config service

  async getConfig(scope = 'system', scopeId?: string): Promise<T.ConfigDocument> {
    return this.call('GET', '/api/v1/config', { query: { scope, scope_id: scopeId }, expect: 200 });
  }

  /** Replaces the WHOLE document (no merge) and resets revision to 1. Read-modify-write. */
  async setConfig(doc: { scope: string; scope_id?: string; data: Record<string, unknown>; meta?: Record<string, unknown> }): Promise<void> {
    await this.callNoContent('POST', '/api/v1/config', { body: doc });
  }

  async effectiveConfig(query: { org_id?: string; team_id?: string; workflow_id?: string; step_id?: string } = {}): Promise<T.EffectiveConfig> {
    return this.call('GET', '/api/v1/config/effective', { query: { ...query }, expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Locks

  async lockGet(resource: string): Promise<T.Lock> {
    return this.call('GET', paths.locks, { query: { resource }, expect: 200 });
  }

  /** 409 `lock unavailable` when someone else holds it. */
  async lockAcquire(body: { resource: string; owner: string; mode?: 'exclusive' | 'shared'; ttl_ms?: number }): Promise<T.Lock> {
    return this.call('POST', '/api/v1/locks/acquire', { body, expect: 200 });
  }

  async lockRenew(body: { resource: string; owner: string; ttl_ms: number }): Promise<T.Lock> {
    return this.call('POST', '/api/v1/locks/renew', { body, expect: 200 });
  }

  /** Always 200 `released: true`, even for a missing lock or a non-owner. */
  async lockRelease(body: { resource: string; owner: string }): Promise<{ lock: T.Lock | null; released: boolean }> {
    return this.call('POST', paths.lockRelease, { body, expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Artifacts and memory

  async putArtifact(body: T.PutArtifactBody): Promise<{ artifact_ptr: string; size_bytes: number }> {
    return this.call('POST', '/api/v1/artifacts', { body, expect: 200 });
  }

  /** The pointer (`redis://art:<uuid>`) is percent-encoded into one path segment. */
  async getArtifact(ptr: string): Promise<T.Artifact> {
    return this.call('GET', `/api/v1/artifacts/${seg(ptr)}`, { expect: 200 });
  }

  /** GET /api/v1/memory?ptr=redis://ctx:<id> | res:<id> | mem:<id>... */
  async memory(ptr: string): Promise<T.MemoryResponse> {
    return this.call('GET', '/api/v1/memory', { query: { ptr }, expect: 200 });
  }

  // -------------------------------------------------------------------------------------------
  // Metrics (separate listeners: no API key is sent there)

  /** Fetch a Prometheus text page. The key is never sent: metrics live on other listeners/hosts. */
  async scrapeMetrics(url: string, opts: Pick<RequestOptions, 'signal' | 'timeoutMs'> = {}): Promise<string> {
    const send: Send = { method: 'GET', url, label: `GET ${url}`, headers: { accept: 'text/plain' }, timeoutMs: opts.timeoutMs };
    const res = await this.sendOnce({ ...send, signal: anySignal(resolveSignal(this.signalSource), opts.signal) });
    if (res.status !== 200) throw new GatewayError('GET', url, res.status, res.text, [200]);
    return res.text;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  durationMs: number;
}

function openConnection(profile: TargetProfile, opts: GatewayClientOptions): Connection {
  const apiKey = resolveApiKey(profile, opts);
  if (apiKey) registerSecret(apiKey);
  const requestTimeoutMs = profile.gateway.request_timeout_ms;
  const connectTimeoutMs = profile.gateway.connect_timeout_ms;
  return {
    agent: new Agent({ connect: { timeout: connectTimeoutMs, ...gatewayTls(profile) }, headersTimeout: requestTimeoutMs, bodyTimeout: requestTimeoutMs }),
    apiKey,
    principal: opts.principal ?? profile.gateway.principal,
    rateLimit: { ...DEFAULT_RATE_LIMIT, ...opts.rateLimit },
    requestTimeoutMs,
    connectTimeoutMs,
    maxBodyBytes: opts.maxBodyBytes ?? MAX_BODY_BYTES,
    stats: { requests: 0, retried429: 0, exhausted429: 0 },
  };
}

function resolveSignal(source: SignalSource | undefined): AbortSignal | undefined {
  return typeof source === 'function' ? source() : source;
}

/** The body as text, read only up to `cap` bytes: a runaway stream is cut off, not buffered. */
async function readCapped(res: Dispatcher.ResponseData, cap: number, what: string): Promise<string> {
  const tooLarge = () =>
    new ResponseTooLargeError(`gateway answer too large: ${what}: the body exceeds ${Math.round(cap / 1024)} KiB; stopped reading (a stream without end, or not Cordum)`);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > cap) {
    res.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > cap) throw tooLarge(); // leaving the loop destroys the stream
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** The parsed JSON of a 2xx answer, or an error naming what came back instead. */
function parsedBody(method: string, path: string, res: GatewayResponse<unknown>): unknown {
  if (res.json !== undefined) return res.json;
  const type = res.headers['content-type']?.split(';')[0]?.trim() || 'no content type';
  const got = res.text.trim() === '' ? 'an empty body' : /json/i.test(type) ? `${type} that does not parse` : type;
  throw new UnexpectedBodyError(method, path, res.status, got, 'JSON', res.text);
}

/** An object or array is worth quoting; `null` or a number is said in full by its kind. */
function shownBody(v: unknown, text: string): string {
  return v !== null && typeof v === 'object' ? text : '';
}

function jsonKind(v: unknown): string {
  if (v === null) return 'JSON null';
  if (Array.isArray(v)) return 'a JSON array';
  return `a JSON ${typeof v === 'object' ? 'object' : typeof v}`;
}

function excerpt(body: string, max: number): string {
  const t = body.trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function resolveApiKey(profile: TargetProfile, opts: GatewayClientOptions): string | undefined {
  if (opts.apiKey === null) return undefined;
  if (typeof opts.apiKey === 'string') return opts.apiKey;
  const name = profile.gateway.api_key_env;
  if (!name) return undefined;
  const value = (opts.env ?? process.env)[name];
  if (!value) {
    throw new ConfigError(`${profile.source}: gateway.api_key_env: environment variable ${name} is not set (export it with the gateway's API key)`);
  }
  // A key read from a file or a Secret often keeps its trailing newline; no HTTP header can carry
  // one, and the request would fail as if the gateway were unreachable. Said here, without the value.
  const bad = /[\u0000-\u0008\u000a-\u001f\u007f]/.exec(value);
  if (bad) {
    const what = bad[0] === '\n' || bad[0] === '\r' ? 'a line break' : `a control character (0x${bad[0].charCodeAt(0).toString(16).padStart(2, '0')})`;
    const where = bad.index === value.length - 1 ? 'at its end' : `at position ${bad.index + 1} of ${value.length}`;
    throw new ConfigError(
      `${profile.source}: gateway.api_key_env: environment variable ${name} holds ${what} ${where}, which no HTTP header can carry; set it without (e.g. printf '%s' "$key", or tr -d '\\r\\n')`,
    );
  }
  return value;
}

/** The limiter says "rate limited"; the concurrent-runs cap ("max concurrent runs reached") is an answer, not a retry. */
function isRateLimiter429(text: string): boolean {
  return !/max concurrent runs/i.test(text);
}

/** Exponential backoff with full jitter over the upper half, so concurrent clients spread out. */
function backoffDelay(attempt: number, p: RateLimitPolicy, retryAfter: string | undefined): number {
  const ra = retryAfter !== undefined ? Number(retryAfter) : NaN;
  if (Number.isFinite(ra) && ra >= 0) return Math.min(ra * 1000, p.maxDelayMs);
  const step = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(step / 2 + Math.random() * (step / 2));
}

function queryString(q: Record<string, QueryValue> | undefined): string {
  if (!q) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null) params.append(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** One path segment: `/` and `:` inside ids (artifact pointers, snapshot ids) must not split it. */
function seg(v: string): string {
  return encodeURIComponent(v);
}

/**
 * Where the objects a runbook creates and removes live, each id encoded as one segment. The client's
 * methods and the undo builders (helpers/undo.ts) both build their paths here, so an undo action
 * can never address a route or an encoding the client no longer uses.
 */
export const paths = {
  workflow: (id: string) => `/api/v1/workflows/${seg(id)}`,
  run: (runId: string) => `/api/v1/workflow-runs/${seg(runId)}`,
  job: (id: string) => `/api/v1/jobs/${seg(id)}`,
  jobCancel: (id: string) => `/api/v1/jobs/${seg(id)}/cancel`,
  dlqEntry: (jobId: string) => `/api/v1/dlq/${seg(jobId)}`,
  /** GET with `?resource=`. */
  locks: '/api/v1/locks',
  lockRelease: '/api/v1/locks/release',
} as const;

/** Bundle ids use `~` for `/` in paths (Cordum's convention), then the rest is encoded. */
export function bundlePathId(id: string): string {
  return encodeURIComponent(id.replace(/\//g, '~'));
}
const bundleSeg = bundlePathId;

function principalHeaders(p: { id?: string; role?: string } | undefined): Record<string, string> | undefined {
  if (!p) return undefined;
  const h: Record<string, string> = {};
  if (p.id) h['x-principal-id'] = p.id;
  if (p.role) h['x-principal-role'] = p.role;
  return h;
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function maskKey(h: Record<string, string>): Record<string, string> {
  const out = { ...h };
  for (const k of Object.keys(out)) if (k.toLowerCase() === 'x-api-key') out[k] = REDACTED;
  return out;
}

function flattenHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string }; errors?: { code?: string }[] } | undefined;
  return e?.code ?? e?.cause?.code ?? e?.errors?.[0]?.code;
}

// ---------------------------------------------------------------------------------------------
// Cursor units differ by endpoint: jobs/approvals use microseconds, runs/DLQ pages unix seconds.

/** For listJobs/approvals cursors and job `updated_at` comparisons. */
export function toMicros(t: Date | number): number {
  return Math.floor((t instanceof Date ? t.getTime() : t) * 1000);
}

/** For listRuns/dlqPage cursors. */
export function toUnixSeconds(t: Date | number): number {
  return Math.floor((t instanceof Date ? t.getTime() : t) / 1000);
}
