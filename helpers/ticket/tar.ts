// A small ustar writer and reader over node:zlib. Bundles hold a handful of regular files, so a
// full tar library is not needed; writing our own keeps the output byte-for-byte deterministic
// (fixed owner, mode and mtime) and lets the reader refuse anything but plain files and folders,
// which matters when unpacking an archive someone handed us.

import { gunzipSync, gzipSync } from 'node:zlib';

export interface TarEntry {
  /** Forward-slash relative path; folders end with '/'. */
  path: string;
  /** Absent for folders. */
  data?: Buffer;
  mtime?: Date;
}

export interface ReadEntry {
  path: string;
  type: 'file' | 'directory' | 'other';
  /** The raw ustar type flag, so callers can say what an 'other' entry was. */
  typeflag: string;
  data: Buffer;
}

const BLOCK = 512;
/** Refuse to inflate more than this: a bundle is a few MB, so anything larger is broken or hostile. */
export const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;

function writeString(header: Buffer, value: string, offset: number, length: number): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar: "${value}" is longer than ${length} bytes`);
  bytes.copy(header, offset);
}

function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  // length-1 octal digits, then NUL, as ustar expects.
  const text = value.toString(8).padStart(length - 1, '0');
  if (text.length > length - 1) throw new Error(`tar: value ${value} does not fit in ${length} bytes`);
  writeString(header, `${text}\0`, offset, length);
}

/** ustar keeps names over 100 bytes by splitting them at a '/' into prefix (155) + name (100). */
function splitName(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let i = path.lastIndexOf('/', path.length - 2); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { prefix, name };
  }
  throw new Error(`tar: path too long for ustar: ${path}`);
}

function header(entry: TarEntry): Buffer {
  const isDir = entry.data === undefined;
  const h = Buffer.alloc(BLOCK);
  const { prefix, name } = splitName(entry.path);
  writeString(h, name, 0, 100);
  writeOctal(h, isDir ? 0o755 : 0o644, 100, 8);
  writeOctal(h, 0, 108, 8); // uid: bundles carry no owner
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, isDir ? 0 : entry.data!.length, 124, 12);
  writeOctal(h, Math.floor((entry.mtime?.getTime() ?? 0) / 1000), 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h.write(isDir ? '5' : '0', 156, 'latin1');
  writeString(h, 'ustar\0', 257, 6);
  writeString(h, '00', 263, 2);
  writeString(h, prefix, 345, 155);
  let sum = 0;
  for (const byte of h) sum += byte;
  writeString(h, `${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** Pack entries into a gzip-compressed ustar archive. Same input, same bytes. */
export function packTarGz(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(header(entry));
    if (entry.data) {
      parts.push(entry.data);
      const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2)); // end-of-archive marker
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

function readString(block: Buffer, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? length : nul).toString('utf8');
}

function readOctal(block: Buffer, offset: number, length: number, what: string): number {
  const text = readString(block, offset, length).trim();
  if (!/^[0-7]*$/.test(text)) throw new Error(`tar: bad ${what} field "${text}"`);
  return text === '' ? 0 : parseInt(text, 8);
}

/** The `path=` record of a pax extended header (written by GNU tar / bsdtar for long names). */
function paxPath(data: Buffer): string | undefined {
  let rest = data.toString('utf8');
  while (rest.length > 0) {
    const space = rest.indexOf(' ');
    const len = Number(rest.slice(0, space));
    if (!Number.isInteger(len) || len <= 0) return undefined;
    const record = rest.slice(space + 1, len - 1);
    if (record.startsWith('path=')) return record.slice(5);
    rest = rest.slice(len);
  }
  return undefined;
}

/**
 * Unpack a .tar.gz into memory. Throws a one-line Error on a corrupt archive (bad gzip, bad
 * header checksum, truncated data). Entries other than files and folders come back as 'other'
 * so the caller can report them instead of silently writing links.
 */
export function unpackTarGz(archive: Buffer): ReadEntry[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (err) {
    throw new Error(`not a readable gzip archive (${(err as Error).message})`);
  }
  const entries: ReadEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const block = tar.subarray(offset, offset + BLOCK);
    if (block.every((b) => b === 0)) return entries;
    const stored = readOctal(block, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
    if (sum !== stored) throw new Error(`tar: header checksum mismatch at byte ${offset}`);
    const size = readOctal(block, 124, 12, 'size');
    const typeflag = readString(block, 156, 1) || '0';
    const prefix = readString(block, 345, 155);
    const name = readString(block, 0, 100);
    const dataStart = offset + BLOCK;
    if (dataStart + size > tar.length) throw new Error('tar: archive is truncated');
    const data = Buffer.from(tar.subarray(dataStart, dataStart + size));
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (typeflag === 'x' || typeflag === 'L') {
      // The next entry's real name: pax header record or GNU long-name block.
      longName = typeflag === 'x' ? paxPath(data) : readString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'g') continue; // global pax header: nothing we use
    const path = longName ?? (prefix ? `${prefix}/${name}` : name);
    longName = undefined;
    const type = typeflag === '0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : 'other';
    entries.push({ path, type, typeflag, data });
  }
  throw new Error('tar: archive ends without the end-of-archive marker');
}
