// The fault suite's secret scan: is a secret anywhere in a text, in any encoding a server or a
// library produces? Written independently of helpers/redact.ts (forms are enumerated and base64 is
// decoded, not matched by pattern), so the product is not checked against itself.
//   raw; JSON-escaped (also twice, as inside an error message inside summary.json); Go's HTML-safe
//   escapes (\u003c \u003e \u0026); every character \uXXXX; percent-encoding (encodeURIComponent and
//   Go's QueryEscape) in upper and lower case; hex in both cases; HTML/XML entities; and
//   base64/base64url: every run of base64 characters in the text is decoded at each of the four
//   alignments (also after undoing percent-encoding and \/ escapes) and the decoded text is scanned for the forms above and the secret's own base64
//   (so base64 of any window containing the secret is found: a JSON blob, `user:key` Basic auth).

/** Every fixed textual encoding of the secret the scan looks for, by name. */
export function secretForms(secret: string): [string, string][] {
  const json = JSON.stringify(secret).slice(1, -1);
  const goJson = json.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  // One \uXXXX per UTF-16 unit (a character outside the BMP is a surrogate pair).
  const allUnicode = Array.from({ length: secret.length }, (_, i) => `\\u${secret.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
  const bytes = [...Buffer.from(secret, 'utf8')];
  const queryEscape = bytes.map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  const lowerPct = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  const hex = Buffer.from(secret, 'utf8').toString('hex');
  const markup = secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const html = markup.replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  const forms: [string, string][] = [
    ['raw', secret],
    ['json', json],
    ['json-in-json', JSON.stringify(json).slice(1, -1)],
    ['go-html-safe json', goJson],
    ['go-html-safe json in json', JSON.stringify(goJson).slice(1, -1)],
    ['\\u escapes (lower)', allUnicode],
    ['\\u escapes (upper)', allUnicode.replace(/\\u([0-9a-f]{4})/g, (_m, h: string) => `\\u${h.toUpperCase()}`)],
    ['encodeURIComponent', encodeURIComponent(secret)],
    ['encodeURIComponent (lower hex)', lowerPct(encodeURIComponent(secret))],
    ['percent (QueryEscape)', queryEscape],
    ['percent (QueryEscape, lower hex)', lowerPct(queryEscape)],
    ['hex (lower)', hex],
    ['hex (upper)', hex.toUpperCase()],
    ['html entities', html],
    ['html entities (quotes as they are)', markup],
  ];
  return forms.filter(([, text]) => text.length > 0);
}

/** Tolerant decoders, one per character-wise encoding. */
const UNDO: [string, (t: string) => string][] = [
  ['html/xml entities', (t) => t.replace(/&(?:#(\d+)|#[xX]([0-9a-fA-F]+)|(lt|gt|amp|quot|apos));/g, (m, dec?: string, hex?: string, named?: string) => {
    if (named) return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[named]!;
    const cp = dec ? Number(dec) : parseInt(hex!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
  })],
  ['percent-encoding', (t) => t.replace(/(?:%[0-9a-fA-F]{2})+/g, (m) => Buffer.from(m.replace(/%/g, ''), 'hex').toString('utf8'))],
  ['backslash escapes', (t) => t.replace(/\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\(["\\/'])/g, (_m, u?: string, x?: string, c?: string) => (u ? String.fromCharCode(parseInt(u, 16)) : x ? String.fromCharCode(parseInt(x, 16)) : c!))],
];

const BASE64_RUN = /[A-Za-z0-9+/_-]{8,}={0,2}/g;

/** The name of the first encoding in which the secret occurs in the text, or undefined. */
export function findSecret(text: string, secret: string): string | undefined {
  const forms = secretForms(secret);
  // Inside a decoded run: the forms above, and the secret's own base64 (base64 inside base64).
  const inner: [string, string][] = [
    ...forms,
    ['base64', Buffer.from(secret).toString('base64').replace(/=+$/, '')],
    ['base64url', Buffer.from(secret).toString('base64url')],
  ];
  for (const [name, form] of forms) if (text.includes(form)) return name;
  // Mixed or partial escaping (only some characters encoded, other quote styles): undo each
  // character-wise encoding over the whole text and look for the secret as it is.
  for (const [name, undo] of UNDO) {
    const plain = undo(text);
    if (plain !== text && plain.includes(secret)) return name;
  }
  // A run shorter than this cannot hold the secret's base64.
  const shortest = Math.floor((Buffer.byteLength(secret) * 4) / 3);
  // base64 inside a URL is percent-encoded (%2B %2F %3D), inside some JSON its slashes are escaped.
  const unescaped = text.replace(/%2[Bb]/g, '+').replace(/%2[Ff]/g, '/').replace(/%3[Dd]/g, '=').replace(/\\\//g, '/');
  const runs = [...(text.match(BASE64_RUN) ?? []), ...(unescaped === text ? [] : (unescaped.match(BASE64_RUN) ?? []))];
  for (const run of runs) {
    if (run.length < shortest) continue;
    for (let k = 0; k < 4; k++) {
      const decoded = Buffer.from(k ? run.slice(k) : run, 'base64').toString('utf8');
      for (const [name, form] of inner) if (decoded.includes(form)) return `base64 of a value holding it (${name})`;
    }
  }
  return undefined;
}
