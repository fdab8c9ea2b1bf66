// V8 settings for `readiness serve`'s start-up, set by src/run.ts before the service's code
// loads (bench/idle-rss.ts measures the difference; bench/README.md records it).
//
// - Semi-spaces that stay at their initial size while serve starts: loading the bundle and the
//   checklist would grow the young generation to 8 MiB and V8 keeps it. Set before anything
//   loads, or it is set too late. Once the service runs, V8's own growth (factor 2) is back: kept
//   at 1 MiB, a loaded service scavenged several times per scrape and per few hundred requests
//   (the /readiness server's CPU per request ~55 us against ~35 us, bench/README.md). A runtime
//   change of the factor takes effect (test/startup-flags.test.ts observes the young generation
//   grow); --max-semi-space-size does not (the heap is sized when it is set up).
// - No optimizing compiler (TurboFan) until the service has started: start-up code (the YAML
//   and schema readers, the server's route building) runs once, and optimizing it cost about
//   10 MiB of resident memory that an idle service keeps (compiler zones, optimized code, the
//   compiler's own pages), and CPU on a start-up that is CPU-bound anyway. Once the service
//   runs, TurboFan is back on for what runs often (probes, the scheduler, the endpoints).
//   Not when the operator chose for themselves (`node --no-opt ...`; NODE_OPTIONS cannot carry it).
import { setFlagsFromString } from 'node:v8';

let optDeferred = false;
let smallYoung = false;

/** The operator set the optimizing compiler on or off (node's own flags). */
function optChosen(): boolean {
  return process.execArgv.some((f) => /^--(?:no-)?(?:opt|turbofan|always-turbofan|always-opt|jitless)$/.test(f));
}

/** The operator sized the young generation (node's own flags). */
function youngChosen(): boolean {
  return process.execArgv.some((f) => /^--(?:semi-space-growth-factor|max-semi-space-size|min-semi-space-size)(?:=|$)/.test(f));
}

/** Called first thing by `serve`, before its modules load. */
export function serveStarting(): void {
  if (!youngChosen()) {
    setFlagsFromString('--semi-space-growth-factor=1');
    smallYoung = true;
  }
  if (!optChosen()) {
    setFlagsFromString('--no-opt');
    optDeferred = true;
  }
}

/** The service is up: optimize what runs from now on, and let the young generation grow. Idempotent; a no-op unless serveStarting() ran. */
export function serveStarted(): void {
  if (!smallYoung && !optDeferred) return;
  if (smallYoung) {
    smallYoung = false;
    setFlagsFromString('--semi-space-growth-factor=2');
  }
  if (!optDeferred) return;
  optDeferred = false;
  setFlagsFromString('--opt');
}

/** Whether the optimizing compiler is held off (tests). */
export function optimizerDeferred(): boolean {
  return optDeferred;
}
