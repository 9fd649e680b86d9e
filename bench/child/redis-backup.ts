// Child process of the Redis benchmark, so peak RSS is the backup's own (not the driver's).
//   node --import tsx bench/child/redis-backup.ts backup  <redis-url> <dir> [auto|rdb|scan]
//                                                                            logical backup into dir (path: auto)
//   node --import tsx bench/child/redis-backup.ts restore <redis-url> <dir>   restore dir into the server
//   node --import tsx bench/child/redis-backup.ts rdb     <redis-url> <file>  our physical RDB fetch
// Prints one JSON line: {"keys", "bytes", "ms", "maxRssKb"} (backup: also "source", the path the node
// was read with, and "reason"); ms covers the operation only (the client is connected first).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { backupRedisLogical, redisSource, restoreRedisLogical, type RedisBackupPath } from '../../helpers/backup/redis-logical.js';
import { fetchRdb } from '../../helpers/backup/redis-rdb.js';
import type { RedisDbSection } from '../../helpers/backup/archive.js';

async function main(): Promise<void> {
  const [mode, url, path, via] = process.argv.slice(2);
  if (!mode || !url || !path) throw new Error('usage: redis-backup.ts backup|restore|rdb <redis-url> <dir|file>');
  const u = new URL(url);
  let out: { keys: number; bytes: number; ms: number; source?: string; reason?: string };
  if (mode === 'rdb') {
    const t0 = performance.now();
    const r = await fetchRdb({ host: u.hostname, port: Number(u.port), file: path });
    out = { keys: 0, bytes: r.bytes, ms: performance.now() - t0 };
  } else {
    const client = new Redis(url, { maxRetriesPerRequest: 3 });
    try {
      // Connected before the clock starts, as the runbook's client is by its preflight: the time is
      // the operation's, not that of a fresh ioredis client's connect and ready check (tens of ms
      // in a new process, which would weigh on the 100k figures).
      await client.ping();
      if (mode === 'backup') {
        const t0 = performance.now();
        const r = await backupRedisLogical(redisSource(client), { root: path, path: (via ?? 'auto') as RedisBackupPath });
        const ms = performance.now() - t0;
        writeFileSync(join(path, 'bench-result.json'), JSON.stringify(r));
        const keys = r.dbs.reduce((s, d) => s + d.keys, 0);
        out = { keys, bytes: Object.values(r.files).reduce((s, f) => s + f.bytes, 0), ms, source: r.nodes[0]?.source, reason: r.nodes[0]?.reason };
      } else if (mode === 'restore') {
        const { dbs } = JSON.parse(readFileSync(join(path, 'bench-result.json'), 'utf8')) as { dbs: RedisDbSection[] };
        const t0 = performance.now();
        const r = await restoreRedisLogical(client, { root: path, dbs });
        out = { keys: r.restored, bytes: r.bytes, ms: performance.now() - t0 };
      } else throw new Error(`unknown mode ${mode}`);
    } finally {
      client.disconnect();
    }
  }
  process.stdout.write(JSON.stringify({ ...out, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`redis-backup child: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
