// helpers/files.ts (bounded reads of user-named files) and helpers/input.ts (values checked where
// they enter): each refusal is one line naming the file or the option, never the content or value.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, UsageError } from '../../helpers/errors.js';
import { checkUserPath, readUserFile, readUserFileAsync } from '../../helpers/files.js';
import { checkRunInput, checkText, checkTicket } from '../../helpers/input.js';

let dir: string;
let fifo: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'files-test-'));
  fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  writeFileSync(join(dir, 'ok.yaml'), 'a: 1\n');
  writeFileSync(join(dir, 'big.yaml'), 'x'.repeat(2048));
  mkdirSync(join(dir, 'folder'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const opts = { what: 'waiver file', maxBytes: 1024 };

describe('readUserFile', () => {
  it('reads a regular file within the cap, sync and async', async () => {
    expect(readUserFile(join(dir, 'ok.yaml'), opts)).toBe('a: 1\n');
    expect(await readUserFileAsync(join(dir, 'ok.yaml'), opts)).toBe('a: 1\n');
  });

  it('refuses, in one line naming the file: missing, directory, FIFO, device, pseudo-file, too big', async () => {
    const cases: [string, RegExp][] = [
      [join(dir, 'nope.yaml'), /nope\.yaml: waiver file does not exist$/],
      [join(dir, 'folder'), /folder: waiver file is a directory, expected a regular file$/],
      [fifo, /pipe: waiver file is a named pipe \(FIFO\), expected a regular file$/],
      ['/dev/zero', /^\/dev\/zero: waiver file is a character device \(like \/dev\/zero\), expected a regular file$/],
      ['/proc/self/environ', /^\/proc\/self\/environ: waiver file is a pseudo-file \(it reports 0 bytes but has content, like the files under \/proc\), expected a regular file$/],
      [join(dir, 'big.yaml'), /big\.yaml: waiver file is 2048 bytes; at most 1 KiB is accepted$/],
    ];
    for (const [path, message] of cases) {
      expect(() => readUserFile(path, opts), path).toThrow(ConfigError);
      expect(() => readUserFile(path, opts), path).toThrow(message);
      await expect(readUserFileAsync(path, opts), path).rejects.toThrow(message);
    }
  });

  it('checkUserPath accepts the kinds asked for and names the others', () => {
    expect(checkUserPath(join(dir, 'folder'), { what: 'manifests', kinds: ['file', 'dir'] })).toBe('dir');
    expect(() => checkUserPath(join(dir, 'ok.yaml'), { what: 'backup archive', kinds: ['dir'], display: '--archive x' })).toThrow(
      /^--archive x: backup archive is a file, expected a directory$/,
    );
  });
});

describe('input checks', () => {
  it('a ticket id: letters, digits, . _ -; the error says what is wrong without the value', () => {
    for (const ok of ['CHG-1234', 'INC0012345', 'ops_7.2']) expect(checkTicket(ok)).toBe(ok);
    const wrong: [string, string][] = [
      ['CHG-1\n<!channel>', 'got a line break at character 6'],
      ['-CHG', "got '-' at character 1"],
      ['CHG<1>', "got '<' at character 4"],
      ['', 'got an empty value'],
      ['x'.repeat(65), 'got 65 characters'],
      ['CHGé', 'got the non-ASCII character U+00E9 at character 4'],
    ];
    for (const [value, what] of wrong) {
      expect(() => checkTicket(value)).toThrow(UsageError);
      expect(() => checkTicket(value)).toThrow(`--ticket: a change ticket id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. CHG-1234); ${what}`);
    }
  });

  it('free text is one printable line: control characters, separators and bidi overrides are refused', () => {
    expect(checkText('/backups/2026-01-01 (nightly)', '--archive')).toBe('/backups/2026-01-01 (nightly)');
    expect(() => checkText('a\u202eb', '--archive')).toThrow(/^--archive: must be one line of printable text of at most 1024 characters; got the non-ASCII character U\+202E at character 2$/);
    expect(() => checkRunInput({ options: { confirm: 'cordum\nrm' }, env: {} })).toThrow(/^--confirm: .*got a line break at character 7$/);
    expect(() => checkRunInput({ env: { RUNBOOK_OPERATOR: 'ops\u0007' } })).toThrow(/^RUNBOOK_OPERATOR: .*got a control character \(U\+0007\) at character 4$/);
    expect(() => checkRunInput({ ticket: 'CHG-1', options: { 'in-place': true, archive: '/x' }, env: {} })).not.toThrow();
  });
});
