// The anchors that run as child processes (started with `node --import tsx`):
//
//   anchors.ts prom-client <port> <checks>   a bare prom-client registry, 5 gauges with one
//                                            series per check each, served at GET /metrics
//   anchors.ts fastify <port> <file>          a bare fastify server answering GET /readiness
//                                            with the bytes of <file> (application/json)
//
// Each prints "listening" once it accepts connections.
import { readFileSync } from 'node:fs';

const [kind, port, arg] = process.argv.slice(2);

if (kind === 'prom-client') {
  const { Gauge, Registry } = await import('prom-client');
  const http = await import('node:http');
  const register = new Registry();
  const n = Number(arg);
  const names = ['passing', 'value', 'last_run_timestamp_seconds', 'interval_seconds', 'duration_seconds'];
  for (const [k, name] of names.entries()) {
    const g = new Gauge({ name: `anchor_check_${name}`, help: `Anchor family ${k}.`, labelNames: ['check'], registers: [register] });
    for (let i = 0; i < n; i++) g.set({ check: `tcp-${i}` }, i * (k + 1) + 0.5);
  }
  const server = http.createServer((req, res) => {
    void register.metrics().then((text) => {
      res.writeHead(200, { 'content-type': register.contentType });
      res.end(text);
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
} else if (kind === 'fastify') {
  const { default: Fastify } = await import('fastify');
  const body = readFileSync(arg!);
  const app = Fastify({ logger: false });
  app.get('/readiness', async (_req, reply) => reply.type('application/json; charset=utf-8').send(body));
  await app.listen({ port: Number(port), host: '127.0.0.1' });
  console.log('listening');
} else {
  throw new Error(`unknown anchor ${kind}`);
}
