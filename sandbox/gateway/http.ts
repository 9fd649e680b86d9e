// The gateway's HTTP stack in Cordum's order (api.md §2.1):
//   CORS -> rate limit -> API-key auth -> ServeMux-style routing -> instrumented -> handler.
// Errors are Go http.Error: plain text + "\n", text/plain; charset=utf-8, X-Content-Type-Options: nosniff.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normaliseKey } from '../config.js';
import type { Faults, SandboxConfig } from '../types.js';
import type { GatewayMetrics } from './metrics.js';
import { HttpError, type GatewayReply, type GatewayRequest, type Handler, type RouteTable } from './types.js';

const CORS_METHODS = 'GET, POST, DELETE, OPTIONS';
const CORS_HEADERS = 'Content-Type, Authorization, X-API-Key, X-Principal-Id, X-Principal-Role';

/** Go's http.Error. */
export function writeError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.removeHeader('Content-Length');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.statusCode = status;
  res.end(`${message}\n`);
}

/** encoding/json output: HTML-sensitive characters escaped, trailing newline from json.Encoder. */
export function goJson(body: unknown): string {
  const text = JSON.stringify(body === undefined ? null : body)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `${text}\n`;
}

// ---------- CORS ----------

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export function originAllowed(origin: string, hostHeader: string | undefined, allowed: string[] | undefined): boolean {
  if (allowed) return allowed.includes('*') || allowed.includes(origin);
  let hostname: string;
  try {
    hostname = new URL(origin).hostname;
  } catch {
    return false;
  }
  if (LOCAL_HOSTS.has(hostname)) return true;
  if (!hostHeader) return false;
  let reqHost: string;
  try {
    reqHost = new URL(`http://${hostHeader}`).hostname;
  } catch {
    return false;
  }
  return hostname === reqHost;
}

// ---------- WebSocket subprotocol auth ----------

export const STREAM_PATH = '/api/v1/stream';
export const STREAM_SUBPROTOCOL = 'cordum-api-key';

/** Strict Go-style base64 decoding: undefined unless `text` is valid in that alphabet/padding. */
function strictBase64(text: string, url: boolean): string | undefined {
  const ok = url ? /^[A-Za-z0-9_-]*$/.test(text) && text.length % 4 !== 1 : /^[A-Za-z0-9+/]*={0,2}$/.test(text) && text.length % 4 === 0;
  if (!ok || !text) return undefined;
  const bytes = Buffer.from(text, url ? 'base64url' : 'base64');
  const decoded = bytes.toString('utf8');
  return Buffer.from(decoded, 'utf8').equals(bytes) ? decoded : undefined;
}

/**
 * Keys a browser may send as `Sec-WebSocket-Protocol: cordum-api-key, <token>` (or one
 * `cordum-api-key.<token>` entry): the token read as base64url, then standard base64, then raw.
 */
