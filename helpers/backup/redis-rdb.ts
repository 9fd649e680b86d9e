// Physical Redis backup: fetch an RDB over the replication protocol, as `redis-cli --rdb` does.
// ioredis cannot do this (its parser does not understand the unframed RDB transfer), so this talks
// RESP on a raw (optionally TLS) socket: AUTH, REPLCONF capa eof + rdb-only, SYNC (or PSYNC ? -1),
// then either `$<len>` + exactly len bytes (disk-based) or `$EOF:<40-byte mark>` + bytes + mark
// (diskless). The file is then checked: REDIS magic, 0xFF trailer opcode, CRC64 of the body.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { HashingWriter, type FileEntry } from './archive.js';

export interface RdbFetchOptions {
  host: string;
  port: number;
  tls?: ConnectionOptions;
  username?: string;
  password?: string;
  /** Where to write the RDB. */
  file: string;
  /**
   * diskless (default): `capa eof`, the master forks and streams without touching its disk (waits
   * repl-diskless-sync-delay first). disk: the master BGSAVEs into its own dir and sends that file;
   * beware it overwrites the master's dump.rdb.
   */
  mode?: 'diskless' | 'disk';
  /** PSYNC ? -1 instead of SYNC: also returns the replication id/offset of the snapshot. */
  psync?: boolean;
  timeoutMs?: number;
}

export interface RdbFetchResult extends FileEntry {
  mode: 'diskless' | 'disk';
  rdb_version: number;
  repl_id?: string;
  repl_offset?: number;
}

export class RdbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RdbError';
  }
}

