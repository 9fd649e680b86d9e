import { afterEach, describe, expect, it } from 'vitest';
import { attachJson, attachText, clearSecrets, redact, registerSecret, transcript } from '../../helpers/evidence.js';

afterEach(() => clearSecrets());

describe('redact', () => {
  it('replaces raw, base64, base64url, URL-encoded and JSON-escaped forms', () => {
    const s = 'p@ss/w0rd+"x"?';
    registerSecret(s);
    const b64 = Buffer.from(s).toString('base64');
    const b64url = Buffer.from(s).toString('base64url');
    const text = [s, b64, b64url, encodeURIComponent(s), JSON.stringify({ k: s })].join(' | ');
    const out = redact(text);
    expect(out).toBe('*** | *** | *** | *** | {"k":"***"}');
  });

  it("finds the secret inside other values: Go's escapes, lower-case percent, hex, base64 of a JSON blob or a Basic header; JSON stays valid", () => {
    const key = 'k3y<&>"\\x';
    registerSecret(key);
    const go = JSON.stringify({ key }).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
    expect(redact(go)).toBe('{"key":"***"}');
    expect(redact(`q=${encodeURIComponent(key).toLowerCase()}&x=1`)).toBe('q=***&x=1');
    expect(redact(Buffer.from(key).toString('hex').toUpperCase())).toBe('***');
    const blob = Buffer.from(JSON.stringify({ auth: { 'x-api-key': key } })).toString('base64');
    expect(Buffer.from(redact(blob), 'base64').toString()).toBe('{"auth":{"x-api-key":"***"}}');
    expect(redact(`Basic ${Buffer.from(`ops:${key}`).toString('base64')}`)).toBe(`Basic ${Buffer.from('ops:***').toString('base64')}`);
    const nested = JSON.stringify({ error: `GET /x → 500 ${JSON.stringify(JSON.stringify({ key, n: 1 }))}` });
    expect(JSON.parse(JSON.parse(JSON.parse(redact(nested)).error.slice('GET /x → 500 '.length)))).toEqual({ key: '***', n: 1 });
  });

  it('finds each character-wise encoding on its own, in text with no other escape (the quick path must not skip it)', () => {
    const plain = 'Zk97_rQoo-5Iqu';
    const spaced = 'open sesame&<7>';
    registerSecret(plain);
    registerSecret(spaced);
    const each = (s: string, f: (ch: string) => string) => [...s].map(f).join('');
    const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
    for (const s of [plain, spaced]) {
      const forms = [
        s,
        each(s, (c) => `\\u${hex(c.charCodeAt(0), 4)}`),
        each(s, (c) => `\\x${hex(c.charCodeAt(0), 2)}`),
        each(s, (c) => `%${hex(c.charCodeAt(0), 2).toUpperCase()}`),
        each(s, (c) => `%25${hex(c.charCodeAt(0), 2)}`),
        each(s, (c) => `&#${c.charCodeAt(0)};`),
        each(s, (c) => `&#x${hex(c.charCodeAt(0), 1)};`),
        each(s, (c) => `&amp;#${c.charCodeAt(0)};`),
        s.replace(/ /g, '+'),
        s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'),
      ];
      for (const form of forms) expect(redact(`before ${form} after`), form).toBe('before *** after');
    }
  });

  it('redacts every registered secret and ignores empty or tiny values', () => {
    registerSecret('alpha-secret');
    registerSecret('beta-secret');
    registerSecret('');
    registerSecret(undefined);
    registerSecret('ab');
    expect(redact('a alpha-secret b beta-secret ab')).toBe('a *** b *** ab');
  });
});

describe('transcript', () => {
  it('renders a readable exchange with pretty JSON and no secrets', () => {
    registerSecret('k3y-value');
    const t = transcript({
      method: 'POST',
      url: 'http://gw/api/v1/jobs',
      requestHeaders: { 'x-api-key': '***', 'content-type': 'application/json' },
      requestBody: '{"prompt":"k3y-value"}',
      status: 400,
      responseHeaders: { 'content-type': 'text/plain; charset=utf-8' },
      responseBody: 'invalid json\n',
      durationMs: 12.3,
    });
    expect(t).toContain('> POST http://gw/api/v1/jobs');
    expect(t).toContain('> x-api-key: ***');
    expect(t).toContain('>   "prompt": "***"');
    expect(t).toContain('< 400 (12 ms)');
    expect(t).toContain('< invalid json');
    expect(t).not.toContain('k3y-value');
  });
});

describe('attachments', () => {
  it('do not throw outside an Allure test runtime', async () => {
    registerSecret('zzz-secret');
    await attachJson('x', { a: 'zzz-secret', b: new Uint8Array([1]), c: 1n });
    await attachText('y', 'zzz-secret');
  });
});
