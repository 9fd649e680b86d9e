// Physical Redis backup: fetch an RDB over the replication protocol, as `redis-cli --rdb` does; the
// same transfer (streamRdb) also feeds the logical backup's RDB path (rdb-records.ts).
// ioredis cannot do this (its parser does not understand the unframed RDB transfer), so this talks
// RESP on a raw (optionally TLS) socket: AUTH, REPLCONF capa eof + rdb-only, SYNC (or PSYNC ? -1),
// then either `$<len>` + exactly len bytes (disk-based) or `$EOF:<40-byte mark>` + bytes + mark
// (diskless). The file is checked as it streams (no second read): REDIS magic, 0xFF trailer opcode,
// CRC64 of the body. Chunks go from the socket straight to the file stream (no concatenation); the
// socket is paused while the file stream is over its high-water mark, so memory stays at a few MB
// whatever the RDB size.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createReadStream } from 'node:fs';
import { HashingWriter, type FileEntry } from './archive.js';

/** Where and how to connect for a replication stream. */
export interface ReplicationSource {
  host: string;
  port: number;
  /** Unix socket instead of host/port. */
  path?: string;
  tls?: ConnectionOptions;
  username?: string;
  password?: string;
}

export interface RdbStreamOptions extends ReplicationSource {
  /**
   * diskless (default): `capa eof`, the master forks and streams without touching its disk (waits
   * repl-diskless-sync-delay first). disk: the master BGSAVEs into its own dir and sends that file;
   * beware it overwrites the master's dump.rdb.
   */
  mode?: 'diskless' | 'disk';
  /** PSYNC ? -1 instead of SYNC: also returns the replication id/offset of the snapshot. */
  psync?: boolean;
  /** The whole transfer must end within this (default: no limit). */
  timeoutMs?: number;
  /**
   * Fail when the server sends nothing for this long (default: no limit). While the master waits
   * for its fork it sends a newline every second, so a few seconds is enough; time the stream is
   * paused by the consumer does not count.
   */
  idleTimeoutMs?: number;
  /**
   * The logical backup's safety rules: REPLCONF capa eof and rdb-only must both be accepted (else
   * the master would also stream its replication feed to us), and a disk-based answer ($<len>) is
   * refused. Refusals throw RdbRefusedError.
   */
  strict?: boolean;
  /** Aborting closes the connection; the transfer rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface RdbStreamInfo {
  mode: 'diskless' | 'disk';
  repl_id?: string;
  repl_offset?: number;
}

/**
 * Receives the RDB bytes in order, as they arrive (views of the socket's buffers, which are not
 * reused). A returned promise pauses the socket until it settles (backpressure); a throw or a
 * rejection ends the transfer with that error.
 */
export type RdbConsumer = (bytes: Buffer) => void | Promise<void>;

export interface RdbFetchOptions extends RdbStreamOptions {
  /** Where to write the RDB. */
  file: string;
}

export interface RdbFetchResult extends FileEntry, RdbStreamInfo {
  rdb_version: number;
}

export class RdbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RdbError';
  }
}

/** The server refused the replication handshake (ACL, unknown command, a disk-based answer...). */
export class RdbRefusedError extends RdbError {
  constructor(message: string) {
    super(message);
    this.name = 'RdbRefusedError';
  }
}

function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Fetch one node's RDB into opts.file and validate it. */
export async function fetchRdb(opts: RdbFetchOptions): Promise<RdbFetchResult> {
  const out = await HashingWriter.create(opts.file);
  const check = new RdbChecker();
  try {
    // Each payload byte is checked and written as it arrives; the socket pauses while the file
    // stream is full.
    const info = await streamRdb({ timeoutMs: 120_000, ...opts }, (b) => {
      check.update(b);
      if (!out.writeNow(b)) return out.drained();
    });
    await out.drained();
    const entry = await out.close();
    const rdb_version = check.finish(opts.file);
    return { ...entry, ...info, rdb_version };
  } catch (err) {
    out.abort();
    throw err;
  }
}

