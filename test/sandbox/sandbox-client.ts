// Small HTTP/NATS helpers for tests that run against a started sandbox.
import { request } from 'undici';
import type { Sandbox } from '../../sandbox/index.js';
import { waitFor } from '../../helpers/waits.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export function client(sb: Sandbox) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const res = await request(`${sb.profile.gateway.url}${path}`, {
      method: method as 'GET',
      headers: { 'X-API-Key': sb.apiKey, ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, text, json };
  };
}

/** Poll `probe` until it returns a value that is not undefined; fails with the last value seen. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    last = v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Poll until ok(value): the project's waitFor at the 25 ms interval these tests use; fails with the last value. */
export function pollUntil<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  return waitFor(what, probe, ok, { timeoutMs, intervalMs: 25 });
}
