// A minimal pipelined RESP2 connection for the logical backup and restore, and the byte helpers
// that build its requests. It exists for speed: the backup moves every key of a keyspace through
// two or three commands, and ioredis costs a Command object, a promise, a reply array and a Buffer
// per command, which was most of the backup's time and GC load. Here a whole batch is one write and
// one promise, and replies are handed to a ReplySink element by element as views of the buffer the
// socket read into, so a sink can copy a DUMP payload straight into an archive record. That buffer
// is the connection's own and is read into again (no allocation per read: fresh memory costs page
// faults), so a sink copies what it keeps.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { RedisOptions } from 'ioredis';

/** A RESP reply as CollectSink keeps it: integer, bulk (null when nil), simple string or error. */
export type Reply = number | Buffer | string | null | RespError;

export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyError';
  }
}

/**
 * Receives the replies of one request, element by element, as they are parsed. Arrays arrive as a
 * header (array) followed by their elements. Bulk bytes are [start, end) of `buf`; the element's
 * whole RESP encoding ("$<len>\r\n<bytes>\r\n") is [head, end + 2). `buf` is valid only during the
 * call (the connection reads into it again): copy what must outlive it.
 */
export interface ReplySink {
  int(n: number): void;
  bulk(buf: Buffer, head: number, start: number, end: number): void;
  /** A nil bulk or nil array. */
  nil(): void;
  simple(text: string): void;
  error(message: string): void;
  array(n: number): void;
  /** True once every reply of the request has arrived. */
  readonly done: boolean;
}

/** Collects `n` plain replies (no arrays) as Reply values. */
export class CollectSink implements ReplySink {
  readonly replies: Reply[] = [];
  constructor(private readonly n: number) {}
  get done(): boolean {
    return this.replies.length >= this.n;
  }
  int(n: number): void {
    this.replies.push(n);
  }
  bulk(buf: Buffer, _head: number, start: number, end: number): void {
    this.replies.push(Buffer.from(buf.subarray(start, end)));
  }
  nil(): void {
    this.replies.push(null);
  }
  simple(text: string): void {
    this.replies.push(text);
  }
  error(message: string): void {
    this.replies.push(new RespError(message));
  }
  array(): void {
    throw new Error('unexpected array reply');
  }
}

/** Feed a bulk held as a plain Buffer to a sink (paths that did not parse RESP themselves). */
export function feedBulk(sink: ReplySink, data: Buffer): void {
  const head = Buffer.from(`$${data.length}\r\n`, 'latin1');
  const enc = Buffer.concat([head, data, CRLF]);
  sink.bulk(enc, 0, head.length, head.length + data.length);
}

/** Feed one ioredis result (or its error) to a sink. */
export function feedValue(sink: ReplySink, err: Error | null | undefined, v: unknown): void {
  if (err) sink.error(err.message);
  else if (v == null) sink.nil();
  else if (typeof v === 'number') sink.int(v);
  else if (Buffer.isBuffer(v)) feedBulk(sink, v);
  else if (Array.isArray(v)) {
    sink.array(v.length);
    for (const x of v) feedValue(sink, null, x);
  } else sink.simple(String(v));
}

// ---------------------------------------------------------------------------------------------
// Building requests

const CRLF = Buffer.from('\r\n');

/** Copy src[s, e) into dst at o; returns the new offset. Short runs copy in JS (cheaper than a native call). */
export function copyInto(dst: Buffer, o: number, src: Uint8Array, s: number, e: number): number {
  if (e - s < 64) {
    for (let i = s; i < e; i++) dst[o++] = src[i]!;
    return o;
  }
  dst.set(src.subarray(s, e), o);
  return o + (e - s);
}