export function subprotocolKeyCandidates(headerValue: string | undefined): string[] {
  const entries = (headerValue ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const tokens: string[] = [];
  if (entries.includes(STREAM_SUBPROTOCOL)) tokens.push(...entries.filter((e) => e !== STREAM_SUBPROTOCOL));
  for (const e of entries) if (e.startsWith(`${STREAM_SUBPROTOCOL}.`)) tokens.push(e.slice(STREAM_SUBPROTOCOL.length + 1));
  const out: string[] = [];
  for (const t of tokens) {
    for (const k of [strictBase64(t, true), strictBase64(t, false), t]) {
      const key = normaliseKey(k);
      if (key && !out.includes(key)) out.push(key);
    }
  }
  return out;
}

// ---------- rate limiter ----------

/** One process-wide token bucket: starts full at `burst`, one token per 1s/rps (computed lazily). */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly intervalMs: number;
  constructor(
    private readonly burst: number,
    rps: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.intervalMs = 1000 / rps;
    this.last = now();
  }
  take(): boolean {
    const t = this.now();
    const add = Math.floor((t - this.last) / this.intervalMs);
    if (add > 0) {
      this.tokens = Math.min(this.burst, this.tokens + add);
      this.last = this.tokens >= this.burst ? t : this.last + add * this.intervalMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

// ---------- ServeMux-style routing ----------

interface Route {
  method: string;
  pattern: string;
  segments: { literal?: string; wildcard?: string }[];
  handler: Handler;
}

/** A path needs the ServeMux redirect when its escaped form has empty, "." or ".." segments. */
export function cleanPath(escapedPath: string): string {
  const out: string[] = [];
  for (const seg of escapedPath.split('/').slice(1)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  let p = `/${out.join('/')}`;
  // Keep a trailing slash like Go's cleanPath does.
  if (escapedPath.length > 1 && escapedPath.endsWith('/') && p !== '/') p += '/';
  return p;
}

function safeDecode(seg: string): string | undefined {
  try {
    return decodeURIComponent(seg);
  } catch {
    return undefined;
  }
}

export class Router implements RouteTable {
  private readonly routes: Route[] = [];

  add(method: 'GET' | 'POST' | 'PUT' | 'DELETE' | '*', pattern: string, handler: Handler): void {
    const segments = pattern
      .split('/')
      .slice(1)
      .map((s) => {
        const m = /^\{([^}]+)\}$/.exec(s);
        return m ? { wildcard: m[1] } : { literal: s };
      });
    if (this.routes.some((r) => r.method === method && r.pattern === pattern)) throw new Error(`route registered twice: ${method} ${pattern}`);
    this.routes.push({ method, pattern, segments, handler });
  }

  /** Match an escaped path: {route, params} / {allow} for 405 / null for 404. */
  match(method: string, escapedPath: string): { route: Route; params: Record<string, string> } | { allow: string[] } | null {
    const raw = escapedPath.split('/').slice(1);
    const decoded = raw.map(safeDecode);
    const candidates: { route: Route; params: Record<string, string> }[] = [];
    for (const route of this.routes) {
      if (route.segments.length !== raw.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < raw.length && ok; i++) {
        const seg = route.segments[i];
        const value = decoded[i];
        if (value === undefined) ok = false;
        else if (seg.wildcard !== undefined) {
          if (raw[i] === '') ok = false;
          else params[seg.wildcard] = value;
        } else if (seg.literal !== value) ok = false;
      }
      if (ok) candidates.push({ route, params });
    }
    if (!candidates.length) return null;
    const methodMatches = candidates.filter((c) => c.route.method === method || c.route.method === '*' || (method === 'HEAD' && c.route.method === 'GET'));
    if (!methodMatches.length) {
      const allow = new Set<string>();
      for (const c of candidates) {
        allow.add(c.route.method);
        if (c.route.method === 'GET') allow.add('HEAD');
      }
      return { allow: [...allow].sort() };
    }
    // Most specific wins: compare segment by segment, a literal beats a wildcard.
    methodMatches.sort((a, b) => {
      for (let i = 0; i < a.route.segments.length; i++) {
        const la = a.route.segments[i].literal !== undefined ? 1 : 0;
        const lb = b.route.segments[i].literal !== undefined ? 1 : 0;
        if (la !== lb) return lb - la;
      }
      return 0;
    });
    return methodMatches[0];
  }
}

// ---------- request/reply adapters ----------

function principalRole(raw: string | string[] | undefined): string | undefined {
  const v = (Array.isArray(raw) ? raw[0] : raw)?.trim().toLowerCase();
  if (!v) return undefined;
  return v === 'secops' || v === 'operator' ? 'admin' : v;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function makeRequest(req: IncomingMessage, path: string, params: Record<string, string>, query: URLSearchParams): GatewayRequest {
  let body: Promise<Buffer> | undefined;
  const rawBody = () =>
    (body ??= new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    }));
  const principalId = header(req, 'x-principal-id')?.trim() || undefined;
  return {
    method: req.method ?? 'GET',
    path,
    params,
    query,
    headers: req.headers,
    principalId,
    principalRole: principalRole(req.headers['x-principal-role']),
    rawBody,
    raw: req,
    async json<T>(opts: { emptyOk?: boolean; errorText?: string; maxBytes?: number } = {}) {
      const errorText = opts.errorText ?? 'invalid json';
      const buf = await rawBody();
      if (opts.maxBytes !== undefined && buf.length > opts.maxBytes) throw new HttpError(400, errorText);
      const text = buf.toString('utf8');
      if (!text.trim()) {
        if (opts.emptyOk) return undefined;
        throw new HttpError(400, errorText);
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new HttpError(400, errorText);
      }
    },
  };
}

function makeReply(res: ServerResponse): GatewayReply {
  return {
    json(status, body, opts) {
      // No content type set: Go sniffs the JSON text as text/plain (api.md §2.5).
      res.setHeader('Content-Type', opts?.contentType === null ? 'text/plain; charset=utf-8' : (opts?.contentType ?? 'application/json'));
      res.statusCode = status;
      res.end(goJson(body));
    },
    text(status, body) {
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.statusCode = status;
      res.end(body);
    },
    empty(status) {
      res.statusCode = status;
      res.end();
    },
  };
}

// ---------- the stack ----------

export interface HttpStackOptions {
  config: Pick<SandboxConfig, 'apiKeys' | 'rateLimit' | 'allowedOrigins'>;
  faults: Faults;
  metrics?: GatewayMetrics;
  router: Router;
  log?: (msg: string) => void;
  /** Patterns that are not instrumented (Cordum: /health). */
  uninstrumented?: string[];
}

export function createHttpHandler(opts: HttpStackOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const bucket = new TokenBucket(opts.config.rateLimit.burst, opts.config.rateLimit.rps);
  const keys = new Set(opts.config.apiKeys);
  const uninstrumented = new Set(opts.uninstrumented ?? ['/health']);
  const log = opts.log ?? (() => {});

  return (req, res) => {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const qIdx = rawUrl.indexOf('?');
    const escapedPath = qIdx >= 0 ? rawUrl.slice(0, qIdx) : rawUrl;
    const rawQuery = qIdx >= 0 ? rawUrl.slice(qIdx + 1) : '';
    const isApi = escapedPath.startsWith('/api/');

    // 1. CORS
    res.setHeader('Access-Control-Allow-Methods', CORS_METHODS);
    res.setHeader('Access-Control-Allow-Headers', CORS_HEADERS);
    const origin = header(req, 'origin');
    if (origin) {
      if (!originAllowed(origin, header(req, 'host'), opts.config.allowedOrigins)) return writeError(res, 403, 'origin not allowed');
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    if (method === 'OPTIONS') {
      res.statusCode = 204;
      return void res.end();
    }

    // 2. rate limit: /api/ only, one shared bucket
    if (isApi && !opts.faults.has('rate-limit-off') && !bucket.take()) return writeError(res, 429, 'rate limited');

    // 3. API-key auth on /api/ when keys are configured (the stream also takes the key as a subprotocol)
    if (isApi && keys.size > 0) {
      const key = normaliseKey(header(req, 'x-api-key'));
      const candidates = key ? [key] : escapedPath === STREAM_PATH ? subprotocolKeyCandidates(header(req, 'sec-websocket-protocol')) : [];
      if (!candidates.some((k) => keys.has(k))) return writeError(res, 401, 'unauthorized');
    }

    // 4. ServeMux: clean-path redirect, then method+pattern match
    const cleaned = cleanPath(escapedPath);
    if (cleaned !== escapedPath) {
      const location = cleaned + (rawQuery ? `?${rawQuery}` : '');
      res.setHeader('Location', location);
      // 307 as a gateway built with a current Go answers (recorded); older Go releases said 301.
      if (method === 'GET' || method === 'HEAD') {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.statusCode = 307;
        return void res.end(`<a href="${location}">Temporary Redirect</a>.\n\n`);
      }
      res.statusCode = 307;
      return void res.end();
    }
    const found = opts.router.match(method, escapedPath);
    if (!found) return writeError(res, 404, '404 page not found');
    if ('allow' in found) {
      res.setHeader('Allow', found.allow.join(', '));
      return writeError(res, 405, 'Method Not Allowed');
    }

    // 5. instrumented handler
    const { route, params } = found;
    const started = performance.now();
    const instrument = opts.metrics && !uninstrumented.has(route.pattern);
    if (instrument) {
      res.once('finish', () => opts.metrics!.observe(method, route.pattern, res.statusCode, (performance.now() - started) / 1000));
    }
    let path = escapedPath;
    try {
      path = decodeURIComponent(escapedPath);
    } catch {
      // keep the escaped form
    }
    const greq = makeRequest(req, path, params, new URLSearchParams(rawQuery));
    const reply = makeReply(res);
    Promise.resolve()
      .then(() => route.handler(greq, reply))
      .catch((err: unknown) => {
        if (err instanceof HttpError) return writeError(res, err.status, err.message);
        log(`${method} ${route.pattern}: ${(err as Error)?.stack ?? String(err)}`);
        writeError(res, 500, (err as Error)?.message ?? 'internal error');
      })
      .finally(() => {
        // Drain an unread body so keep-alive connections stay usable.
        if (!req.complete) req.resume();
      });
  };
}

// ---------- helpers shared by route modules ----------

/** Empty means the server tenant; anything else must equal it (403 `tenant access denied`). */
export function resolveTenant(serverTenant: string, value: unknown): string {
  const v = typeof value === 'string' ? value.trim() : '';
  if (v && v !== serverTenant) throw new HttpError(403, 'tenant access denied');
  return serverTenant;
}

/** Integer query parameter; missing, malformed or non-positive -> fallback. */
export function intQuery(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null || !/^-?\d+$/.test(raw.trim())) return fallback;
  const n = Number(raw.trim());
  return n > 0 ? n : fallback;
}

/** Seconds / milliseconds / nanoseconds normalised to microseconds by magnitude. */
export function toMicros(n: number): number {
  if (n <= 0) return n;
  if (n < 1e11) return Math.floor(n * 1e6); // seconds
  if (n < 1e14) return Math.floor(n * 1e3); // milliseconds
  if (n < 1e17) return Math.floor(n); // microseconds
  return Math.floor(n / 1e3); // nanoseconds
}

/** A timestamp query value (number in any unit, or RFC3339) as microseconds; undefined when absent/invalid. */
export function timeQueryMicros(raw: string | null): number | undefined {
  if (raw === null || raw.trim() === '') return undefined;
  const t = raw.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return toMicros(Number(t));
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms * 1000;
}

/** Body field type checks that mimic encoding/json's "wrong type -> decode error -> 400". */
export const expect = {
  str(body: Record<string, unknown>, name: string, err = 'invalid json'): string {
    const v = body[name];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new HttpError(400, err);
    return v;
  },
  num(body: Record<string, unknown>, name: string, err = 'invalid json'): number | undefined {
    const v = body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new HttpError(400, err);
    return v;
  },
  bool(body: Record<string, unknown>, name: string, err = 'invalid json'): boolean {
    const v = body[name];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new HttpError(400, err);
    return v;
  },
  strList(body: Record<string, unknown>, name: string, err = 'invalid json'): string[] {
    const v = body[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new HttpError(400, err);
    return v as string[];
  },
  strMap(body: Record<string, unknown>, name: string, err = 'invalid json'): Record<string, string> {
    const v = body[name];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new HttpError(400, err);
    return { ...(v as Record<string, string>) };
  },
  object(value: unknown, err = 'invalid json'): Record<string, unknown> {
    if (value === null || value === undefined) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, err);
    return value as Record<string, unknown>;
  },
};
