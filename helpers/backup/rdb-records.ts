// An incremental RDB parser for the logical backup's SYNC path: it delimits every top-level item of
// an RDB stream as the bytes arrive and hands each key over as (db, key, absolute expiry, RDB type,
// the value's raw bytes), without materialising values. A DUMP payload is exactly
//   type byte + the value as the RDB serialises it + RDB version (LE16) + CRC64 Jones (LE64)
// (createDumpPayload, which calls the same rdbSaveObjectType/rdbSaveObject the RDB writer does), so
// the value bytes are copied as they are and only the 10-byte footer is computed.
//
// Only layouts proven here byte for byte against `DUMP key` on redis-server 7.0.15 are parsed (test/
// backup/rdb-stream.test.ts): RDB version 10 and the value types 7.0 writes (string 0, set 2 and
// intset 11, hash 4 and listpack 16, zset skiplist 5 and listpack 17, quicklist 18, stream 19). The
// opcodes: AUX, SELECTDB, RESIZEDB, EXPIRETIME(_MS), IDLE, FREQ, FUNCTION2 (skipped), EOF + CRC.
// Anything else (module types and MODULE_AUX, older encodings 7.0 never writes, another RDB
// version, an unknown opcode or string encoding) throws RdbParseError with kind 'unsupported'
// rather than being guessed at: the caller backs that node up with SCAN instead. A value is a
// payload RESTORE accepts without checking its structure (the CRC is ours), so a wrongly
// delimited value must never become a record.
//
// Memory: the bytes of the item being parsed are kept as the chunks they arrived in (no
// concatenation), so a value larger than a read chunk is held once, as those chunks, until its
// last byte arrives; chunks before the current item are dropped. Parsing is resumable at every
// primitive (a length, a string, a fixed field): when the data runs out, the parser keeps its
// position in the value's structure (a small stack: elements left at each nesting level) and
// continues there when more bytes come, so no byte is parsed twice, however large the value. A
// string's content is never read, only skipped (its length is in its header), except for keys
// and AUX fields, which are decoded (integer-encoded or LZF-compressed).

/** Why the parser stopped: something it does not know ('unsupported') or bytes that cannot be an RDB ('corrupt'). */
export class RdbParseError extends Error {
  constructor(
    readonly kind: 'unsupported' | 'corrupt',
    message: string,
  ) {
    super(message);
    this.name = 'RdbParseError';
  }
}

/** The only RDB version whose layouts were verified here (Redis 7.0). */
export const VERIFIED_RDB_VERSION = 10;

/** Value type bytes this parser delimits (all that Redis 7.0 writes, modules aside). */
export const SUPPORTED_RDB_TYPES: readonly number[] = [0, 2, 4, 5, 11, 16, 17, 18, 19];

// Opcodes (src/rdb.h).
const OP_FUNCTION2 = 0xf5;
const OP_IDLE = 0xf8;
const OP_FREQ = 0xf9;
const OP_AUX = 0xfa;
const OP_RESIZEDB = 0xfb;
const OP_EXPIRETIME_MS = 0xfc;
const OP_EXPIRETIME = 0xfd;
const OP_SELECTDB = 0xfe;
const OP_EOF = 0xff;

const OPCODE_NAMES: Record<number, string> = {
  0xf4: 'SLOT_INFO (Redis 7.4+)',
  0xf6: 'FUNCTION_PRE_GA (a 7.0 release candidate)',
  0xf7: 'MODULE_AUX (a module stores data of its own)',
};
const TYPE_NAMES: Record<number, string> = {
  1: 'list (linked list, RDB < 7)',
  3: 'zset with string scores (RDB < 8)',
  6: 'module (pre-GA)',
  7: 'module',
  9: 'hash zipmap (Redis < 2.6)',
  10: 'list ziplist (Redis < 3.2)',
  12: 'zset ziplist (Redis < 7.0)',
  13: 'hash ziplist (Redis < 7.0)',
  14: 'list quicklist with ziplists (Redis < 7.0)',
  15: 'stream listpacks v1 (Redis < 7.0)',
  20: 'set listpack (Redis 7.2+)',
  21: 'stream listpacks v3 (Redis 7.2+)',
};