/** One command as a RESP array of bulk strings. */
export function respArgs(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

/** Appends RESP commands into one buffer, growing it as needed. */
export class RespBuilder {
  private buf: Buffer;
  private o = 0;
  constructor(estimate: number) {
    this.buf = Buffer.allocUnsafe(Math.max(256, estimate));
  }
  private room(n: number): void {
    if (this.o + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + n));
    this.buf.copy(next, 0, 0, this.o);
    this.buf = next;
  }
  /** Bytes as they are (a command header, or an element already RESP-encoded). */
  raw(b: Uint8Array, s = 0, e = b.length): this {
    this.room(e - s);
    this.o = copyInto(this.buf, this.o, b, s, e);
    return this;
  }
  bulk(b: Buffer): this {
    this.room(b.length + 16);
    this.buf[this.o++] = 0x24; // $
    this.o += this.buf.write(String(b.length), this.o, 'latin1');
    this.buf[this.o++] = 13;
    this.buf[this.o++] = 10;
    this.o = copyInto(this.buf, this.o, b, 0, b.length);
    this.buf[this.o++] = 13;
    this.buf[this.o++] = 10;
    return this;
  }
  bulkText(s: string): this {
    return this.bulk(Buffer.from(s, 'latin1'));
  }
  done(): Buffer {
    return this.buf.subarray(0, this.o);
  }
}

// ---------------------------------------------------------------------------------------------
// The connection

/** Longest silence from the server while requests are pending (a batch of big DUMPs or RESTOREs included). */
export const REPLY_TIMEOUT_MS = 60_000;

/** The buffer a plain (non-TLS) connection reads into, reused for every read. */
const READ_BUFFER_BYTES = 256 * 1024;

interface Pending {
  sink: ReplySink;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Pipelined requests on one socket: each request() writes a pre-encoded buffer and resolves once
 * its sink is done; replies come in request order. A protocol error or a lost connection fails
 * every pending request and the connection.
 */
export class RespConn {
  private readonly queue: Pending[] = [];
  private parts: Buffer[] = [];
  private have = 0;
  /** Bytes needed before parsing can make progress (a reply split across reads)... */
  private need = 1;
  /** ...and whether that is the cut reply's exact length (a bulk whose header was read). */
  private needExact = false;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly label: string,
    replyTimeoutMs: number,
  ) {
    socket.setNoDelay(true);
    // Bounded wait: a server that stops answering (blocked, or gone without a reset) fails the
    // pending requests instead of hanging the backup. Idle with nothing pending is fine.
    socket.setTimeout(replyTimeoutMs, () => {
      if (this.queue.length) {
        this.fail(new Error(`redis connection to ${label}: no reply for ${replyTimeoutMs / 1000} s`));
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(new Error(`redis connection to ${label}: ${err.message}`)));
    socket.on('close', () => this.fail(new Error(`redis connection to ${label} closed`)));
  }

  /**
   * Connects like the given ioredis options (host/port or path, TLS, AUTH) and SELECTs db. Pending
   * requests fail when no byte arrives for `replyTimeoutMs`.
   */
  static async open(o: RedisOptions, db: number, replyTimeoutMs = REPLY_TIMEOUT_MS): Promise<RespConn> {
    const host = o.host ?? '127.0.0.1';
    const port = o.port ?? 6379;
    const label = o.path ?? `${host}:${port}`;
    const timeoutMs = o.connectTimeout ?? 10_000;
    // Plain sockets read into one buffer of the connection's own (onread; TLS sockets cannot):
    // replies are parsed in the read callback, before the next read reuses it.
    let conn: RespConn | undefined;
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const onread = {
      buffer: readBuffer,
      callback: (n: number) => {
        conn?.onData(readBuffer.subarray(0, n));
        return true;
      },
    };
    const socket: Socket = o.tls
      ? tlsConnect({ host, port, ...o.tls })
      : o.path
        ? netConnect({ path: o.path, onread })
        : netConnect({ host, port, onread, ...(o.family ? { family: o.family } : {}) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
      const onErr = (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`redis connection to ${label}: ${err.message}`));
      };
      socket.once(o.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', onErr);
        resolve();
      });
      socket.once('error', onErr);
    });
    conn = new RespConn(socket, label, replyTimeoutMs);
    if (o.tls) socket.on('data', (d: Buffer) => conn!.onData(d));
    try {
      const hello: Buffer[] = [];
      if (o.password) hello.push(respArgs(o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password]));
      if (db) hello.push(respArgs(['SELECT', String(db)]));
      for (const r of await conn.call(Buffer.concat(hello), hello.length)) if (r instanceof Error) throw new Error(`redis ${label}: ${r.message}`);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  /**
   * Send `payload` (complete RESP commands, in one buffer or several written together); resolves
   * with `sink` once it is done.
   */
  request<S extends ReplySink>(payload: Buffer | readonly Buffer[], sink: S): Promise<S> {
    if (this.failure) return Promise.reject(this.failure);
    if (sink.done) return Promise.resolve(sink);
    return new Promise<S>((resolve, reject) => {
      this.queue.push({ sink, resolve: () => resolve(sink), reject });
      if (!Array.isArray(payload)) this.socket.write(payload as Buffer);
      else {
        // One writev for the pieces, without copying them into one buffer first.
        this.socket.cork();
        for (const p of payload) this.socket.write(p);
        this.socket.uncork();
      }
    });
  }

