// A TLS front for the sandbox gateway: terminates TLS on its own loopback port and pipes bytes to
// the plain listener (HTTP and WebSocket alike), the way an ingress or proxy fronts Cordum.
import { readFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

export async function startTlsFront(opts: { port: number; upstreamPort: number; cert: string; key: string }): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<TLSSocket>();
  const server = createServer({ cert: readFileSync(opts.cert), key: readFileSync(opts.key) }, (tls) => {
    sockets.add(tls);
    const up = connect({ host: '127.0.0.1', port: opts.upstreamPort });
    const end = () => {
      tls.destroy();
      up.destroy();
      sockets.delete(tls);
    };
    tls.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    tls.pipe(up).pipe(tls);
  });
  server.on('tlsClientError', () => undefined); // a client that fails the handshake is its own problem
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  return {
    // Port 0 means "any free one": the bound port is the one reported.
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
