// Preloaded with `node --import ./test/helpers/module-trace.mjs ...`: appends the path of
// every module the process loads, one per line, to the file named by MODULE_TRACE_FILE.
// ES modules are seen by a load hook (which runs on its own thread and writes as it goes);
// CommonJS modules, which a CommonJS package require()s without the ESM loader, are read
// from the require cache when the process exits, and Node's built-in modules from
// process.moduleLoadList. Used by test/startup.test.ts and bench/.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import process from 'node:process';

const out = process.env.MODULE_TRACE_FILE;
if (out) {
  const hooks = `
    import { appendFileSync } from 'node:fs';
    let out;
    export function initialize(data) { out = data.out; }
    export async function load(url, context, next) {
      if (url.startsWith('file:')) appendFileSync(out, decodeURIComponent(new URL(url).pathname) + '\\n');
      return next(url, context);
    }`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { out } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const paths = Object.keys(cache);
    // Node's own modules, as `builtin:<id>` lines: global fetch() compiles the bundled undici
    // (internal/deps/undici/undici) on first use, which no file path shows.
    const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => `builtin:${m.slice('NativeModule '.length)}`);
    appendFileSync(out, [...paths, ...builtins].map((l) => `${l}\n`).join(''));
  });
}
