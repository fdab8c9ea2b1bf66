// Real listeners on 127.0.0.1 port 0 for probe tests: HTTP(S) and TLS servers, a server
// that accepts and never answers, one that answers garbage, a closed port, and a
// "blackhole" port whose SYNs go unanswered (a filtered port, for connect timeouts).
import { spawn } from 'node:child_process';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

const HOST = '127.0.0.1';

/** A running listener; close() also destroys its open connections. */
export interface Listener {
  port: number;
  close(): Promise<void>;
}

export interface HttpListener extends Listener {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
}

/** Keys and certificate chain (PEM, leaf first) for a TLS server. */
export interface ServerCert {
  key: string;
  cert: string;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** Tracks a server's sockets so close() does not wait for clients that never hang up. */
function closer(server: net.Server): () => Promise<void> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // TLS servers report the raw TCP socket here too, before the handshake.
  return () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      (server as HttpServer).closeAllConnections?.();
      server.close(() => resolve());
    });
}

/** An HTTP server, or HTTPS when `cert` is given. */
export async function listenHttp(handler: RequestListener, cert?: ServerCert): Promise<HttpListener> {
  const server = cert ? createHttpsServer({ key: cert.key, cert: cert.cert }, handler) : createHttpServer(handler);
  const close = closer(server);
  const port = await listen(server);
  return { port, url: `${cert ? 'https' : 'http'}://${HOST}:${port}`, close };
}

/** A TLS server that completes the handshake and then closes the connection. */
export async function listenTls(cert: ServerCert, opts: tls.TlsOptions = {}): Promise<Listener> {
  const server = tls.createServer({ key: cert.key, cert: cert.cert, ...opts }, (s) => {
    s.on('error', () => {});
    s.end();
  });
  // Handshake failures on the server side are expected in some tests.
  server.on('tlsClientError', () => {});
  const close = closer(server);
  return { port: await listen(server), close };
}

/** Accepts connections and never writes a byte. */
export async function listenHanging(): Promise<Listener> {
  const server = net.createServer((s) => s.on('error', () => {}));
  const close = closer(server);
  return { port: await listen(server), close };
}

/** Answers every connection with `bytes` once the client has sent something (or at once). */
export async function listenGarbage(bytes: string | Buffer, opts: { waitForClient?: boolean } = {}): Promise<Listener> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    if (opts.waitForClient === false) s.end(bytes);
    else s.once('data', () => s.end(bytes));
  });
  const close = closer(server);
  return { port: await listen(server), close };
}

/** A port on 127.0.0.1 with nothing listening (connections are refused). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A port whose connection attempts hang, like a firewalled port. A child process listens
 * with a backlog of 1 and then blocks its event loop, so it never accepts; once the accept
 * queue is full, Linux drops further SYNs and connect() waits until the caller gives up.
 */
export async function listenBlackhole(): Promise<Listener> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ host: '${HOST}', port: 0, backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);
      process.exit(0);
    });`;
  // A bare environment: the test runner's NODE_OPTIONS would load its hooks into the child,
  // and their signal handlers cannot run while the child blocks.
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: {} });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`blackhole listener exited with ${code}`)));
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  child.removeAllListeners('exit');

  // Fill the accept queue: connect until an attempt stays pending.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const s = net.connect(port, HOST);
    s.on('error', () => {});
    fillers.push(s);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 150);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) break;
  }

  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
