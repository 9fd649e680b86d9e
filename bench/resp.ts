// Generated Redis data for the backup benchmark: RESP commands for N keys of mixed types, written
// as a file that `redis-cli --pipe` loads. Deterministic for a given N.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

/** One RESP array command. */
export function respCommand(args: string[]): string {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return s;
}

const TYPES = ['string', 'hash', 'list', 'set', 'zset'] as const;

/** Cheap deterministic filler (xorshift), so values differ per key and do not compress away. */
function filler(seed: number, len: number): string {
  let x = (seed * 2654435761) >>> 0 || 1;
  let s = '';
  while (s.length < len) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    s += x.toString(36);
  }
  return s.slice(0, len);
}

/** The commands that create key i: one of five types in turn; every 10th key gets a long TTL. */
export function keyCommands(i: number): string[][] {
  const type = TYPES[i % TYPES.length]!;
  const key = keyName(i);
  const v = (j: number, len: number) => filler(i * 16 + j, len);
  let cmds: string[][];
  switch (type) {
    case 'string':
      cmds = [['SET', key, v(0, 120)]];
      break;
    case 'hash':
      cmds = [['HSET', key, 'state', 'SUCCEEDED', 'topic', 'job.default', 'owner', v(1, 16), 'payload', v(2, 64)]];
      break;
    case 'list':
      cmds = [['RPUSH', key, v(1, 24), v(2, 24), v(3, 24), v(4, 24), v(5, 24)]];
      break;
    case 'set':
      cmds = [['SADD', key, v(1, 12), v(2, 12), v(3, 12), v(4, 12), v(5, 12)]];
      break;
    case 'zset':
      cmds = [['ZADD', key, '1', v(1, 12), '2', v(2, 12), '3', v(3, 12), '4', v(4, 12), '5', v(5, 12)]];
      break;
  }
  if (i % 10 === 0) cmds.push(['PEXPIRE', key, String(7 * 24 * 3600 * 1000)]);
  return cmds;
}

/** Write the RESP for keys 0..n-1 to file (respecting backpressure); returns the command count. */
export async function writeRespFile(file: string, n: number): Promise<{ commands: number; bytes: number }> {
  const out = createWriteStream(file);
  let commands = 0;
  let bytes = 0;
  let buf = '';
  for (let i = 0; i < n; i++) {
    for (const c of keyCommands(i)) {
      buf += respCommand(c);
      commands++;
    }
    if (buf.length > 1 << 20) {
      bytes += Buffer.byteLength(buf);
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  bytes += Buffer.byteLength(buf);
  out.end(buf);
  await once(out, 'finish');
  return { commands, bytes };
}

/** The key keyCommands(i) creates. */
export function keyName(i: number): string {
  return `bench:${TYPES[i % TYPES.length]}:${i}`;
}

/** One `command` <key> per key 0..n-1, as RESP for redis-cli --pipe (the server's cost of that command alone). */
export async function writePerKeyFile(file: string, n: number, command: 'DUMP' | 'PTTL'): Promise<void> {
  const out = createWriteStream(file);
  let buf = '';
  for (let i = 0; i < n; i++) {
    buf += respCommand([command, keyName(i)]);
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  out.end(buf);
  await once(out, 'finish');
}
