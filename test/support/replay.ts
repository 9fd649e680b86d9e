// Replays the gateway exchanges recorded from a real Cordum (../shared/cordum/recorded/
// gateway-transcript.jsonl) against a sandbox, in order, and compares each answer with the recorded
// one: status code, content type, the JSON shape (key sets and value types, recursively) and, for
// errors, the plain-text body. Ids the sandbox creates (job, trace, run and snapshot ids, generated
// workflow ids, DLQ retry ids) differ from the recorded ones; they are learnt from the answers by
// walking the recorded and the sandbox JSON side by side, and substituted into later requests.
//
// What is not replayed, and why (each is counted, never silently dropped):
// - `GET /health?phase=<name>`: markers the recorder wrote between runs;
// - WebSocket upgrades: the recorder noted them but kept no answer;
// - exchanges the real gateway answered 429: the request never reached the handler there, and the
//   client's retry is the next recorded line, so replaying it would run the request twice;
// - requests whose body the recorder cut at 64 KiB (no longer the request that was sent).
import { readFileSync } from 'node:fs';
import { request } from 'undici';

export interface RecordedExchange {
  seq: number;
  ms: number;
  method: string;
  url: string;
  req_headers?: Record<string, string>;
  req_body?: string | null;
  status?: number;
  res_headers?: Record<string, string>;
  res_body?: string;
  res_bytes?: number;
  upgrade?: string;
}

export function loadTranscript(file: string): RecordedExchange[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as RecordedExchange);
}

export type SkipReason = 'phase-marker' | 'websocket' | 'rate-limited-in-recording' | 'request-body-cut';

const RECORDER_BODY_CAP = 64 * 1024;

export function skipReason(x: RecordedExchange): SkipReason | undefined {
  if (x.upgrade) return 'websocket';
  if (/^\/health\?phase=/.test(x.url)) return 'phase-marker';
  if (x.status === 429) return 'rate-limited-in-recording';
  if (x.req_body && x.req_body.length >= RECORDER_BODY_CAP) return 'request-body-cut';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// JSON shape

/** The JSON type of a value, as Go's encoder would have chosen it. */
function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v; // string | number | boolean | object
}

/**
 * Differences between the shape of `want` (recorded) and `got` (sandbox): missing and extra keys,
 * and values of another type, with their JSON path. Arrays: every element of each side is compared
 * with the first element of the other side that has the same type (so a list of ten DLQ entries and
 * a list of three compare as "a list of entries"); an empty array matches any array, since how many
 * items a list holds depends on what ran before, not on the contract.
 */
export function shapeDiff(want: unknown, got: unknown, path = '$', out: string[] = []): string[] {
  // User-chosen maps (labels, lock owners, bundles by id, env): their keys are data, not shape.
  if (MAP_FIELDS.test(path) && typeOf(want) === 'object' && typeOf(got) === 'object') return out;
  const tw = typeOf(want);
  const tg = typeOf(got);
  if (tw !== tg) {
    out.push(`${path}: ${tw} in the recording, ${tg} from the sandbox`);
    return out;
  }
  if (tw === 'array') {
    const a = want as unknown[];
    const b = got as unknown[];
    if (a.length === 0 || b.length === 0) return out;
    // Compare representative elements: the union of keys matters, not the count.
    shapeDiff(mergeElements(a), mergeElements(b), `${path}[]`, out);
    return out;
  }
  if (tw === 'object') {
    const a = want as Record<string, unknown>;
    const b = got as Record<string, unknown>;
    for (const k of Object.keys(a)) {
      if (!(k in b)) out.push(`${path}.${k}: missing from the sandbox`);
      else shapeDiff(a[k], b[k], `${path}.${k}`, out);
    }
    for (const k of Object.keys(b)) if (!(k in a)) out.push(`${path}.${k}: only in the sandbox`);
  }
  return out;
}

const MAP_FIELDS = /\.(labels|owners|bundles|env)$/;

/** One representative of a list's elements: objects merged key by key (first value of a key wins). */
function mergeElements(list: unknown[]): unknown {
  const objects = list.filter((x) => typeOf(x) === 'object') as Record<string, unknown>[];
  if (objects.length !== list.length) return list[0];
  const merged: Record<string, unknown> = {};
  for (const o of objects) for (const [k, v] of Object.entries(o)) if (!(k in merged) || merged[k] === null) merged[k] = v;
  return merged;
}

// ---------------------------------------------------------------------------------------------
// Id mapping

const UUID_IN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z-[0-9a-f]{6,}$/;