// Value layouts as small programs: STR a string (any encoding, skipped), LEN a length (ignored),
// CONTAINER a quicklist node's container (1 plain, 2 packed), FIX n raw bytes, and REP: a length
// N, then N times the body.
const STR = 0;
const LEN = 1;
const CONTAINER = 2;
const FIX = 3;
const REP = 4;
type Op = { k: typeof STR | typeof LEN | typeof CONTAINER } | { k: typeof FIX; n: number } | { k: typeof REP; body: Op[] };
const str: Op = { k: STR };
const len: Op = { k: LEN };
const fix = (n: number): Op => ({ k: FIX, n });
const rep = (...body: Op[]): Op => ({ k: REP, body });

// rdbSaveObject in 7.0.15, per type.
const LAYOUTS: Array<Op[] | undefined> = [];
LAYOUTS[0] = [str]; // string: one string (raw, integer-encoded or LZF)
LAYOUTS[2] = [rep(str)]; // set (hashtable): members
LAYOUTS[4] = [rep(str, str)]; // hash (hashtable): field, value
LAYOUTS[5] = [rep(str, fix(8))]; // zset (skiplist): member, binary double
LAYOUTS[11] = [str]; // set as intset blob
LAYOUTS[16] = [str]; // hash as listpack blob
LAYOUTS[17] = [str]; // zset as listpack blob
LAYOUTS[18] = [rep({ k: CONTAINER }, str)]; // quicklist 2: nodes of (container, listpack or plain element)
// Stream listpacks 2: nodes (master ID, listpack); length, last ID (ms, seq), first ID, max deleted
// ID, entries added; groups of (name, last ID ms, seq, entries read, PEL of (16-byte ID, 8-byte
// delivery time, delivery count), consumers of (name, 8-byte seen time, PEL of 16-byte IDs)).
LAYOUTS[19] = [rep(str, str), len, len, len, len, len, len, len, len, rep(str, len, len, len, rep(fix(16), fix(8), len), rep(str, fix(8), rep(fix(16))))];

/** Thrown inside the parser when the bytes received so far end inside the primitive being read. */
class NeedMore {
  constructor(public at: number) {}
}
const NEED = new NeedMore(0);

/**
 * One key as the parser delimited it. The object is reused for the next key: copy what must
 * outlive the sink's call. The value is [valueStart, valueEnd) of the stream; copyValue/valueParts
 * give its bytes.
 */
export interface RdbKeyRecord {
  db: number;
  /** RDB value type byte (the DUMP payload's first byte). */
  type: number;
  /** Absolute expiry in the server's clock (ms), -1 when none. */
  expireMs: number;
  /** Key bytes are key[ks, ke). */
  key: Buffer;
  ks: number;
  ke: number;
  valueLength: number;
}

export interface RdbSink {
  /** A key and its value. */
  record(rec: RdbKeyRecord, parser: RdbRecordParser): void;
  /**
   * SELECTDB: the keys after it belong to `db`. A returned promise holds the parser (no further item
   * is parsed, bytes are queued) until it settles; see RdbRecordParser.blocked.
   */
  selectDb(db: number): void | Promise<void>;
  /** An AUX field (e.g. ctime: the snapshot's Unix time in seconds). */
  aux?(key: string, value: Buffer): void;
}

type Phase = 'magic' | 'item' | 'value' | 'checksum' | 'done';

export class RdbRecordParser {
  /** Received chunks not yet dropped; bufs[i] starts at stream offset starts[i]. */
  private bufs: Buffer[] = [];
  private starts: number[] = [];
  /** Stream offset just past the last byte received. */
  private end = 0;
  /** Parse no further before `end` reaches this (the rest of a string being skipped). */
  private need = 0;
  // Cursor: stream offset `pos`, inside chunk `ci` (cb, starting at cs, ending at ce).
  private pos = 0;
  private ci = 0;
  private cb: Buffer = Buffer.alloc(0);
  private cs = 0;
  private ce = 0;
  private phase: Phase = 'magic';
  version = 0;
  private db = -1;
  private expire = -1;
  // The key being parsed (phase 'value').
  private readonly rec: RdbKeyRecord = { db: 0, type: 0, expireMs: -1, key: Buffer.alloc(0), ks: 0, ke: 0, valueLength: 0 };
  private valueStart = 0;
  // Where the value's structure is: per nesting level, the ops, the next op and the repeats left.
  private stackOps: Op[][] = [];
  private stackIp: number[] = [];
  private stackLeft: number[] = [];
  private depth = 0;
  /** Set while the sink's selectDb promise is pending. */
  blocked: Promise<void> | undefined;
  private failure: Error | undefined;
  /** Keys delimited so far. */
  keys = 0;
  /** Opcodes seen that carry nothing for the records (tests show they were met and skipped). */
  readonly skipped = { aux: 0, idle: 0, freq: 0, functions: 0, resizedb: 0 };

