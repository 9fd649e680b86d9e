// Reading files the user names (profiles, waiver and case files, manifests, report folders,
// archives): the type is checked before anything is opened for reading, and the size is capped
// while reading. A FIFO would block forever, /dev/zero never ends, a directory or a device is a
// typo, and /proc/self/environ is a "regular" file that reports 0 bytes and holds the
// environment: each is refused with one line naming the file and the problem, never its content.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { ConfigError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export interface UserFileOptions {
  /** What the file is, for messages: "target profile", "waiver file". */
  what: string;
  /** Larger files are refused. */
  maxBytes: number;
  /** How to name the file in messages (default: the path as given). */
  display?: string;
}

export type PathKind = 'file' | 'dir';

/** Open without blocking on a FIFO (the type check refuses it right after). */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** What a non-regular file is, in words, or undefined for a regular file or a directory. */
function special(st: Stats): string | undefined {
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice()) return 'a character device (like /dev/zero)';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (!st.isFile() && !st.isDirectory()) return 'not a regular file';
  return undefined;
}

function fail(display: string, what: string, problem: string): ConfigError {
  return new ConfigError(`${display}: ${what} ${problem}`);
}

function openError(err: unknown, display: string, what: string): ConfigError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return fail(display, what, 'does not exist');
  if (code === 'ENOTDIR') return fail(display, what, 'does not exist (a part of the path is not a folder)');
  if (code === 'EACCES' || code === 'EPERM') return fail(display, what, 'cannot be read (permission denied)');
  if (code === 'ELOOP') return fail(display, what, 'is a symbolic link loop');
  return fail(display, what, `cannot be read (${code ?? (err as Error).message})`);
}

function tooBig(display: string, what: string, size: number | string, max: number): ConfigError {
  return fail(display, what, `is ${size} bytes; at most ${formatBytes(max)} is accepted`);
}

export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} bytes`;
}

/**
 * Check that a path the user named exists and is of an accepted kind; returns which. Never opens it,
 * so a FIFO or a device with side effects on open is refused untouched.
 */
export function checkUserPath(path: string, opts: { what: string; kinds: readonly PathKind[]; display?: string }): PathKind {
  const display = opts.display ?? path;
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    throw openError(err, display, opts.what);
  }
  const other = special(st);
  if (other) throw fail(display, opts.what, `is ${other}, expected ${expectedKinds(opts.kinds)}`);
  const kind: PathKind = st.isDirectory() ? 'dir' : 'file';
  if (!opts.kinds.includes(kind)) throw fail(display, opts.what, `is a ${kind === 'dir' ? 'directory' : 'file'}, expected ${expectedKinds(opts.kinds)}`);
  return kind;
}

function expectedKinds(kinds: readonly PathKind[]): string {
  return kinds.map((k) => (k === 'dir' ? 'a directory' : 'a regular file')).join(' or ');
}

/** Read a user-named file as bytes: a regular file of at most maxBytes, else a one-line ConfigError. */
export function readUserFileBytes(path: string, opts: UserFileOptions): Buffer {
  const display = opts.display ?? path;
  checkUserPath(path, { what: opts.what, kinds: ['file'], display });
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(err, display, opts.what);
  }
  try {
    const st = fstatSync(fd);
    checkOpened(st, display, opts);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * KiB, opts.maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > opts.maxBytes) throw overCap(st, display, opts);
    }
    checkRead(st, total, display, opts);
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** Read a user-named file as UTF-8 text (see readUserFileBytes). */
export function readUserFile(path: string, opts: UserFileOptions): string {
  return readUserFileBytes(path, opts).toString('utf8');
}

/** The async form of readUserFileBytes, for code that must not block the event loop. */
export async function readUserFileBytesAsync(path: string, opts: UserFileOptions): Promise<Buffer> {
  const display = opts.display ?? path;
  checkUserPath(path, { what: opts.what, kinds: ['file'], display });
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(err, display, opts.what);
  }
  try {
    const st = await handle.stat();
    checkOpened(st, display, opts);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(MiB, opts.maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > opts.maxBytes) throw overCap(st, display, opts);
    }
    checkRead(st, total, display, opts);
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

export async function readUserFileAsync(path: string, opts: UserFileOptions): Promise<string> {
  return (await readUserFileBytesAsync(path, opts)).toString('utf8');
}

/** The path may have been swapped between stat and open: check what was actually opened. */
function checkOpened(st: Stats, display: string, opts: UserFileOptions): void {
  const other = special(st);
  if (other) throw fail(display, opts.what, `is ${other}, expected a regular file`);
  if (st.isDirectory()) throw fail(display, opts.what, 'is a directory, expected a regular file');
  if (st.size > opts.maxBytes) throw tooBig(display, opts.what, st.size, opts.maxBytes);
}

/** Read past the cap: a pseudo-file that never ends (or grew while read) is named as what it is. */
function overCap(st: Stats, display: string, opts: UserFileOptions): ConfigError {
  if (st.size === 0) return pseudoFile(display, opts);
  return tooBig(display, opts.what, `over ${opts.maxBytes}`, opts.maxBytes);
}

function pseudoFile(display: string, opts: UserFileOptions): ConfigError {
  return fail(display, opts.what, 'is a pseudo-file (it reports 0 bytes but has content, like the files under /proc), expected a regular file');
}

/** /proc and /sys files report size 0 but have content: they are not files a user hands us. */
function checkRead(st: Stats, total: number, display: string, opts: UserFileOptions): void {
  if (st.size === 0 && total > 0) throw pseudoFile(display, opts);
}

/** The TLS files a profile section names (`ca_file`, `cert_file`, `key_file`), read bounded. */
export interface TlsFileRefs {
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
}

/**
 * Read a profile section's TLS material. `section` names it in messages, e.g. "targets/x.yaml: gateway.tls".
 * A PEM bundle is small; 1 MiB is generous.
 */
export function readTlsFiles(t: TlsFileRefs | undefined, section: string): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (field: keyof TlsFileRefs) => {
    const f = t?.[field];
    return f ? readUserFileBytes(f, { what: `TLS file ${f}`, maxBytes: MiB, display: `${section}.${field}` }) : undefined;
  };
  return { ca: read('ca_file'), cert: read('cert_file'), key: read('key_file') };
}
