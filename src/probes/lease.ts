// HA: a probe's traffic asks the run's lease question where it leaves the process, not only
// when the run starts (ProbeContext.stillOwner). Resolving a name, opening a connection or an
// earlier request of the same run can take a while, and a replica stopped (SIGSTOP) or stalled
// meanwhile would otherwise send when it resumes, after another replica took the check over:
// a second probe at the target, and for a flow or a rate-limit probe a second set of requests.
//
// The gate sits on the socket: every write asks, so each request of a run (a flow's steps, a
// reused connection's next query) is covered, and a refused write sends nothing and closes the
// socket. The only gap left is the one synchronous call from the answer to the write system
// call, which no check inside the process can close (a stop can land after any check); the
// scheduler publishes nothing of a refused run either.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { buildConnector } from 'undici';
import { commonjs, lazy } from './lazy.js';
import { leaseLost } from './types.js';

const undici = lazy(() => import('undici').then(commonjs));

/**
 * Every write of `socket` asks `stillOwner` first; a refusal sends nothing and destroys the
 * socket. For a socket not yet connected too: net.Socket's connect() puts its own write back,
 * so the gate is installed again after it.
 */
export function gateWrites<S extends Duplex>(socket: S, stillOwner: () => boolean): S {
  const write = socket.write;
  const gated = function gatedWrite(this: S, ...args: Parameters<typeof write>): boolean {
    if (stillOwner()) return write.apply(this, args);
    socket.destroy(leaseLost());
    return false;
  } as typeof write;
  socket.write = gated;
  if (socket instanceof Socket) {
    const connect = socket.connect;
    socket.connect = function gatedConnect(this: Socket, ...args: Parameters<typeof connect>) {
      const r = connect.apply(this, args);
      socket.write = gated;
      return r;
    } as typeof connect;
  }
  return socket;
}

/**
 * undici's connector for `options`, gated: it asks once the connection (TCP, TLS) is open (a
 * refusal closes it unused) and gates the socket's writes. `owner` names the question of the
 * run the connection is for at the moment it opens (a Client kept between runs asks its
 * current run's), or nothing outside HA. `build` is undici's buildConnector.
 */
export function gatedConnector(build: typeof buildConnector, options: buildConnector.BuildOptions, owner: () => (() => boolean) | undefined): buildConnector.connector {
  const base = build(options);
  return (opts, callback) =>
    base(opts, (err, socket) => {
      const stillOwner = owner();
      if (err || !socket || !stillOwner) return callback(err, socket as never);
      if (!stillOwner()) {
        socket.destroy();
        return callback(leaseLost(), null);
      }
      callback(null, gateWrites(socket, stillOwner) as never);
    });
}

/** gatedConnector with undici loaded on first use. */
export async function leaseConnector(options: buildConnector.BuildOptions, owner: () => (() => boolean) | undefined): Promise<buildConnector.connector> {
  return gatedConnector((await undici()).buildConnector, options, owner);
}

/**
 * The `connect` option of a run's undici Agent: `options` as they are outside HA (no cost), a
 * gated connector when the run has a lease question.
 */
export async function agentConnect(options: buildConnector.BuildOptions, ctx: { stillOwner?: () => boolean }): Promise<buildConnector.BuildOptions | buildConnector.connector> {
  const { stillOwner } = ctx;
  return stillOwner ? leaseConnector(options, () => stillOwner) : options;
}