  /** `n` plain replies (no arrays). */
  async call(payload: Buffer, n: number): Promise<Reply[]> {
    return (await this.request(payload, new CollectSink(n))).replies;
  }

  close(): void {
    this.failure ??= new Error(`redis connection to ${this.label} closed`);
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.queue.splice(0)) p.reject(this.failure);
  }

  /** Bytes read; `d` is valid only during this call (the read buffer is reused): copies what it keeps. */
  private onData(d: Buffer): void {
    try {
      let buf = d;
      if (this.have) {
        // A reply was cut at the end of the last read.
        if (this.have + d.length < this.need) {
          this.parts.push(Buffer.from(d));
          this.have += d.length;
          return;
        }
        if (this.needExact) {
          // Its length is known: complete just that reply from the front of d, then go on in d
          // itself (copying one reply, not the whole read).
          const take = this.need - this.have;
          const one = Buffer.concat([...this.parts, d.subarray(0, take)], this.need);
          this.parts = [];
          this.have = 0;
          const used = this.parse(one);
          buf = used === one.length ? d.subarray(take) : Buffer.concat([one.subarray(used), d.subarray(take)]);
        } else {
          buf = Buffer.concat([...this.parts, d], this.have + d.length);
          this.parts = [];
          this.have = 0;
        }
      }
      const pos = this.parse(buf);
      if (pos < buf.length) {
        this.parts = [Buffer.from(buf.subarray(pos))];
        this.have = buf.length - pos;
      }
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
    }
  }

  /** Parse every complete reply in buf; returns where the first incomplete one starts. */
  private parse(buf: Buffer): number {
    const len = buf.length;
    let pos = 0;
    this.need = 1;
    this.needExact = false;
    while (pos < len) {
      const head = this.queue[0];
      if (!head) throw new Error(`redis connection to ${this.label}: reply without a request`);
      const kind = buf[pos]!;
      if (kind === 0x3a /* : */ || kind === 0x24 /* $ */ || kind === 0x2a /* * */) {
        // A number up to CR, parsed here: a native indexOf per reply costs more than the digits.
        let i = pos + 1;
        let neg = false;
        if (buf[i] === 0x2d) {
          neg = true;
          i++;
        }
        let n = 0;
        let c: number | undefined;
        while (i < len && (c = buf[i]) !== 13) {
          n = n * 10 + (c! - 48);
          i++;
        }
        if (i + 1 >= len) {
          this.need = len - pos + 1;
          break;
        }
        if (neg) n = -n;
        const body = i + 2;
        if (kind === 0x3a) {
          head.sink.int(n);
          pos = body;
        } else if (kind === 0x2a) {
          if (n < 0) head.sink.nil();
          else head.sink.array(n);
          pos = body;
        } else if (n < 0) {
          head.sink.nil();
          pos = body;
        } else {
          const end = body + n;
          if (end + 2 > len) {
            this.need = end + 2 - pos;
            this.needExact = true;
            break;
          }
          head.sink.bulk(buf, pos, body, end);
          pos = end + 2;
        }
      } else if (kind === 0x2b /* + */ || kind === 0x2d /* - */) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0) {
          this.need = len - pos + 1;
          break;
        }
        if (kind === 0x2b) head.sink.simple(buf.toString('latin1', pos + 1, nl - 1));
        else head.sink.error(buf.toString('utf8', pos + 1, nl - 1));
        pos = nl + 1;
      } else {
        throw new Error(`redis connection to ${this.label}: unexpected reply type ${JSON.stringify(String.fromCharCode(kind))}`);
      }
      if (head.sink.done) {
        this.queue.shift();
        head.resolve();
      }
    }
    return pos;
  }
}
