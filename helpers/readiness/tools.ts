// What the backup tools accept, as documented by the tools themselves: redis-cli 7.x (`redis-cli
// --help`) and natscli (`nats --help-long`: global flags, the `stream`/`str` command, its `backup`
// subcommand and the `snapshot` alias, `account backup`). A command is read into what it does
// (host dialed, TLS material, dump target, streams) and the flags the tool does not have.
import { parseFlags, type FlagSpec, type ShellCommand } from './shell.js';

const base = (p: string | undefined) => (p ?? '').split('/').pop() ?? '';

export const REDIS_CLI: FlagSpec = {
  withValue: ['-h', '-p', '-s', '-a', '-u', '-r', '-i', '-n', '-d', '-D', '-e', '--user', '--pass', '--sni', '--cacert', '--cacertdir', '--tls-ciphers', '--tls-ciphersuites', '--cert', '--key', '--rdb', '--functions-rdb', '--pipe-timeout', '--memkeys-samples', '--pattern', '--count', '--quoted-pattern', '--intrinsic-latency', '--eval', '--ldb-sync-mode', '--latency-history', '--latency-dist', '--lru-test', '--cluster',
    // `--cluster <subcommand>` options
    '--cluster-replicas', '--cluster-weight', '--cluster-timeout', '--cluster-pipeline', '--cluster-threshold', '--cluster-from', '--cluster-to', '--cluster-slots', '--cluster-from-user', '--cluster-from-pass', '--cluster-master-id'],
  boolean: ['--cluster-yes', '--cluster-search-multiple-owners', '--cluster-use-empty-masters', '--cluster-copy', '--cluster-replace', '--cluster-from-askpass', '--cluster-only-masters', '--cluster-only-replicas', '--cluster-fix-with-unreachable-masters', '--cluster-simulate', '-2', '-3', '-x', '-X', '-c', '-4', '-6', '--tls', '--insecure', '--raw', '--no-raw', '--quoted-input', '--csv', '--json', '--quoted-json', '--show-pushes', '--stat', '--latency', '--replica', '--slave', '--pipe', '--bigkeys', '--memkeys', '--hotkeys', '--scan', '--ldb', '--verbose', '--no-auth-warning', '--askpass', '--help', '--version'],
};

/** natscli global flags (they may appear before or after the subcommand). */
export const NATS_GLOBAL: FlagSpec = {
  withValue: ['-s', '--server', '--user', '--password', '--connection-name', '--creds', '--nkey', '--tlscert', '--tlskey', '--tlsca', '--socks-proxy', '--colors', '--timeout', '--context', '--js-api-prefix', '--js-event-prefix', '--js-domain', '--domain', '--inbox-prefix', '--token'],
  boolean: ['--tlsfirst', '--trace', '--no-context', '--help', '--help-long', '--help-man', '--version', '-v'],
  negatable: true,
};

/** `nats stream backup|snapshot <stream> <dir>` and `nats account backup <dir>` flags. */
const NATS_BACKUP: FlagSpec = { withValue: [], boolean: ['--progress', '--check', '--consumers', '--force', '-f'], negatable: true };
const NATS_RESTORE: FlagSpec = { withValue: ['--replicas', '--config', '--cluster', '--tag'], boolean: ['--progress'], negatable: true };

/** natscli command aliases (kingpin `.Alias`). */
const NATS_COMMANDS: Record<string, string> = { stream: 'stream', str: 'stream', account: 'account', a: 'account' };
const NATS_STREAM_SUB: Record<string, string> = { backup: 'backup', snapshot: 'backup', restore: 'restore' };

export interface RedisCliCall {
  cmd: ShellCommand;
  host?: string;
  port?: string;
  tls: boolean;
  cacert?: string;
  cert?: string;
  key?: string;
  /** `--rdb <file>`: dumps the node it dials. */
  rdb?: string;
  /** `BGSAVE`/`SAVE`: the server writes a snapshot on its own volume. */
  serverSave: boolean;
  /** Redis command words (`cluster nodes`, `ping`). */
  command: string[];
  /** `--cluster <sub>` and its arguments. */
  cluster?: { sub: string; args: string[] };
  unknownFlags: string[];
}

