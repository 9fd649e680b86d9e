// A loopback port that refuses connections and that no other process can take while a test uses
// it. Closing a server is not enough: another process (up to four sandboxes start at once) may be
// given the freed port and answer there. A socket that is bound but never listens holds the port
// (a later bind gets EADDRINUSE) while every connect is refused (RST). Node cannot bind a TCP
// socket without listening, so a tiny perl child (perl-base is part of every Debian) holds it.
import { spawn } from 'node:child_process';

export interface ClosedPort {
  port: number;
  url: string;
  release(): void;
}

const HOLD = [
  'use Socket;',
  'socket(S, PF_INET, SOCK_STREAM, 0) or die "socket: $!";',
  'bind(S, sockaddr_in(0, INADDR_LOOPBACK)) or die "bind: $!";',
  'my ($port) = sockaddr_in(getsockname(S));',
  '$| = 1; print "$port\\n";',
  '<STDIN>;', // hold until the test closes stdin (or dies)
].join(' ');

export function holdClosedPort(): Promise<ClosedPort> {
  return new Promise((resolve, reject) => {
    const child = spawn('perl', ['-e', HOLD], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.on('error', reject);
    child.stderr!.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`perl exited (${code}) before holding a port: ${err.trim()}`)));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (!m) return;
      const port = Number(m[1]);
      resolve({ port, url: `http://127.0.0.1:${port}`, release: () => child.kill() });
    });
  });
}
