// Memory and CPU of the service running the shipped checklist, the figures the resource
// requests and limits in deploy/ are sized from (docs/deploy.md, "Resources").
//
//   npm run build
//   unshare --net sh -c 'ip link set lo up && exec npx tsx bench/k8s-footprint.ts [seconds=180]'
//
// It must run in a network namespace with only loopback (it refuses otherwise): the shipped
// checklist names public hosts, and here every networked check fails at once instead of
// sending a packet. So the CPU figure is a floor (in a cluster each probe does its TLS
// handshakes and queries); memory is close to real, plus what the Kubernetes informers cache
// (that grows with the objects in the measured namespaces). While it runs, it plays Prometheus
// (/metrics every 15 s), a deploy gate (/readiness every 5 s) and the kubelet (/healthz and
// /readyz every 10 s), and samples the process's RSS and CPU time from /proc every second.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const seconds = Number(process.argv[2] ?? 180);
// /proc/net/dev lists the interfaces of this process's network namespace (/sys/class/net
// shows the namespace sysfs was mounted in).
const interfaces = readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean);
if (interfaces.some((i) => i !== 'lo')) {
  console.error(`refusing to run: network interfaces ${interfaces.join(', ')} (run it under unshare --net, see the header)`);
  process.exit(2);
}

const port = 9747;
const dataDir = mkdtempSync(join(tmpdir(), 'footprint-'));
const t0 = performance.now();
const child = spawn(process.execPath, ['dist/main.js', 'serve', '--port', String(port), '--data-dir', dataDir], {
  env: { PATH: process.env.PATH, NODE_ENV: 'production', READINESS_LOG_LEVEL: 'warn', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const pid = child.pid!;
const ticks = 100; // USER_HZ on Linux
const cpuSeconds = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks;
};
const status = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.arrayBuffer().then(() => r.status), () => 0);

// Start-up: until /readyz answers 200.
for (;;) {
  if ((await get('/readyz')) === 200) break;
  if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}`);
  await new Promise((r) => setTimeout(r, 50));
}
const startMs = performance.now() - t0;
const startCpu = cpuSeconds();
const startRss = status('VmRSS');

const timers = [
  setInterval(() => void get('/metrics'), 15_000),
  setInterval(() => void get('/readiness'), 5_000),
  setInterval(() => void get('/healthz').then(() => get('/readyz')), 10_000),
];
const rss: number[] = [];
const cpu: number[] = [];
for (let s = 0; s < seconds; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  rss.push(status('VmRSS'));
  cpu.push(cpuSeconds());
}
for (const t of timers) clearInterval(t);
const hwm = status('VmHWM');
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));
rmSync(dataDir, { recursive: true, force: true });

const sorted = [...rss].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const windows = cpu.slice(10).map((c, i) => (c - cpu[i]!) / 10);
const mib = (n: number) => `${n.toFixed(1)} MiB`;
console.log(`start-up: ${(startMs / 1000).toFixed(2)} s to /readyz 200, ${startCpu.toFixed(2)} CPU-s, RSS ${mib(startRss)}`);
console.log(`steady (${seconds} s): RSS p50 ${mib(q(0.5))}, max ${mib(sorted.at(-1)!)}; peak RSS (VmHWM) ${mib(hwm)}`);
console.log(`CPU: ${(((cpu.at(-1)! - cpu[0]!) / (seconds - 1)) * 1000).toFixed(1)} millicores average, busiest 10 s window ${(Math.max(...windows) * 1000).toFixed(0)} millicores`);