  constructor(private readonly sink: RdbSink) {}

  get done(): boolean {
    return this.phase === 'done';
  }

  /** Feed the next bytes of the stream (kept, not copied). Throws RdbParseError. */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (!chunk.length) return;
    if (this.phase === 'done') throw this.fail('corrupt', `${chunk.length} bytes after the RDB's end (EOF opcode and checksum)`);
    this.bufs.push(chunk);
    this.starts.push(this.end);
    this.end += chunk.length;
    if (!this.blocked && this.end >= this.need) this.run();
  }

  /** The stream ended: it must have ended exactly after the RDB's checksum. */
  finish(): void {
    if (this.failure) throw this.failure;
    if (this.blocked) throw new Error('RDB parser finished while blocked');
    if (this.phase !== 'done') {
      throw this.fail('corrupt', `the RDB stream ended after ${this.end} bytes, inside ${this.phase === 'value' ? `the value of a key (type ${this.rec.type})` : this.phase === 'magic' ? 'its header' : 'an item'} (truncated)`);
    }
  }

  private fail(kind: 'unsupported' | 'corrupt', message: string): RdbParseError {
    const err = new RdbParseError(kind, message);
    this.failure = err;
    return err;
  }

  /** Parse as far as the bytes go. */
  private run(): void {
    this.seek(this.phase === 'value' ? this.resumeAt : this.itemStart);
    try {
      for (;;) {
        if (this.phase === 'item') {
          this.item();
          if (this.blocked) break;
        } else if (this.phase === 'value') this.value();
        else if (this.phase === 'magic') this.magic();
        else if (this.phase === 'checksum') {
          this.skip(8);
          this.itemStart = this.pos;
          this.phase = 'done';
        } else {
          if (this.pos < this.end) throw this.fail('corrupt', `${this.end - this.pos} bytes after the RDB's end (EOF opcode and checksum)`);
          break;
        }
      }
    } catch (err) {
      if (err !== NEED) {
        if (!(err instanceof RdbParseError)) this.failure = err as Error;
        throw err;
      }
      this.need = NEED.at;
    }
    this.release();
  }

  /** Drop chunks that end before the oldest byte still needed (the value being parsed starts there). */
  private release(): void {
    const keep = this.phase === 'value' ? this.valueStart : this.itemStart;
    let n = 0;
    while (n < this.bufs.length - 1 && this.starts[n + 1]! <= keep) n++;
    if (n === this.bufs.length - 1 && this.starts[n]! + this.bufs[n]!.length <= keep) n++;
    if (n) {
      this.bufs.splice(0, n);
      this.starts.splice(0, n);
    }
  }

  /** Where the next item starts (phases other than 'value'), and where the value's next primitive starts. */
  private itemStart = 0;
  private resumeAt = 0;

  /** Continue after a blocking selectDb settled. */
  resume(): void {
    if (!this.blocked) return;
    this.blocked = undefined;
    if (this.end >= this.need) this.run();
  }

  // -------------------------------------------------------------------------------------------
  // Cursor

  private seek(at: number): void {
    this.pos = at;
    // The resume point is near the end of what was received: search from the last chunk back.
    let i = this.bufs.length - 1;
    while (i > 0 && this.starts[i]! > at) i--;
    this.ci = Math.max(0, i);
    this.cb = this.bufs[this.ci] ?? Buffer.alloc(0);
    this.cs = this.starts[this.ci] ?? this.end;
    this.ce = this.cs + this.cb.length;
    while (this.pos >= this.ce && this.ci < this.bufs.length - 1) this.nextChunk();
  }

  private nextChunk(): void {
    this.ci++;
    this.cb = this.bufs[this.ci]!;
    this.cs = this.starts[this.ci]!;
    this.ce = this.cs + this.cb.length;
  }

  private u8(): number {
    while (this.pos >= this.ce) {
      if (this.ci >= this.bufs.length - 1) {
        NEED.at = this.pos + 1;
        throw NEED;
      }
      this.nextChunk();
    }
    return this.cb[this.pos++ - this.cs]!;
  }

  private skip(n: number): void {
    this.pos += n;
    if (this.pos > this.end) {
      NEED.at = this.pos;
      throw NEED;
    }
  }

  /** n bytes as a Buffer view when they sit in one chunk, else copied out of the chunks they span. */
  private bytes(n: number): Buffer {
    while (this.pos >= this.ce && this.ci < this.bufs.length - 1) this.nextChunk();
    if (this.pos + n <= this.ce) {
      const b = this.cb.subarray(this.pos - this.cs, this.pos - this.cs + n);
      this.pos += n;
      return b;
    }
    if (this.pos + n > this.end) {
      NEED.at = this.pos + n;
      throw NEED;
    }
    const out = Buffer.allocUnsafe(n);
    this.copyRange(this.pos, this.pos + n, out, 0);
    this.pos += n;
    return out;
  }

  /** A length (rdbLoadLen); -1 - (encoding type) for the special string encodings (top bits 11). */
  private lenOrEnc(): number {
    const b = this.u8();
    switch (b >> 6) {
      case 0:
        return b & 0x3f;
      case 1:
        return ((b & 0x3f) << 8) | this.u8();
      case 2:
        if (b === 0x80) return this.bytes(4).readUInt32BE(0);
        if (b === 0x81) {
          const v = this.bytes(8);
          const hi = v.readUInt32BE(0);
          // Lengths and counts above 2^53 cannot be real; skipped fields (IDs) may be: kept approximate.
          return hi * 0x100000000 + v.readUInt32BE(4);
        }
        throw this.fail('corrupt', `bad length byte 0x${b.toString(16)} at offset ${this.pos - 1}`);
      default:
        return -1 - (b & 0x3f);
    }
  }

  /** A length that counts something (elements, a db number). */
  private count(what: string): number {
    const n = this.lenOrEnc();
    if (n < 0) throw this.fail('corrupt', `${what} at offset ${this.pos - 1} is string-encoded, not a length`);
    if (!Number.isSafeInteger(n)) throw this.fail('corrupt', `${what} at offset ${this.pos} is ${n}, too large to be real`);
    return n;
  }

  /** Skip a string in any encoding. */
  private skipString(): void {
    const n = this.lenOrEnc();
    if (n >= 0) return this.skip(n);
    switch (-1 - n) {
      case 0:
        return this.skip(1);
      case 1:
        return this.skip(2);
      case 2:
        return this.skip(4);
      case 3: {
        const clen = this.count('LZF compressed length');
        this.count('LZF uncompressed length');
        return this.skip(clen);
      }
      default:
        throw this.fail('unsupported', `string encoding ${-1 - n} at offset ${this.pos - 1} is not one of RDB's (integer 8/16/32, LZF)`);
    }
  }

  /** A string's bytes, decoded (integer encodings as decimal text, LZF decompressed); a view when it is stored plain in one chunk. */
  private readString(): Buffer {
    const n = this.lenOrEnc();
    if (n >= 0) return this.bytes(n);
    switch (-1 - n) {
      case 0:
        return Buffer.from(String(this.bytes(1).readInt8(0)), 'latin1');
      case 1:
        return Buffer.from(String(this.bytes(2).readInt16LE(0)), 'latin1');
      case 2:
        return Buffer.from(String(this.bytes(4).readInt32LE(0)), 'latin1');
      case 3: {
        const clen = this.count('LZF compressed length');
        const ulen = this.count('LZF uncompressed length');
        const out = lzfDecompress(this.bytes(clen), ulen);
        if (!out) throw this.fail('corrupt', `an LZF string before offset ${this.pos} does not decompress to its stated ${ulen} bytes`);
        return out;
      }
      default:
        throw this.fail('unsupported', `string encoding ${-1 - n} at offset ${this.pos - 1} is not one of RDB's (integer 8/16/32, LZF)`);
    }
  }

  /** Copy stream bytes [from, to) (all received, not dropped) into dst at o; returns the new offset. */
  copyRange(from: number, to: number, dst: Buffer, o: number): number {
    let i = 0;
    while (i < this.bufs.length - 1 && this.starts[i + 1]! <= from) i++;
    while (from < to) {
      const b = this.bufs[i]!;
      const s = this.starts[i]!;
      const e = Math.min(to, s + b.length);
      if (e - from < 64) for (let j = from - s; j < e - s; j++) dst[o++] = b[j]!;
      else o += b.copy(dst, o, from - s, e - s);
      from = e;
      i++;
    }
    return o;
  }

  /** The current record's value bytes, as views of the chunks they arrived in (valid during sink.record). */
  valueParts(): Buffer[] {
    const parts: Buffer[] = [];
    let from = this.valueStart;
    const to = this.valueStart + this.rec.valueLength;
    let i = 0;
    while (i < this.bufs.length - 1 && this.starts[i + 1]! <= from) i++;
    while (from < to) {
      const b = this.bufs[i]!;
      const s = this.starts[i]!;
      const e = Math.min(to, s + b.length);
      parts.push(b.subarray(from - s, e - s));
      from = e;
      i++;
    }
    return parts;
  }

  /** Copy the current record's value into dst at o; returns the new offset. */
  copyValue(dst: Buffer, o: number): number {
    return this.copyRange(this.valueStart, this.valueStart + this.rec.valueLength, dst, o);
  }

  // -------------------------------------------------------------------------------------------
  // Items

  private magic(): void {
    const head = this.bytes(9).toString('latin1');
    if (!/^REDIS\d{4}$/.test(head)) throw this.fail('corrupt', `the stream does not start with the REDIS magic (got ${JSON.stringify(head)})`);
    this.version = Number(head.slice(5));
    if (this.version !== VERIFIED_RDB_VERSION) {
      throw this.fail('unsupported', `RDB version ${this.version}: only version ${VERIFIED_RDB_VERSION} (Redis 7.0) was verified byte for byte against DUMP`);
    }
    this.itemStart = this.pos;
    this.phase = 'item';
  }

  /** One top-level item from itemStart: an opcode with its fields, or a key's type byte and name. */
  private item(): void {
    const at = this.pos;
    const op = this.u8();
    switch (op) {
      case OP_AUX: {
        const k = this.readString().toString('latin1');
        const v = this.readString();
        this.skipped.aux++;
        this.sink.aux?.(k, v);
        break;
      }
      case OP_SELECTDB: {
        const db = this.count('SELECTDB number');
        this.db = db;
        this.itemStart = this.pos;
        // A promise holds the parser; whoever awaits it calls resume() (see RdbSink.selectDb).
        const wait = this.sink.selectDb(db);
        if (wait) this.blocked = wait;
        return;
      }
      case OP_RESIZEDB:
        this.count('RESIZEDB size');
        this.count('RESIZEDB expires size');
        this.skipped.resizedb++;
        break;
      case OP_EXPIRETIME_MS: {
        const b = this.bytes(8);
        this.expire = b.readUInt32LE(0) + b.readInt32LE(4) * 0x100000000;
        break;
      }
      case OP_EXPIRETIME: {
        this.expire = this.bytes(4).readInt32LE(0) * 1000;
        break;
      }
      case OP_IDLE:
        this.count('IDLE time');
        this.skipped.idle++;
        break;
      case OP_FREQ:
        this.skip(1);
        this.skipped.freq++;
        break;
      case OP_FUNCTION2:
        this.skipString();
        this.skipped.functions++;
        break;
      case OP_EOF:
        this.itemStart = this.pos;
        this.phase = 'checksum';
        return;
      default: {
        const layout = LAYOUTS[op];
        if (!layout) {
          if (op >= 0xf0 || OPCODE_NAMES[op]) throw this.fail('unsupported', `opcode 0x${op.toString(16)} ${OPCODE_NAMES[op] ?? '(unknown)'} at offset ${at}`);
          throw this.fail('unsupported', `value type ${op} ${TYPE_NAMES[op] ?? '(unknown)'} at offset ${at}: not a layout verified here`);
        }
        if (this.db < 0) throw this.fail('corrupt', `a key at offset ${at} before any SELECTDB`);
        const key = this.readString();
        const rec = this.rec;
        rec.db = this.db;
        rec.type = op;
        rec.expireMs = this.expire;
        rec.key = key;
        rec.ks = 0;
        rec.ke = key.length;
        this.expire = -1;
        this.valueStart = this.resumeAt = this.pos;
        this.depth = 0;
        this.pushFrame(layout, 1);
        this.phase = 'value';
        return;
      }
    }
    // Opcodes that are not a key: a pending expiry is kept (it belongs to the next key), others clear nothing.
    this.itemStart = this.pos;
  }

  private pushFrame(ops: Op[], times: number): void {
    const d = this.depth++;
    this.stackOps[d] = ops;
    this.stackIp[d] = 0;
    this.stackLeft[d] = times;
  }

  /** Continue the value's structure from resumeAt; emits the record when it is complete. */
  private value(): void {
    while (this.depth > 0) {
      const d = this.depth - 1;
      const ops = this.stackOps[d]!;
      const ip = this.stackIp[d]!;
      if (ip === ops.length) {
        const left = this.stackLeft[d]! - 1;
        this.stackLeft[d] = left;
        if (left > 0) this.stackIp[d] = 0;
        else this.depth--;
        continue;
      }
      const op = ops[ip]!;
      switch (op.k) {
        case STR:
          this.skipString();
          break;
        case LEN:
          // Any 64-bit value (an entries-read of -1 is saved as 2^64 - 1): only its encoding is checked.
          if (this.lenOrEnc() < 0) throw this.fail('corrupt', `a length field at offset ${this.pos - 1} is string-encoded`);
          break;
        case CONTAINER: {
          const c = this.count('quicklist node container');
          if (c !== 1 && c !== 2) throw this.fail('unsupported', `quicklist node container ${c} at offset ${this.pos - 1} (known: 1 plain, 2 packed)`);
          break;
        }
        case FIX:
          this.skip(op.n);
          break;
        case REP: {
          const n = this.count('element count');
          this.stackIp[d] = ip + 1;
          this.resumeAt = this.pos;
          if (n > 0) this.pushFrame(op.body, n);
          continue;
        }
      }
      this.stackIp[d] = ip + 1;
      this.resumeAt = this.pos;
    }
    const rec = this.rec;
    rec.valueLength = this.pos - this.valueStart;
    this.keys++;
    this.sink.record(rec, this);
    this.itemStart = this.pos;
    this.phase = 'item';
  }
}