/**
 * The replication handshake and the RDB transfer, for fetchRdb and the logical backup alike: AUTH,
 * REPLCONF capa eof (diskless), REPLCONF rdb-only, SYNC (or PSYNC ? -1), then the payload, framed
 * either as `$<len>` + len bytes (disk-based) or `$EOF:<40-byte mark>` + bytes + mark (diskless).
 * Every payload byte goes to `consume` once, in order, the end mark excluded. The socket is closed
 * when this settles, whatever the outcome.
 */
export async function streamRdb(opts: RdbStreamOptions, consume: RdbConsumer): Promise<RdbStreamInfo> {
  const mode = opts.mode ?? 'diskless';
  const where = opts.path ?? `${opts.host}:${opts.port}`;
  const signal = opts.signal;
  signal?.throwIfAborted();
  const socket: Socket = opts.tls
    ? tlsConnect({ host: opts.host, port: opts.port, ...opts.tls })
    : opts.path
      ? netConnect({ path: opts.path })
      : netConnect({ host: opts.host, port: opts.port });
  // Listen for the connection right away: it can complete before any later await returns.
  const connected = new Promise<void>((resolve, reject) => {
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  // Before the payload: replies are small, kept in `pending` and read line by line.
  let pending: Buffer = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let failure: Error | undefined;
  let ended = false;
  /** Set once the payload starts: every chunk then goes to it directly. */
  let body: ((d: Buffer) => void) | undefined;
  /** The consumer's outstanding promise: the socket is paused until it settles. */
  let flow: Promise<void> | undefined;
  let repl_id: string | undefined;
  let repl_offset: number | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    socket.destroy();
    waiter?.();
  };
  const timer = opts.timeoutMs ? setTimeout(() => fail(new RdbError(`RDB transfer from ${where} did not finish within ${opts.timeoutMs} ms`)), opts.timeoutMs) : undefined;
  if (opts.idleTimeoutMs) {
    socket.setTimeout(opts.idleTimeoutMs, () => {
      if (!flow) fail(new RdbError(`RDB transfer from ${where}: nothing received for ${opts.idleTimeoutMs} ms`));
    });
  }
  const onAbort = () => fail(signal!.reason instanceof Error ? signal!.reason : new RdbError(`RDB transfer from ${where} aborted`));
  signal?.addEventListener('abort', onAbort, { once: true });
  socket.on('data', (d: Buffer) => {
    if (body) {
      try {
        body(d);
      } catch (err) {
        fail(err as Error);
      }
    } else pending = pending.length ? Buffer.concat([pending, d]) : d;
    waiter?.();
  });
  socket.on('error', (err) => {
    failure ??= err;
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
      if (ended) return reject(new RdbError(`connection to ${where} closed early`));
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
  const expectOk = async (what: string, Err: typeof RdbError = RdbError) => {
    const line = await readLine();
    if (!line.startsWith('+')) throw new Err(`${what} on ${where} answered ${line}`);
  };
  try {
    await connected;
    if (opts.password) {
      socket.write(opts.username ? resp('AUTH', opts.username, opts.password) : resp('AUTH', opts.password));
      await expectOk('AUTH');
    }
    if (mode === 'diskless') {
      socket.write(resp('REPLCONF', 'capa', 'eof'));
      await expectOk('REPLCONF capa eof', RdbRefusedError);
    }
    // rdb-only: no replication feed afterwards (Redis 7.0+); older servers refuse it, which fetchRdb
    // accepts (it closes the connection after the RDB anyway) and the strict mode does not.
    socket.write(resp('REPLCONF', 'rdb-only', '1'));
    if (opts.strict) await expectOk('REPLCONF rdb-only', RdbRefusedError);
    else await readLine();
    socket.write(opts.psync ? resp('PSYNC', '?', '-1') : 'SYNC\r\n');
    let preamble = await readLine();
    if (preamble.startsWith('+FULLRESYNC')) {
      const [, id, off] = preamble.split(' ');
      repl_id = id;
      repl_offset = Number(off);
      preamble = await readLine();
    }
    if (preamble.startsWith('-')) throw new RdbRefusedError(`SYNC on ${where} refused: ${preamble}`);
    if (!preamble.startsWith('$')) throw new RdbError(`SYNC on ${where}: unexpected preamble ${JSON.stringify(preamble.slice(0, 60))}`);
    const usedMode: 'diskless' | 'disk' = preamble.startsWith('$EOF:') ? 'diskless' : 'disk';
    if (opts.strict && usedMode !== 'diskless') throw new RdbRefusedError(`SYNC on ${where}: the server chose a disk-based transfer (${preamble}), which writes its dump.rdb`);
    let done = false;
    const emit = (b: Buffer) => {
      if (!b.length) return;
      const r = consume(b);
      if (!r) return;
      socket.pause();
      const p: Promise<void> = (flow = r.then(
        () => {
          if (flow !== p) return;
          flow = undefined;
          socket.resume();
          waiter?.();
        },
        (err: Error) => {
          if (flow === p) flow = undefined;
          fail(err);
        },
      ));
    };
    if (usedMode === 'disk') {
      let left = Number(preamble.slice(1));
      if (!Number.isInteger(left) || left < 0) throw new RdbError(`bad RDB length in preamble ${preamble}`);
      done = left === 0;
      body = (d) => {
        if (done) return;
        const part = d.length > left ? d.subarray(0, left) : d;
        left -= part.length;
        emit(part);
        if (left === 0) done = true;
      };
    } else {
      const mark = Buffer.from(preamble.slice(5), 'utf8');
      if (mark.length !== 40) throw new RdbError(`bad EOF mark in preamble (${mark.length} bytes)`);
      // Hold back the last 40 bytes seen: they may be the end mark, which is not part of the file.
      let tail = Buffer.alloc(0);
      body = (d) => {
        if (done) return;
        if (d.length >= 40) {
          emit(tail);
          emit(d.subarray(0, d.length - 40));
          tail = Buffer.from(d.subarray(d.length - 40));
        } else {
          const all = Buffer.concat([tail, d]);
          emit(all.subarray(0, Math.max(0, all.length - 40)));
          tail = all.subarray(Math.max(0, all.length - 40));
        }
        if (tail.length === 40 && tail.equals(mark)) done = true;
      };
    }
    if (pending.length) {
      const first = pending;
      pending = Buffer.alloc(0);
      body(first);
    }
    while (!done) await more();
    socket.destroy();
    // The consumer may still be busy with the last bytes (a file write draining).
    while (flow) await flow;
    if (failure) throw failure;
    return { mode: usedMode, repl_id, repl_offset };
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  }
}

// CRC-64/Jones (reflected poly 0x95ac9329ac4bc9b5, init 0, no final xor), as split 32-bit halves
// so it runs on plain numbers rather than BigInt, and slicing-by-8: eight table lookups per 8 input
// bytes instead of a dependent chain of eight single-byte steps.
const CRC_LO = new Uint32Array(256 * 8);
const CRC_HI = new Uint32Array(256 * 8);
(() => {
  const poly = 0x95ac9329ac4bc9b5n;
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    CRC_LO[i] = Number(c & 0xffffffffn);
    CRC_HI[i] = Number(c >> 32n);
  }
  // Table k: the CRC of byte i followed by k zero bytes.
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const plo = CRC_LO[(k - 1) * 256 + i]!;
      const phi = CRC_HI[(k - 1) * 256 + i]!;
      const idx = plo & 0xff;
      CRC_LO[k * 256 + i] = (((plo >>> 8) | ((phi & 0xff) << 24)) ^ CRC_LO[idx]!) >>> 0;
      CRC_HI[k * 256 + i] = ((phi >>> 8) ^ CRC_HI[idx]!) >>> 0;
    }
  }
})();

