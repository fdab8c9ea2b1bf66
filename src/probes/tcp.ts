// tcp: can a TCP connection to host:port be opened? A refused or unanswered connection is
// data (open=false), not an error, so a check can just as well require a port to be closed
// ("the database is not reachable from here"). Only a name that does not resolve is an error.
//
// What counts as open, the way the kernel sees it (and bash's /dev/tcp and blackbox_exporter's
// tcp_connect, which this probe is compared with in its test):
//  - the handshake completed: open, even when the peer resets the connection right after
//    (a listener with SO_LINGER {1,0}, a proxy refusing this client): ECONNRESET during a
//    connect can only come from an established connection, and a busy event loop sees it
//    before the connect; something is listening there (result "reset");
//  - RST in answer to the SYN (nothing listens, or a firewall rejects): ECONNREFUSED, closed;
//  - no answer within connectTimeoutMs (filtered, down, half-open peer dropping SYNs): closed;
//  - a name with several addresses (A and AAAA) is open when any of them is: each is tried,
//    at once, so a port closed on IPv4 but open on IPv6 is not a false "closed".
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import { assertLease, defineProbe, ProbeError, type Observation } from './types.js';
import { untilAborted } from './shared.js';

/** How a connection attempt ended. */
export type TcpResult = 'open' | 'reset' | 'refused' | 'timeout' | 'unreachable';

/** Errors that end an attempt whose handshake had completed: the port is open. */
const RESET = new Set(['ECONNRESET', 'EPIPE']);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);

const params = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'Host name or IP address to connect to.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port.' }),
    connectTimeoutMs: Type.Integer({
      minimum: 1,
      default: 3000,
      description: 'Give up on an unanswered connection after this many ms (result "timeout"). Keep it below the check timeout.',
    }),
  },
  { additionalProperties: false },
);

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? '';
}

type Attempt = { address: string; ms: number } & ({ result: TcpResult; code?: string } | { result?: undefined; err: Error });

/** One connection attempt to a resolved address; never rejects. */
function connect(address: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Attempt> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (r: { result: TcpResult; code?: string } | { err: Error }) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ address, ms: performance.now() - started, ...r });
    };
    // The caller races this promise against the signal; here we only release the socket.
    const onAbort = () => done({ result: 'timeout' });
    const timer = setTimeout(() => done({ result: 'timeout' }), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done({ result: 'open' }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (code === 'ECONNREFUSED') done({ result: 'refused', code });
      else if (RESET.has(code)) done({ result: 'reset', code });
      else if (UNREACHABLE.has(code)) done({ result: 'unreachable', code });
      else done({ err });
    });
  });
}

const isOpen = (a: Attempt) => a.result === 'open' || a.result === 'reset';

export default defineProbe({
  kind: 'tcp',
  description: 'Opens a TCP connection to host:port; reports whether the port is open and how long connecting took.',
  params,
  fields: {
    open: { type: 'boolean', description: 'A TCP connection was established.' },
    connect_ms: { type: 'number', unit: 'ms', description: 'Time from the first SYN until the attempt settled (connected, refused or timed out); excludes DNS.' },
    result: { type: 'string', description: 'open | reset (open: accepted, then reset) | refused | timeout | unreachable' },
    address: { type: 'string', description: 'The address that decided: the first open one, else the first the host resolved to.' },
    addresses: { type: 'number', description: 'How many addresses the host resolved to (each was tried).' },
  },

  validate({ host }) {
    return /[/:]/.test(host) && !net.isIP(host) ? [`host "${host}" must be a host name or IP address, not a URL (the port goes in port)`] : [];
  },

  async run({ host, port, connectTimeoutMs }, { signal, stillOwner }): Promise<Observation> {
    const target = `${host}:${port}`;
    let addresses: string[];
    try {
      // dns.lookup takes no signal: race it so an aborted run does not wait for the resolver.
      const found = await untilAborted(lookup(host, { all: true }), signal, () => `resolving ${host} did not finish before the check timeout`);
      addresses = [...new Set(found.map((a) => a.address))];
    } catch (err) {
      if (err instanceof ProbeError) throw err;
      const code = errCode(err);
      if (DNS.has(code)) return { fields: {}, error: { reason: 'dns', message: `${host} does not resolve (${code})` } };
      throw err;
    }

    // HA: resolving may have taken a while, or the process was stopped meanwhile (lease.ts).
    assertLease(stillOwner, 'connection');
    const attempts = await untilAborted(
      Promise.all(addresses.map((a) => connect(a, port, connectTimeoutMs, signal))),
      signal,
      () => `connecting to ${target} did not finish before the check timeout (connectTimeoutMs ${connectTimeoutMs} is longer than it)`,
    );
    // Open when any address is; otherwise the first address (the resolver's preference) speaks.
    const decided = attempts.find(isOpen) ?? attempts[0]!;
    const via = (a: Attempt) => (a.address === host ? '' : ` (${a.address})`);
    if (decided.result === undefined) {
      // Neither refused nor a known routing failure: say what the system said.
      return { fields: { address: decided.address }, error: { reason: 'error', message: `connecting to ${target}${via(decided)} failed: ${decided.err.message}` } };
    }
    const describe = (a: Attempt & { result: TcpResult; code?: string }) =>
      ({
        open: `is open (connected in ${a.ms.toFixed(1)} ms)`,
        reset: `is open: it accepted the connection and reset it (${a.code}), so something listens there`,
        refused: `refused the connection (${a.code})`,
        timeout: `did not answer within ${connectTimeoutMs} ms (filtered or down)`,
        unreachable: `is unreachable (${a.code})`,
      })[a.result];
    const fields = { open: isOpen(decided), connect_ms: decided.ms, result: decided.result, address: decided.address, addresses: addresses.length };
    let message = `${target}${via(decided)} ${describe(decided)}`;
    const others = attempts.filter((a) => a !== decided);
    if (others.length > 0) {
      message += `; ${others.map((a) => `${a.address} ${a.result === undefined ? `failed: ${a.err.message}` : describe(a as Attempt & { result: TcpResult })}`).join('; ')}`;
    }
    return { value: fields.open ? 1 : 0, fields, message };
  },
});