/**
 * LZF decompression (liblzf's format, as Redis writes it): a control byte below 32 starts a run of
 * ctrl + 1 literal bytes; otherwise the top 3 bits are a length (7: plus the next byte), the low 5
 * bits and the next byte an offset back into the output, and length + 2 bytes are copied from
 * there. Undefined when the input does not decode to exactly `ulen` bytes.
 */
export function lzfDecompress(src: Buffer, ulen: number): Buffer | undefined {
  const out = Buffer.allocUnsafe(ulen);
  let ip = 0;
  let op = 0;
  while (ip < src.length) {
    const ctrl = src[ip++]!;
    if (ctrl < 32) {
      const n = ctrl + 1;
      if (op + n > ulen || ip + n > src.length) return undefined;
      for (let i = 0; i < n; i++) out[op++] = src[ip++]!;
    } else {
      let n = ctrl >> 5;
      if (n === 7) {
        if (ip >= src.length) return undefined;
        n += src[ip++]!;
      }
      if (ip >= src.length) return undefined;
      const ref = op - ((ctrl & 0x1f) << 8) - 1 - src[ip++]!;
      n += 2;
      if (ref < 0 || op + n > ulen) return undefined;
      for (let i = 0; i < n; i++) out[op++] = out[ref + i]!;
    }
  }
  return op === ulen ? out : undefined;
}
