// CPU per probe of the service against prometheus-blackbox-exporter (Debian's package), probing
// the same local target at the same rate. Blackbox probes when asked (GET /probe), so a driver
// here asks it for every target once a second, as Prometheus would with a 1 s scrape interval;
// the service schedules the same checks itself. Only the prober's own process is measured
// (user + system CPU from /proc), over the same window, alternating the two sides.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Pool } from 'undici';
import { alternate, cpuSeconds, freePort, median, note, report, sleep, start, startServe, sumMetric, tempDir, until } from './common.js';

export const BLACKBOX = '/usr/bin/prometheus-blackbox-exporter';

interface Target {
  /** What the checks probe: host:port (tcp) or a URL (http). */
  address: string;
  close(): void;
}

/** A target in this process: a TCP port that accepts and closes, or an HTTP server answering 200 "ok". */
async function target(kind: 'tcp' | 'http'): Promise<Target> {
  const sockets = new Set<Socket>();
  const server =
    kind === 'tcp'
      ? createServer((s) => {
          s.on('error', () => {});
          s.end();
        })
      : http.createServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('ok\n');
        });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    address: kind === 'tcp' ? `127.0.0.1:${port}` : `http://127.0.0.1:${port}/`,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

function checklist(kind: 'tcp' | 'http', n: number, address: string): string {
  const [host, port] = address.split(':');
  const probe =
    kind === 'tcp'
      ? `probe: tcp\n    with: { host: ${host}, port: ${port} }\n    expect: ["open == true"]`
      : `probe: http\n    with: { url: "${address}" }\n    expect: ["status == 200"]`;
  return [
    'apiVersion: readiness/v1',
    `checklist: bench-${kind}`,
    'defaults: { interval: 1s, timeout: 900ms }',
    'checks:',
    ...Array.from({ length: n }, (_, i) => `  - id: ${kind}-${i}\n    title: ${kind} ${i}\n    section: bench\n    severity: high\n    phase: pre-deploy\n    ${probe}`),
  ].join('\n');
}

const BLACKBOX_CONFIG = `modules:
  http_2xx:
    prober: http
    timeout: 900ms
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 900ms
    tcp:
      preferred_ip_protocol: ip4
`;

interface Sample {
  cpuPerProbeMs: number;
  probesPerS: number;
}

/** The service probing `n` checks @1 s; CPU per completed run over the window. */
async function project(kind: 'tcp' | 'http', n: number, address: string, windowS: number): Promise<Sample> {
  // 64 at once, as many as blackbox gets from the driver's connections: the default cap of 16
  // makes runs queue on a loaded machine, and a queued run's slot counts as in progress.
  const s = await startServe(checklist(kind, n, address), { args: ['--concurrency', '64'] });
  try {
    const runs = async () => sumMetric(await (await fetch(`${s.url}/metrics`)).text(), 'readiness_check_runs_total');
    await until('every check ran', 60_000, async () => ((await runs()) >= n ? true : undefined));
    await sleep(2000);
    const r0 = await runs();
    const c0 = cpuSeconds(s.pid);
    const t0 = performance.now();
    await sleep(windowS * 1000);
    const c1 = cpuSeconds(s.pid);
    const elapsed = (performance.now() - t0) / 1000;
    const done = (await runs()) - r0;
    return { cpuPerProbeMs: ((c1 - c0) * 1000) / done, probesPerS: done / elapsed };
  } finally {
    await s.stop();
  }
}

/** blackbox_exporter asked to probe each of `n` targets once a second, spread over the second. */
async function blackbox(kind: 'tcp' | 'http', n: number, address: string, windowS: number): Promise<Sample> {
  const dir = tempDir('blackbox');
  const cfg = join(dir, 'blackbox.yml');
  writeFileSync(cfg, BLACKBOX_CONFIG);
  const port = await freePort();
  const p = start(BLACKBOX, [`--config.file=${cfg}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn']);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32 });
  const module = kind === 'tcp' ? 'tcp_connect' : 'http_2xx';
  const path = `/probe?module=${module}&target=${encodeURIComponent(address)}`;
  let ok = 0;
  let failed = 0;
  let stop = false;
  try {
    await until('blackbox listening', 30_000, async () => ((await fetch(`http://127.0.0.1:${port}/-/healthy`)).ok ? true : undefined));
    // One scrape loop per target, like Prometheus: offset within the second, then every 1 s.
    const loops = Array.from({ length: n }, async (_, i) => {
      await sleep((1000 * i) / n);
      let next = performance.now();
      while (!stop) {
        try {
          const res = await pool.request({ method: 'GET', path, headersTimeout: 5000, bodyTimeout: 5000 });
          const body = await res.body.text();
          if (res.statusCode === 200 && /^probe_success 1$/m.test(body)) ok++;
          else failed++;
        } catch {
          failed++;
        }
        next += 1000;
        await sleep(Math.max(0, next - performance.now()));
      }
    });
    await sleep(3000);
    const o0 = ok;
    const c0 = cpuSeconds(p.pid);
    const t0 = performance.now();
    await sleep(windowS * 1000);
    const c1 = cpuSeconds(p.pid);
    const elapsed = (performance.now() - t0) / 1000;
    const done = ok - o0;
    stop = true;
    await Promise.all(loops);
    if (failed > 0) note(`blackbox: ${failed} probes failed or errored`);
    return { cpuPerProbeMs: ((c1 - c0) * 1000) / done, probesPerS: done / elapsed };
  } finally {
    stop = true;
    await pool.close();
    await p.stop();
  }
}

/** Runs the comparison and prints the result line. */
export async function probeCpuBench(kind: 'tcp' | 'http', opts: { n: number; windowS: number; rounds: number; goal: number }): Promise<void> {
  const t = await target(kind);
  note(`probe-cpu-${kind}: ${opts.n} ${kind} checks @1 s against ${t.address}, ${opts.windowS} s windows, ${opts.rounds} rounds`);
  try {
    const res = await alternate(
      opts.rounds,
      async () => {
        const r = await project(kind, opts.n, t.address, opts.windowS);
        note(`readiness-exporter: ${r.probesPerS.toFixed(0)} probes/s, ${r.cpuPerProbeMs.toFixed(3)} ms CPU/probe`);
        return r;
      },
      async () => {
        const r = await blackbox(kind, opts.n, t.address, opts.windowS);
        note(`blackbox_exporter: ${r.probesPerS.toFixed(0)} probes/s, ${r.cpuPerProbeMs.toFixed(3)} ms CPU/probe`);
        return r;
      },
    );
    const p = median(res.project.map((r) => r.cpuPerProbeMs));
    const a = median(res.anchor.map((r) => r.cpuPerProbeMs));
    report(`${kind} probe CPU vs blackbox_exporter`, p, a, 'ms/probe', opts.goal, true);
  } finally {
    t.close();
  }
}