export function readRedisCli(cmd: ShellCommand): RedisCliCall | undefined {
  if (base(cmd.argv[0]) !== 'redis-cli') return undefined;
  const p = parseFlags(cmd.argv.slice(1), REDIS_CLI);
  const get = (f: string) => {
    const v = p.flags.get(f);
    return typeof v === 'string' ? v : undefined;
  };
  let host = get('-h');
  let port = get('-p');
  let tls = p.flags.has('--tls');
  const uri = get('-u');
  if (uri) {
    const m = /^(rediss?):\/\/(?:[^@/]*@)?([^:/]+)(?::(\d+))?/.exec(uri);
    if (m) {
      tls ||= m[1] === 'rediss';
      host ??= m[2];
      port ??= m[3];
    }
  }
  const clusterSub = get('--cluster');
  const words = p.positionals.map((w) => w.toLowerCase());
  return {
    cmd,
    host,
    port,
    tls,
    cacert: get('--cacert'),
    cert: get('--cert'),
    key: get('--key'),
    rdb: get('--rdb'),
    serverSave: !clusterSub && (words[0] === 'bgsave' || words[0] === 'save'),
    command: clusterSub ? [] : p.positionals,
    cluster: clusterSub ? { sub: clusterSub, args: p.positionals } : undefined,
    unknownFlags: p.unknown,
  };
}

export interface NatsCall {
  cmd: ShellCommand;
  /** `stream backup` (snapshot is its alias), `stream restore`, `account backup`, or another path. */
  action: 'stream-backup' | 'stream-restore' | 'account-backup' | 'other';
  /** The command words as written (`str snapshot`), for evidence. */
  path: string[];
  server?: string;
  tlsca?: string;
  tlscert?: string;
  tlskey?: string;
  context?: string;
  stream?: string;
  target?: string;
  unknownFlags: string[];
}

export function readNats(cmd: ShellCommand, env: Record<string, string> = {}): NatsCall | undefined {
  if (base(cmd.argv[0]) !== 'nats') return undefined;
  const args = cmd.argv.slice(1);
  // Global flags first (a flag with a value consumes the next word), then the command words; the
  // subcommand's own flags may follow anywhere after them.
  const leading: string[] = [];
  const cmdWords: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('-')) {
      leading.push(a);
      const name = a.split('=')[0];
      // A value flag consumes the next word; so does a flag natscli lacks (`--tls-ca FILE`), unless
      // that word is a command.
      const known = NATS_GLOBAL.withValue.includes(name) || NATS_GLOBAL.boolean.includes(name) || (name.startsWith('--no-') && NATS_GLOBAL.boolean.includes(`--${name.slice(5)}`));
      if (!a.includes('=') && (NATS_GLOBAL.withValue.includes(name) || (!known && args[i + 1] !== undefined && !args[i + 1].startsWith('-') && !(args[i + 1] in NATS_COMMANDS)))) leading.push(args[++i]);
      continue;
    }
    cmdWords.push(...args.slice(i));
    break;
  }
  const top = NATS_COMMANDS[cmdWords[0] ?? ''];
  let action: NatsCall['action'] = 'other';
  let sub: FlagSpec | undefined;
  let pathLen = 1;
  if (top === 'stream') {
    const s = NATS_STREAM_SUB[cmdWords[1] ?? ''];
    pathLen = 2;
    if (s === 'backup') {
      action = 'stream-backup';
      sub = NATS_BACKUP;
    } else if (s === 'restore') {
      action = 'stream-restore';
      sub = NATS_RESTORE;
    }
  } else if (top === 'account' && cmdWords[1] === 'backup') {
    action = 'account-backup';
    sub = NATS_BACKUP;
    pathLen = 2;
  }
  const spec: FlagSpec = sub ? { withValue: [...NATS_GLOBAL.withValue, ...sub.withValue], boolean: [...NATS_GLOBAL.boolean, ...sub.boolean], negatable: true } : NATS_GLOBAL;
  // Leading words are all global flags (an unknown one took its value above): parse them apart.
  const globals = parseFlags(leading, { ...NATS_GLOBAL, unknownTakesValue: true });
  const tail = parseFlags(cmdWords.slice(pathLen), spec);
  const parsed = { flags: new Map([...globals.flags, ...tail.flags]), positionals: tail.positionals, unknown: [...globals.unknown, ...tail.unknown] };
  const get = (...names: string[]) => {
    for (const n of names) {
      const v = parsed.flags.get(n);
      if (typeof v === 'string') return v;
    }
    return undefined;
  };
  const pos = parsed.positionals;
  return {
    cmd,
    action,
    path: cmdWords.slice(0, pathLen),
    // natscli reads NATS_URL / NATS_CA / NATS_CERT / NATS_KEY / NATS_CONTEXT when the flags are absent.
    server: get('--server', '-s') ?? env.NATS_URL,
    tlsca: get('--tlsca') ?? env.NATS_CA,
    tlscert: get('--tlscert') ?? env.NATS_CERT,
    tlskey: get('--tlskey') ?? env.NATS_KEY,
    context: get('--context') ?? env.NATS_CONTEXT,
    stream: action === 'stream-backup' ? pos[0] : undefined,
    target: action === 'stream-backup' ? pos[1] : action === 'account-backup' ? pos[0] : undefined,
    // Only judged on backup/restore: other subcommands have flags this list does not model.
    unknownFlags: sub ? parsed.unknown : globals.unknown,
  };
}