/** A value a server generated, which a later request may name. */
function looksLikeGeneratedId(v: string): boolean {
  return UUID_IN.test(v) || SNAPSHOT_ID.test(v);
}

export class IdMap {
  private readonly map = new Map<string, string>();

  /** Learn recorded -> sandbox ids from two JSON documents of the same exchange. */
  learn(recorded: unknown, sandbox: unknown): void {
    // Cursors are microsecond timestamps (16 digits) a later request sends back: map those too.
    if (typeof recorded === 'number' && typeof sandbox === 'number') {
      if (recorded !== sandbox && recorded >= 1e15 && !this.map.has(String(recorded))) this.map.set(String(recorded), String(sandbox));
      return;
    }
    if (typeof recorded === 'string' && typeof sandbox === 'string') {
      // Both sides must be ids: a value the sandbox has not produced yet ("" for a result pointer
      // still to come) is not a mapping.
      if (recorded !== sandbox && looksLikeGeneratedId(recorded) && looksLikeGeneratedId(sandbox) && !this.map.has(recorded)) this.map.set(recorded, sandbox);
      return;
    }
    if (Array.isArray(recorded) && Array.isArray(sandbox)) {
      recorded.forEach((r, i) => i < sandbox.length && this.learn(r, sandbox[i]));
      return;
    }
    if (recorded && sandbox && typeof recorded === 'object' && typeof sandbox === 'object') {
      const s = sandbox as Record<string, unknown>;
      for (const [k, v] of Object.entries(recorded as Record<string, unknown>)) if (k in s) this.learn(v, s[k]);
    }
  }

  get size(): number {
    return this.map.size;
  }

  /** A recorded id the map knows. */
  has(recorded: string): boolean {
    return this.map.has(recorded);
  }

  /** The recorded id for an id the sandbox made (ids derived from one, like `<run>:work@1`, included). */
  recordedFor(sandboxId: string): string {
    let out = sandboxId;
    for (const [from, to] of [...this.map].sort((a, b) => b[1].length - a[1].length)) if (out.includes(to)) out = out.split(to).join(from);
    return out;
  }