function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Fetch one node's RDB into opts.file and validate it. */
export async function fetchRdb(opts: RdbFetchOptions): Promise<RdbFetchResult> {
  const mode = opts.mode ?? 'diskless';
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const out = await HashingWriter.create(opts.file);
  const socket: Socket = opts.tls ? tlsConnect({ host: opts.host, port: opts.port, ...opts.tls }) : netConnect({ host: opts.host, port: opts.port });
  // Listen for the connection right away: it can complete before any later await returns.
  const connected = new Promise<void>((resolve, reject) => {
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  let pending: Buffer = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let failure: Error | undefined;
  let ended = false;
  let repl_id: string | undefined;
  let repl_offset: number | undefined;
  const timer = setTimeout(() => socket.destroy(new RdbError(`RDB fetch from ${opts.host}:${opts.port} did not finish within ${timeoutMs} ms`)), timeoutMs);
  socket.on('data', (d: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    waiter?.();
  });
  socket.on('error', (err) => {
    failure = err;
    waiter?.();
  });
  socket.on('close', () => {
    ended = true;
    waiter?.();
  });
  // Wait until the buffer holds something (or the socket failed/closed).
  const more = () =>
    new Promise<void>((resolve, reject) => {
      if (failure) return reject(failure);
      if (ended) return reject(new RdbError(`connection to ${opts.host}:${opts.port} closed early`));
      waiter = () => {
        waiter = undefined;
        if (failure) reject(failure);
        else resolve();
      };
    });
  const readLine = async (): Promise<string> => {
    for (;;) {
      // Keep-alive newlines arrive while the master prepares the snapshot: skip them.
      while (pending.length && pending[0] === 0x0a) pending = pending.subarray(1);
      const nl = pending.indexOf('\r\n');
      if (nl >= 0) {
        const line = pending.subarray(0, nl).toString('utf8');
        pending = pending.subarray(nl + 2);
        return line;
      }
      await more();
    }
  };
  const expectOk = async (what: string) => {
    const line = await readLine();
    if (!line.startsWith('+')) throw new RdbError(`${what} on ${opts.host}:${opts.port} answered ${line}`);
  };
  try {
    await connected;
    if (opts.password) {
      socket.write(opts.username ? resp('AUTH', opts.username, opts.password) : resp('AUTH', opts.password));
      await expectOk('AUTH');
    }
    if (mode === 'diskless') {
      socket.write(resp('REPLCONF', 'capa', 'eof'));
      await expectOk('REPLCONF capa eof');
    }
    // rdb-only: no replication feed afterwards (Redis 7.0+); older servers refuse it, which is fine.
    socket.write(resp('REPLCONF', 'rdb-only', '1'));
    await readLine();
    socket.write(opts.psync ? resp('PSYNC', '?', '-1') : 'SYNC\r\n');
    let preamble = await readLine();
    if (preamble.startsWith('+FULLRESYNC')) {
      const [, id, off] = preamble.split(' ');
      repl_id = id;
      repl_offset = Number(off);
      preamble = await readLine();
    }
    if (preamble.startsWith('-')) throw new RdbError(`SYNC on ${opts.host}:${opts.port} refused: ${preamble}`);
    if (!preamble.startsWith('$')) throw new RdbError(`SYNC on ${opts.host}:${opts.port}: unexpected preamble ${JSON.stringify(preamble.slice(0, 60))}`);
    const usedMode: 'diskless' | 'disk' = preamble.startsWith('$EOF:') ? 'diskless' : 'disk';
    if (usedMode === 'disk') {
      let left = Number(preamble.slice(1));
      if (!Number.isInteger(left) || left < 0) throw new RdbError(`bad RDB length in preamble ${preamble}`);
      while (left > 0) {
        if (!pending.length) await more();
        const part = pending.subarray(0, Math.min(left, pending.length));
        pending = pending.subarray(part.length);
        left -= part.length;
        await out.write(part);
      }
    } else {
      const mark = Buffer.from(preamble.slice(5), 'utf8');
      if (mark.length !== 40) throw new RdbError(`bad EOF mark in preamble (${mark.length} bytes)`);
      // Hold back the last 40 bytes: they may be the end mark, which is not part of the file.
      let tail = Buffer.alloc(0);
      for (;;) {
        if (!pending.length) await more();
        const all = Buffer.concat([tail, pending]);
        pending = Buffer.alloc(0);
        if (all.length > 40) {
          await out.write(all.subarray(0, all.length - 40));
          tail = all.subarray(all.length - 40);
        } else tail = all;
        if (tail.equals(mark)) break;
      }
    }
    socket.destroy();
    const entry = await out.close();
    const rdb_version = await validateRdb(opts.file);
    return { ...entry, mode: usedMode, rdb_version, repl_id, repl_offset };
  } catch (err) {
    out.abort();
    throw err;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

// CRC-64/Jones (reflected poly 0x95ac9329ac4bc9b5, init 0, no final xor), as split 32-bit halves
// so it runs on plain numbers rather than BigInt per byte.
const CRC_LO = new Uint32Array(256);
const CRC_HI = new Uint32Array(256);
(() => {
  const poly = 0x95ac9329ac4bc9b5n;
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    CRC_LO[i] = Number(c & 0xffffffffn);
    CRC_HI[i] = Number(c >> 32n);
  }
})();

export class Crc64 {
  private lo = 0;
  private hi = 0;
  update(buf: Uint8Array): this {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = 0; i < buf.length; i++) {
      const idx = (lo ^ buf[i]!) & 0xff;
      lo = (((lo >>> 8) | ((hi & 0xff) << 24)) ^ CRC_LO[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ CRC_HI[idx]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }
  digest(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
}

/** REDIS magic + version, 0xFF before the 8-byte trailer, and the CRC64 when the file carries one. */
export async function validateRdb(file: string): Promise<number> {
  const { size } = await stat(file);
  if (size < 9 + 9) throw new RdbError(`${file}: ${size} bytes is too small for an RDB`);
  const crc = new Crc64();
  const head: Buffer[] = [];
  let headLen = 0;
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(file)) {
    const c = chunk as Buffer;
    if (headLen < 9) {
      head.push(c);
      headLen += c.length;
    }
    // Everything except the last 8 bytes goes into the CRC.
    const all = Buffer.concat([tail, c]);
    if (all.length > 8) {
      crc.update(all.subarray(0, all.length - 8));
      tail = all.subarray(all.length - 8);
    } else tail = all;
  }
  const magic = Buffer.concat(head).subarray(0, 9).toString('latin1');
  if (!/^REDIS\d{4}$/.test(magic)) throw new RdbError(`${file} does not start with the REDIS magic (got ${JSON.stringify(magic)})`);
  const version = Number(magic.slice(5));
  const fh = await open(file, 'r');
  const eof = Buffer.alloc(1);
  try {
    await fh.read(eof, 0, 1, size - 9);
  } finally {
    await fh.close();
  }
  if (eof[0] !== 0xff) throw new RdbError(`${file}: no EOF opcode 0xFF before the checksum (truncated RDB, ${size} bytes)`);
  const want = tail.readBigUInt64LE(0);
  if (want !== 0n && want !== crc.digest()) {
    throw new RdbError(`${file}: RDB checksum mismatch, trailer says ${want.toString(16)}, content gives ${crc.digest().toString(16)}`);
  }
  return version;
}
