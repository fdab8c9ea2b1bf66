// V8 settings for `readiness serve`'s start-up, set by src/main.ts before the service's code
// loads (bench/idle-rss.ts measures the difference; bench/README.md records it).
//
// - Semi-spaces that stay at their initial size: loading the bundle and the checklist would
//   grow the young generation to 8 MiB and V8 keeps it; a mostly idle service does a few more
//   (sub-millisecond) scavenges instead. Set before anything loads, or it is set too late.
// - No optimizing compiler (TurboFan) until the service has started: start-up code (the YAML
//   and schema readers, the server's route building) runs once, and optimizing it cost about
//   10 MiB of resident memory that an idle service keeps (compiler zones, optimized code, the
//   compiler's own pages), and CPU on a start-up that is CPU-bound anyway. Once the service
//   runs, TurboFan is back on for what runs often (probes, the scheduler, the endpoints).
//   Not when the operator chose for themselves (`node --no-opt ...`; NODE_OPTIONS cannot carry it).
import { setFlagsFromString } from 'node:v8';

let optDeferred = false;

/** The operator set the optimizing compiler on or off (node's own flags). */
function optChosen(): boolean {
  return process.execArgv.some((f) => /^--(?:no-)?(?:opt|turbofan|always-turbofan|always-opt|jitless)$/.test(f));
}

/** Called first thing by `serve`, before its modules load. */
export function serveStarting(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  if (!optChosen()) {
    setFlagsFromString('--no-opt');
    optDeferred = true;
  }
}

/** The service is up: optimize what runs from now on. Idempotent; a no-op unless serveStarting() deferred it. */
export function serveStarted(): void {
  if (!optDeferred) return;
  optDeferred = false;
  setFlagsFromString('--opt');
}

/** Whether the optimizing compiler is held off (tests). */
export function optimizerDeferred(): boolean {
  return optDeferred;
}