  /** Replace every known recorded id (raw and percent-encoded) by the sandbox's; longest first. */
  apply(text: string): string {
    if (!this.map.size) return text;
    let out = text;
    for (const [from, to] of [...this.map].sort((a, b) => b[0].length - a[0].length)) {
      if (out.includes(from)) out = out.split(from).join(to);
      const enc = encodeURIComponent(from);
      if (enc !== from && out.includes(enc)) out = out.split(enc).join(encodeURIComponent(to));
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Replay

export interface ReplayTarget {
  baseUrl: string;
  apiKey: string;
}

export interface ExchangeResult {
  seq: number;
  method: string;
  url: string;
  /** Empty when the answer matches. */
  problems: string[];
}

export interface ReplayReport {
  compared: number;
  matches: number;
  /** GETs that matched only when read again after a pause (the sandbox reached the state late). */
  settled: number;
  skipped: Record<SkipReason, number>;
  mismatches: ExchangeResult[];
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** Content type as compared: lower case, no spaces; absent stays absent. */
function normalisedContentType(v: string | undefined): string {
  return (v ?? '(none)').toLowerCase().replace(/\s+/g, '');
}

export interface ReplayOptions {
  /** Longest pause kept from the recording between two exchanges (the sandbox's async work needs a moment; the real pauses add up to minutes). */
  maxGapMs?: number;
  /** Per-request deadline. */
  timeoutMs?: number;
  /**
   * The recorded gateway's limiter (API_RATE_LIMIT_RPS / _BURST). The recording was not rate
   * limited except where it says 429, so the replay, which shortens long pauses, paces itself to
   * stay inside the same bucket rather than provoke 429s the recording never saw.
   */
  rateLimit?: { rps: number; burst: number };
  /** Shared with helpers that need the id mapping while the replay runs (the replay's workers). */
  ids?: IdMap;
  /** Runs before each replayed exchange (e.g. to start workers once the ids they need are known). */
  beforeExchange?: () => Promise<void>;
  /** A GET whose answer differs is read again after this pause, at most settleRetries times. */
  settleMs?: number;
  settleRetries?: number;
  /** Updated with the seq of the exchange about to be sent, before the pause that precedes it. */
  progress?: { next: number };
}

/** Client-side token bucket: waits until a request fits, keeping a small reserve. */
function pacer(limit: { rps: number; burst: number } | undefined): () => Promise<void> {
  if (!limit) return async () => {};
  const reserve = Math.min(10, limit.burst / 4);
  let tokens = limit.burst;
  let last = performance.now();
  return async () => {
    for (;;) {
      const now = performance.now();
      tokens = Math.min(limit.burst, tokens + ((now - last) / 1000) * limit.rps);
      last = now;
      if (tokens >= reserve + 1) {
        tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((reserve + 1 - tokens) / limit.rps) * 1000)));
    }
  };
}

export async function replay(exchanges: RecordedExchange[], target: ReplayTarget, opts: ReplayOptions = {}): Promise<ReplayReport> {
  const maxGap = opts.maxGapMs ?? 300;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ids = opts.ids ?? new IdMap();
  const settleMs = opts.settleMs ?? 250;
  const settleRetries = opts.settleRetries ?? 2;
  const report: ReplayReport = { compared: 0, matches: 0, settled: 0, skipped: { 'phase-marker': 0, websocket: 0, 'rate-limited-in-recording': 0, 'request-body-cut': 0 }, mismatches: [] };
  const pace = pacer(opts.rateLimit);
  let lastMs: number | undefined;
  for (const x of exchanges) {
    const why = skipReason(x);
    if (why) {
      report.skipped[why]++;
      continue;
    }
    if (opts.progress) opts.progress.next = x.seq;
    if (lastMs !== undefined) {
      const gap = Math.min(Math.max(x.ms - lastMs, 0), maxGap);
      if (gap > 0) await new Promise((r) => setTimeout(r, gap));
    }
    lastMs = x.ms;
    await opts.beforeExchange?.();
    await pace();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(x.req_headers ?? {})) headers[k] = v.split('<api-key>').join(target.apiKey);
    const url = ids.apply(x.url);
    const body = x.req_body == null ? undefined : ids.apply(x.req_body);
    const send = async () => {
      const res = await request(target.baseUrl + url, { method: x.method as 'GET', headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      const text = await res.body.text();
      const ct = res.headers['content-type'];
      return { status: res.statusCode, contentType: Array.isArray(ct) ? ct.join(', ') : ct, body: text };
    };
    let problems = compareExchange(x, await send(), ids);
    // A GET only reads: when its answer differs, the sandbox may just be slower than the real
    // services on a loaded machine (state not reached yet). It is read again after a pause; a
    // difference in shape stays a difference, only a late state is forgiven (and counted).
    for (let i = 0; problems.length && x.method === 'GET' && i < settleRetries; i++) {
      await new Promise((r) => setTimeout(r, settleMs));
      problems = compareExchange(x, await send(), ids);
      if (!problems.length) report.settled++;
    }
    report.compared++;
    if (problems.length) report.mismatches.push({ seq: x.seq, method: x.method, url: x.url, problems });
    else report.matches++;
  }
  return report;
}

/** Compare one answer with the recording; learns ids from JSON bodies on the way. */
export function compareExchange(x: RecordedExchange, got: { status: number; contentType: string | undefined; body: string }, ids: IdMap): string[] {
  const problems: string[] = [];
  if (got.status !== x.status) problems.push(`status ${x.status} in the recording, ${got.status} from the sandbox`);
  const wantCt = normalisedContentType(x.res_headers?.['content-type']);
  const gotCt = normalisedContentType(got.contentType);
  if (wantCt !== gotCt) problems.push(`content type ${wantCt} in the recording, ${gotCt} from the sandbox`);
  const recordedBody = x.res_body ?? '';
  // The recorder kept the first 64 KiB; a cut body cannot be parsed, so only complete ones count.
  const complete = (x.res_bytes ?? recordedBody.length) <= Buffer.byteLength(recordedBody);
  const want = complete ? parseJson(recordedBody) : { ok: false as const };
  if (want.ok && want.value !== null && typeof want.value === 'object') {
    const mine = parseJson(got.body);
    if (!mine.ok) problems.push(`JSON in the recording, not JSON from the sandbox: ${JSON.stringify(got.body.slice(0, 120))}`);
    else {
      ids.learn(want.value, mine.value);
      problems.push(...shapeDiff(want.value, mine.value));
    }
  } else if ((x.status ?? 0) >= 400 && wantCt.startsWith('text/plain')) {
    // Plain-text errors are part of the contract (runbooks quote them); ids inside are mapped.
    const expected = ids.apply(recordedBody);
    if (got.body !== expected) problems.push(`error body ${JSON.stringify(expected)} in the recording, ${JSON.stringify(got.body)} from the sandbox`);
  }
  return problems;
}
