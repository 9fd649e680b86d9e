// Test-time certificates for the TLS sandbox (and the tests): one CA and leaf certificates made
// with the openssl CLI in a private temp dir. Nothing here is ever committed; keys live only in
// that dir, which stop() removes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary } from '../helpers/processes.js';

export interface LeafSpec {
  name: string;
  cn: string;
  /** DNS names and IP addresses. */
  sans: string[];
  /** extendedKeyUsage, e.g. "serverAuth,clientAuth". */
  eku: string;
  days?: number;
}

export interface CertificateSet {
  dir: string;
  ca: string;
  caKey: string;
  /** PEM file paths per leaf name. */
  leaves: Record<string, { cert: string; key: string }>;
  cleanup(): void;
}

export function makeCertificates(leaves: LeafSpec[], opts: { caDays?: number } = {}): CertificateSet {
  const openssl = findBinary('openssl');
  if (!openssl) throw new Error('openssl not found on PATH; install it (apt-get install openssl) to run the TLS sandbox');
  const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-certs-'));
  const run = (args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: 'pipe' });
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    run(['req', '-x509', ...ec, '-subj', '/CN=cordum-runbooks-test-ca', '-days', String(opts.caDays ?? 365), '-keyout', 'ca.key', '-out', 'ca.crt']);
    const out: CertificateSet['leaves'] = {};
    for (const l of leaves) {
      const san = l.sans.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(join(dir, `${l.name}.ext`), `${san ? `subjectAltName=${san}\n` : ''}extendedKeyUsage=${l.eku}\n`);
      run(['req', ...ec, '-subj', `/CN=${l.cn}`, '-keyout', `${l.name}.key`, '-out', `${l.name}.csr`]);
      run(['x509', '-req', '-in', `${l.name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(l.days ?? 90), '-out', `${l.name}.crt`, '-extfile', `${l.name}.ext`]);
      out[l.name] = { cert: join(dir, `${l.name}.crt`), key: join(dir, `${l.name}.key`) };
    }
    return { dir, ca: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), leaves: out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
