// tcp: can a TCP connection to host:port be opened? A refused or unanswered connection is
// data (open=false), not an error, so a check can just as well require a port to be closed
// ("the database is not reachable from here"). Only a name that does not resolve is an error.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import { defineProbe, ProbeError, type Observation } from './types.js';
import { untilAborted } from './shared.js';

/** How a connection attempt ended. */
export type TcpResult = 'open' | 'refused' | 'timeout' | 'unreachable';

const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET']);
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

type Attempt = { result: TcpResult; code?: string } | { result?: undefined; err: Error };

/** One connection attempt to a resolved address; never rejects. */
function connect(address: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Attempt> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (r: Attempt) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(r);
    };
    // The caller races this promise against the signal; here we only release the socket.
    const onAbort = () => done({ result: 'timeout' });
    const timer = setTimeout(() => done({ result: 'timeout' }), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done({ result: 'open' }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (REFUSED.has(code)) done({ result: 'refused', code });
      else if (UNREACHABLE.has(code)) done({ result: 'unreachable', code });
      else done({ err });
    });
  });
}

export default defineProbe({
  kind: 'tcp',
  description: 'Opens a TCP connection to host:port; reports whether the port is open and how long connecting took.',
  params,
  fields: {
    open: { type: 'boolean', description: 'A TCP connection was established.' },
    connect_ms: { type: 'number', unit: 'ms', description: 'Time from the first SYN until the attempt settled (connected, refused or timed out); excludes DNS.' },
    result: { type: 'string', description: 'open | refused | timeout | unreachable' },
    address: { type: 'string', description: 'The IP address the host resolved to.' },
  },

  validate({ host }) {
    return /[/:]/.test(host) && !net.isIP(host) ? [`host "${host}" must be a host name or IP address, not a URL (the port goes in port)`] : [];
  },

  async run({ host, port, connectTimeoutMs }, { signal }): Promise<Observation> {
    const target = `${host}:${port}`;
    let address: string;
    try {
      // dns.lookup takes no signal: race it so an aborted run does not wait for the resolver.
      ({ address } = await untilAborted(lookup(host), signal, () => `resolving ${host} did not finish before the check timeout`));
    } catch (err) {
      if (err instanceof ProbeError) throw err;
      const code = errCode(err);
      if (DNS.has(code)) return { fields: {}, error: { reason: 'dns', message: `${host} does not resolve (${code})` } };
      throw err;
    }

    const started = performance.now();
    const attempt = await untilAborted(
      connect(address, port, connectTimeoutMs, signal),
      signal,
      () => `connecting to ${target} did not finish before the check timeout (connectTimeoutMs ${connectTimeoutMs} is longer than it)`,
    );
    const connectMs = performance.now() - started;
    const via = address === host ? '' : ` (${address})`;
    if (attempt.result === undefined) {
      // Neither refused nor a known routing failure: say what the system said.
      return { fields: { address }, error: { reason: 'error', message: `connecting to ${target}${via} failed: ${attempt.err.message}` } };
    }
    const fields = { open: attempt.result === 'open', connect_ms: connectMs, result: attempt.result, address };
    const message = {
      open: `${target}${via} is open (connected in ${connectMs.toFixed(1)} ms)`,
      refused: `${target}${via} refused the connection (${attempt.code})`,
      timeout: `${target}${via} did not answer within ${connectTimeoutMs} ms (filtered or down)`,
      unreachable: `${target}${via} is unreachable (${attempt.code})`,
    }[attempt.result];
    return { value: fields.open ? 1 : 0, fields, message };
  },
});
