// The gateway's route-module seam: each group of routes is a module that registers handlers.
// Implemented by sandbox/gateway/http.ts (router, middleware, error format).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { SandboxDeps } from '../types.js';

/** A handler error that becomes Go-style `http.Error`: plain text body + "\n". */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface GatewayRequest {
  method: string;
  /** Decoded path. */
  path: string;
  /** Decoded wildcard values, e.g. {id} in /api/v1/jobs/{id}. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** X-Principal-Id header (trimmed), if any. */
  principalId?: string;
  /** X-Principal-Role header, lower-cased, secops/operator mapped to admin. */
  principalRole?: string;
  rawBody(): Promise<Buffer>;
  /** The Node request (the WebSocket route takes the connection over from it). */
  raw?: IncomingMessage;
  /**
   * Decode JSON like Go's encoding/json: unknown fields ignored; malformed -> HttpError(400, errorText ?? 'invalid json').
   * Empty body -> HttpError(400, ...) unless emptyOk, then returns undefined.
   */
  json<T = any>(opts?: { emptyOk?: boolean; errorText?: string; maxBytes?: number }): Promise<T | undefined>;
}

export interface GatewayReply {
  /** JSON body; contentType null = set no Content-Type (Go then sniffs text/plain; see api.md §2.5). */
  json(status: number, body: unknown, opts?: { contentType?: string | null }): void;
  text(status: number, body: string): void;
  empty(status: number): void;
}

export type Handler = (req: GatewayRequest, reply: GatewayReply) => Promise<void> | void;

export interface RouteTable {
  /**
   * Go 1.22 ServeMux style pattern, e.g. '/api/v1/jobs/{id}'. The pattern is the metrics `route` label.
   * Method '*' is a pattern without a method (it matches every method, so it never answers 405).
   */
  add(method: 'GET' | 'POST' | 'PUT' | 'DELETE' | '*', pattern: string, handler: Handler): void;
}

/** A group of routes. Tenant is deps.config.tenant. */
export type RouteModule = (routes: RouteTable, deps: SandboxDeps) => void;
