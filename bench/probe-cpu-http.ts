// @bench-row
// http probe CPU per probe against prometheus-blackbox-exporter's http_2xx, same target, same
// rate (goal: <= 1.0x).
//
//   npx tsx bench/probe-cpu-http.ts [checks=200] [window-seconds=10] [rounds=2]
import { probeCpuBench } from './lib/probe-cpu.js';

await probeCpuBench('http', { n: Number(process.argv[2] ?? 200), windowS: Number(process.argv[3] ?? 10), rounds: Number(process.argv[4] ?? 2), goal: 1.0 });
