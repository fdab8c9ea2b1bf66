// @bench-row
// tcp probe CPU per probe against prometheus-blackbox-exporter's tcp_connect, same target,
// same rate (goal: <= 0.8x, aim 0.66x).
//
//   npx tsx bench/probe-cpu-tcp.ts [checks=200] [window-seconds=10] [rounds=2]
import { probeCpuBench } from './lib/probe-cpu.js';

await probeCpuBench('tcp', { n: Number(process.argv[2] ?? 200), windowS: Number(process.argv[3] ?? 10), rounds: Number(process.argv[4] ?? 2), goal: 0.8 });