export class Crc64 {
  private lo = 0;
  private hi = 0;
  update(buf: Uint8Array): this {
    let lo = this.lo;
    let hi = this.hi;
    const T = CRC_LO;
    const H = CRC_HI;
    let i = 0;
    const n8 = buf.length - (buf.length & 7);
    for (; i < n8; i += 8) {
      const a = lo ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
      const b = hi ^ (buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24));
      const i7 = 7 * 256 + (a & 0xff);
      const i6 = 6 * 256 + ((a >>> 8) & 0xff);
      const i5 = 5 * 256 + ((a >>> 16) & 0xff);
      const i4 = 4 * 256 + (a >>> 24);
      const i3 = 3 * 256 + (b & 0xff);
      const i2 = 2 * 256 + ((b >>> 8) & 0xff);
      const i1 = 256 + ((b >>> 16) & 0xff);
      const i0 = b >>> 24;
      lo = (T[i7]! ^ T[i6]! ^ T[i5]! ^ T[i4]! ^ T[i3]! ^ T[i2]! ^ T[i1]! ^ T[i0]!) >>> 0;
      hi = (H[i7]! ^ H[i6]! ^ H[i5]! ^ H[i4]! ^ H[i3]! ^ H[i2]! ^ H[i1]! ^ H[i0]!) >>> 0;
    }
    for (; i < buf.length; i++) {
      const idx = (lo ^ buf[i]!) & 0xff;
      lo = (((lo >>> 8) | ((hi & 0xff) << 24)) ^ T[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ H[idx]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }
  digest(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
  /** Write the CRC little-endian at buf[o, o + 8) (as a DUMP payload's footer holds it), without a BigInt. */
  writeLE(buf: Buffer, o: number): void {
    buf.writeUInt32LE(this.lo, o);
    buf.writeUInt32LE(this.hi, o + 4);
  }
  reset(): this {
    this.lo = 0;
    this.hi = 0;
    return this;
  }
}

/**
 * Checks an RDB as its bytes stream past, without keeping them: the first 9 bytes (magic), the CRC64
 * of everything but the last 8 bytes (held back, as they may be the trailer), and the byte before
 * the trailer (the 0xFF EOF opcode).
 */
export class RdbChecker {
  private readonly crc = new Crc64();
  private head = Buffer.alloc(0);
  /** The last (up to) 8 bytes seen, not yet in the CRC. */
  private held = Buffer.alloc(0);
  private lastCrcByte = -1;
  size = 0;

  update(b: Buffer): void {
    if (!b.length) return;
    this.size += b.length;
    if (this.head.length < 9) this.head = Buffer.concat([this.head, b.subarray(0, 9 - this.head.length)]);
    if (b.length >= 8) {
      this.feed(this.held);
      this.feed(b.subarray(0, b.length - 8));
      this.held = Buffer.from(b.subarray(b.length - 8));
    } else {
      const all = Buffer.concat([this.held, b]);
      this.feed(all.subarray(0, Math.max(0, all.length - 8)));
      this.held = all.subarray(Math.max(0, all.length - 8));
    }
  }

  private feed(b: Buffer): void {
    if (!b.length) return;
    this.crc.update(b);
    this.lastCrcByte = b[b.length - 1]!;
  }

  /** The RDB version, or an RdbError naming `file` and what is wrong. */
  finish(file: string): number {
    const size = this.size;
    if (size < 9 + 9) throw new RdbError(`${file}: ${size} bytes is too small for an RDB`);
    const magic = this.head.toString('latin1');
    if (!/^REDIS\d{4}$/.test(magic)) throw new RdbError(`${file} does not start with the REDIS magic (got ${JSON.stringify(magic)})`);
    if (this.lastCrcByte !== 0xff) throw new RdbError(`${file}: no EOF opcode 0xFF before the checksum (truncated RDB, ${size} bytes)`);
    const want = this.held.readBigUInt64LE(0);
    const got = this.crc.digest();
    if (want !== 0n && want !== got) {
      throw new RdbError(`${file}: RDB checksum mismatch, trailer says ${want.toString(16)}, content gives ${got.toString(16)}`);
    }
    return Number(magic.slice(5));
  }
}

/** REDIS magic + version, 0xFF before the 8-byte trailer, and the CRC64 when the file carries one. */
export async function validateRdb(file: string): Promise<number> {
  const check = new RdbChecker();
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) check.update(chunk as Buffer);
  return check.finish(file);
}
