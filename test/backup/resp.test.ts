// The raw RESP connection the logical backup and restore use: replies cut at any byte by the
// network (a header, a bulk body, the CRLF after it; a bulk larger than a socket read) are parsed
// exactly as if they had come in one piece, nested arrays (SCAN) included, and a malformed stream
// or a lost connection fails every pending request with a message naming the server.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { RespConn, type ReplySink } from '../../helpers/backup/resp.js';

/** Records what a sink is given, as text; done after `n` events. */
class TraceSink implements ReplySink {
  readonly events: string[] = [];
  constructor(private readonly n: number) {}
  get done(): boolean {
    return this.events.length >= this.n;
  }
  int(n: number): void {
    this.events.push(`int ${n}`);
  }
  bulk(buf: Buffer, head: number, start: number, end: number): void {
    // The element's own encoding must be [head, end + 2): check it here, where the buffer is live.
    const enc = buf.subarray(head, end + 2);
    const expected = Buffer.concat([Buffer.from(`$${end - start}\r\n`), buf.subarray(start, end), Buffer.from('\r\n')]);
    this.events.push(enc.equals(expected) ? `bulk ${end - start} ${buf.subarray(start, end).toString('hex').slice(0, 16)}` : 'bulk with a wrong head');
  }
  nil(): void {
    this.events.push('nil');
  }
  simple(text: string): void {
    this.events.push(`simple ${text}`);
  }
  error(message: string): void {
    this.events.push(`error ${message}`);
  }
  array(n: number): void {
    this.events.push(`array ${n}`);
  }
}

const big = Buffer.alloc(200_000, 0xab);
const REPLY = Buffer.concat([
  Buffer.from(':5\r\n:-2\r\n$5\r\nhe\r\nl\r\n$-1\r\n+OK\r\n-ERR no such key\r\n$0\r\n\r\n'),
  Buffer.from('*2\r\n$2\r\n17\r\n*3\r\n$1\r\na\r\n$3\r\n\r\n$\r\n$2\r\n\xff\x00\r\n', 'latin1'),
  Buffer.from(`$${big.length}\r\n`),
  big,
  Buffer.from('\r\n:12345678901\r\n'),
]);
const EXPECTED = [
  'int 5',
  'int -2',
  `bulk 5 ${Buffer.from('he\r\nl').toString('hex')}`,
  'nil',
  'simple OK',
  'error ERR no such key',
  'bulk 0 ',
  'array 2',
  `bulk 2 ${Buffer.from('17').toString('hex')}`,
  'array 3',
  `bulk 1 ${Buffer.from('a').toString('hex')}`,
  `bulk 3 ${Buffer.from('\r\n$').toString('hex')}`,
  'bulk 2 ff00',
  `bulk ${big.length} ${'ab'.repeat(8)}`,
  'int 12345678901',
];

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** A server that answers any request with `reply`, written in pieces of `piece` bytes, one per tick. */
async function fakeRedis(reply: Buffer, piece: number, after?: (sock: Socket) => void): Promise<number> {
  server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.once('data', async () => {
      for (let o = 0; o < reply.length; o += piece) {
        sock.write(reply.subarray(o, o + piece));
        await new Promise((r) => setTimeout(r, 1));
      }
      after?.(sock);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

describe('RESP replies cut anywhere by the network', () => {
  for (const piece of [1, 2, 3, 7, 13, 4096]) {
    it(`parses the same replies when they arrive in pieces of ${piece} byte${piece > 1 ? 's' : ''}`, async () => {
      // Pieces of 1-13 bytes over the short replies only (the big bulk would take minutes a byte
      // at a time); 4096 cuts the big bulk into many reads.
      const reply = piece < 100 ? REPLY.subarray(0, REPLY.indexOf(Buffer.from(`$${big.length}\r\n`))) : REPLY;
      const events = piece < 100 ? EXPECTED.length - 2 : EXPECTED.length;
      const port = await fakeRedis(reply, piece);
      const conn = await RespConn.open({ host: '127.0.0.1', port }, 0);
      try {
        const sink = await conn.request(Buffer.from('*1\r\n$4\r\nPING\r\n'), new TraceSink(events));
        expect(sink.events).toEqual(EXPECTED.slice(0, events));
      } finally {
        conn.close();
      }
    }, 20_000);
  }
});

describe('RESP connection failures', () => {
  it('a malformed reply fails the pending requests, naming the server', async () => {
    const port = await fakeRedis(Buffer.from(':1\r\n?what\r\n'), 64);
    const conn = await RespConn.open({ host: '127.0.0.1', port }, 0);
    const first = conn.request(Buffer.from('*1\r\n$4\r\nPING\r\n'), new TraceSink(2));
    await expect(first).rejects.toThrow(new RegExp(`^redis connection to 127\\.0\\.0\\.1:${port}: unexpected reply type "\\?"$`));
    await expect(conn.request(Buffer.from('*1\r\n$4\r\nPING\r\n'), new TraceSink(1))).rejects.toThrow(/127\.0\.0\.1/);
  });

  it('a connection closed in the middle of a reply fails the request instead of waiting forever', async () => {
    const port = await fakeRedis(Buffer.from('$10\r\nabc'), 64, (sock) => sock.destroy());
    const conn = await RespConn.open({ host: '127.0.0.1', port }, 0);
    await expect(conn.request(Buffer.from('*1\r\n$4\r\nPING\r\n'), new TraceSink(1))).rejects.toThrow(new RegExp(`^redis connection to 127\\.0\\.0\\.1:${port} closed$`));
  });

  it('a server that stops answering fails the pending request after the reply timeout', async () => {
    const port = await fakeRedis(Buffer.from(':1\r\n'), 64);
    const conn = await RespConn.open({ host: '127.0.0.1', port }, 0, 300);
    // One reply arrives, the second never does.
    await expect(conn.request(Buffer.from('*1\r\n$4\r\nPING\r\n'), new TraceSink(2))).rejects.toThrow(new RegExp(`^redis connection to 127\\.0\\.0\\.1:${port}: no reply for 0\\.3 s$`));
  });
});
