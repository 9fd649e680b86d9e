import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleCommand } from '../../cli/commands/bundle.js';
import { verifyBundleCommand } from '../../cli/commands/verify-bundle.js';
import { EXIT, UsageError } from '../../helpers/errors.js';
import { BundleIntegrityError, createBundle } from '../../helpers/ticket/bundle.js';
import { packTarGz, unpackTarGz, type TarEntry } from '../../helpers/ticket/tar.js';
import { verifyBundle } from '../../helpers/ticket/verify-bundle.js';
import { makeReport, makeSummary } from './report-fixture.js';

const quiet = { log: () => undefined };

function hasBinary(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Rewrite an archive's entries (to simulate tampering after the bundle left our hands). */
async function rewrite(archive: string, change: (entries: TarEntry[]) => TarEntry[]): Promise<string> {
  const entries = unpackTarGz(await readFile(archive)).map((e) =>
    e.type === 'directory' ? { path: e.path } : { path: e.path, data: e.data },
  );
  const out = join(await mkdtemp(join(tmpdir(), 'tampered-')), basename(archive));
  await writeFile(out, packTarGz(change(entries)));
  return out;
}

describe('bundle', () => {
  it('packs the report files and a manifest of exactly those files, named after the ticket', async () => {
    const { dir, parent, runId } = await makeReport();
    const { archive } = await bundleCommand(dir, { ticket: 'CHG-1234', ...quiet });
    expect(archive).toBe(join(parent, `CHG-1234-${runId}.tar.gz`));

    const entries = unpackTarGz(await readFile(archive));
    expect(entries.filter((e) => e.type === 'file').map((e) => e.path)).toEqual([
      `${runId}/index.html`,
      `${runId}/summary.json`,
      `${runId}/summary.md`,
      `${runId}/junit.xml`,
      `${runId}/manifest.sha256`,
    ]);
    // The bundle manifest reuses the run's own lines: same hashes the run recorded.
    const runManifest = (await readFile(join(dir, 'manifest.sha256'), 'utf8')).split('\n');
    const bundleManifest = entries.find((e) => e.path.endsWith('manifest.sha256'))!.data.toString('utf8');
    for (const line of bundleManifest.trim().split('\n')) expect(runManifest).toContain(line);
    expect(bundleManifest).not.toContain('allure-results');

    expect(await verifyBundleCommand(archive, quiet)).toEqual({ ok: true, problems: [] });
  });

  it('bundle and verify-bundle count the same files (the manifest apart)', async () => {
    const { dir } = await makeReport();
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const { archive } = await bundleCommand(dir, { log });
    await verifyBundleCommand(archive, { log });
    expect(lines[0]).toMatch(/\(4 files and their manifest\.sha256, verified\)$/);
    expect(lines[1]).toMatch(/^verify-bundle: OK, 4 files match /);
  });

  it('takes the ticket from summary.json, includes SARIF when present, and is byte-for-byte repeatable', async () => {
    const { dir, runId } = await makeReport({ summary: makeSummary({ ticket: 'OPS-77' }), sarif: true });
    const out = await mkdtemp(join(tmpdir(), 'bundles-'));
    const first = await createBundle(dir, { out });
    expect(first.archive).toBe(join(out, `OPS-77-${runId}.tar.gz`));
    expect(first.files).toContain(`${runId}/readiness.sarif`);
    const bytes = await readFile(first.archive);
    const second = await createBundle(dir, { out: join(out, 'again.tar.gz') });
    expect(await readFile(second.archive)).toEqual(bytes);
  });

  it('refuses to bundle a report whose files no longer match its manifest, naming the file', async () => {
    const { dir } = await makeReport();
    await writeFile(join(dir, 'summary.md'), '# smoke on staging: passed (edited)\n');
    const err = await createBundle(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleIntegrityError);
    expect((err as BundleIntegrityError).exitCode).toBe(EXIT.CHECK_FAILED);
    expect((err as Error).message).toMatch(/summary\.md: content changed/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('bundles a run whose HTML report failed, saying what is absent', async () => {
    const { dir, runId } = await makeReport();
    await rm(join(dir, 'index.html'));
    const manifest = (await readFile(join(dir, 'manifest.sha256'), 'utf8')).split('\n').filter((l) => !l.endsWith('index.html'));
    await writeFile(join(dir, 'manifest.sha256'), manifest.join('\n'));
    const result = await createBundle(dir);
    expect(result.absent).toEqual(['index.html']);
    expect(result.files).not.toContain(`${runId}/index.html`);
    expect((await verifyBundle(result.archive)).ok).toBe(true);
  });

  it('refuses a report with a file missing or a bad ticket id', async () => {
    const { dir } = await makeReport();
    await expect(createBundle(dir, { ticket: '../etc' })).rejects.toBeInstanceOf(UsageError);
    await rm(join(dir, 'junit.xml'));
    await expect(createBundle(dir)).rejects.toThrow(/junit\.xml: listed in manifest\.sha256 but missing/);
    await rm(join(dir, 'summary.md'));
    await writeFile(join(dir, 'manifest.sha256'), '');
    const err = (await createBundle(dir).catch((e: unknown) => e)) as BundleIntegrityError;
    expect(err.problems).toContain('summary.md: missing from the report');
    expect(err.problems).toContain('index.html: present but not listed in manifest.sha256');
    await expect(createBundle(join(dir, 'nope'))).rejects.toBeInstanceOf(UsageError);
  });
});

describe('verify-bundle', () => {
  it('detects a tampered file with one line naming it', async () => {
    const { dir, runId } = await makeReport();
    const { archive } = await createBundle(dir, { ticket: 'CHG-1' });
    const tampered = await rewrite(archive, (entries) =>
      entries.map((e) => (e.path === `${runId}/summary.json` ? { ...e, data: Buffer.from('{"status":"passed"}') } : e)),
    );
    const result = await verifyBundleCommand(tampered, quiet);
    expect(result.ok).toBe(false);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]).toMatch(new RegExp(`^${runId}/summary\\.json: content changed`));
  });

  it('reports listed files that are missing and files that are not listed', async () => {
    const { dir, runId } = await makeReport();
    const { archive } = await createBundle(dir);
    const changed = await rewrite(archive, (entries) => [
      ...entries.filter((e) => e.path !== `${runId}/junit.xml`),
      { path: `${runId}/notes.txt`, data: Buffer.from('added later') },
    ]);
    const { ok, problems } = await verifyBundle(changed);
    expect(ok).toBe(false);
    expect(problems).toEqual([
      `${runId}/junit.xml: listed in manifest.sha256 but missing`,
      `${runId}/notes.txt: in the bundle but not listed in manifest.sha256`,
    ]);
  });

  it('never unpacks links or paths outside the bundle, and reports a corrupt or absent archive', async () => {
    const { dir, runId } = await makeReport();
    const { archive } = await createBundle(dir);
    const escaped = await rewrite(archive, (entries) => [...entries, { path: '../outside.txt', data: Buffer.from('x') }]);
    const result = await verifyBundle(escaped);
    expect(result.problems).toContain('../outside.txt: unsafe path in the archive (not unpacked)');

    const junk = join(await mkdtemp(join(tmpdir(), 'junk-')), 'junk.tar.gz');
    await writeFile(junk, 'this is not gzip');
    const bad = await verifyBundle(junk);
    expect(bad.ok).toBe(false);
    expect(bad.problems[0]).toMatch(/not a readable gzip archive/);

    await expect(verifyBundle(join(dir, 'absent.tar.gz'))).rejects.toBeInstanceOf(UsageError);
    expect(runId).toBeTruthy();
  });

  it.skipIf(!hasBinary('tar') || !hasBinary('sha256sum'))(
    'interoperates with GNU tar and sha256sum in both directions',
    async () => {
      const { dir, runId } = await makeReport();
      const { archive } = await createBundle(dir, { ticket: 'CHG-9' });
      const unpacked = await mkdtemp(join(tmpdir(), 'gnu-unpack-'));
      execFileSync('tar', ['-xzf', archive, '-C', unpacked]);
      // An auditor with only coreutils can check the bundle.
      execFileSync('sha256sum', ['--check', '--quiet', 'manifest.sha256'], { cwd: join(unpacked, runId) });

      // And a bundle re-packed by GNU tar (e.g. after inspection) still verifies with our reader.
      const repacked = join(unpacked, 'repacked.tar.gz');
      execFileSync('tar', ['-czf', repacked, '-C', unpacked, runId]);
      expect(await verifyBundle(repacked)).toMatchObject({ ok: true, problems: [] });
    },
  );
});

describe('CLI wiring (cli/runbook.ts loads cli/commands/<name>.ts)', () => {
  it('bundle and verify-bundle run through the runner with documented exit codes', async () => {
    const { main } = await import('../../cli/runbook.js');
    const { dir, parent, runId } = await makeReport();
    const out = console.log;
    console.log = () => undefined;
    try {
      expect(await main(['bundle', dir, '--ticket', 'CHG-5'])).toBe(EXIT.PASSED);
      const archive = join(parent, `CHG-5-${runId}.tar.gz`);
      expect(await main(['verify-bundle', archive])).toBe(EXIT.PASSED);
      const tampered = await rewrite(archive, (entries) =>
        entries.map((e) => (e.path.endsWith('index.html') ? { ...e, data: Buffer.from('<p>edited</p>') } : e)),
      );
      expect(await main(['verify-bundle', tampered])).toBe(EXIT.CHECK_FAILED);
    } finally {
      console.log = out;
      process.exitCode = undefined;
    }
  });
});
