// Build step (`npm run build`, after tsc and the validators): bundles the command into
// dist/bundle/ with esbuild. Node 20 spends longer resolving and linking an ES module graph
// of a few hundred files (TypeBox alone is 247) than running the code in them, and keeps a
// module record, wrapper and source for each: bundled, validate starts several times faster,
// and serve holds tens of MiB less (fastify 19 -> 9 MiB, @kubernetes/client-node 70 -> 18 MiB,
// whose unused generated API esbuild leaves out). Each command's code (serve, check, validate,
// ...) and each probe kind's client is a chunk, loaded by its dynamic import when needed.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { build } from 'esbuild';
import { packagePath, ROOT } from '../paths.js';
import { asciiOnly } from './ascii.js';

/**
 * Packages that stay in node_modules: native addons, and code that finds files beside its
 * own module at run time (which a bundle moves). Optional dependencies that are not
 * installed (pg-native, ws's bufferutil) stay external too, and fail where they are loaded.
 */
const EXTERNAL = [
  'better-sqlite3', // native addon, found through `bindings` from its own directory
  '@fastify/swagger', // reads its package.json relative to __dirname
];

const BUILTIN = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * Node's modules that the CommonJS files (below) load only when first used. Each costs a few
 * ms to load that a short command mostly does not need: commander requires child_process (and
 * with it net and the streams) for subcommands run as programs, which this CLI has none of;
 * validate's modules import tls, dns, worker_threads, perf_hooks, os ... for the probes and the
 * regex worker, which validate never runs. Each is replaced there by an object of getters, one
 * per export (listed from this Node at build time), that requires the real module on first
 * access. Only modules whose export is a plain object: a function or class (events, stream)
 * cannot be stood in for by one. Modules Node has loaded before any code of ours runs (fs,
 * path, url, util, ...) gain nothing and are left alone.
 */
const LAZY_BUILTINS = new Set([
  'child_process', 'net', 'tls', 'dns', 'dns/promises', 'http', 'https', 'http2', 'worker_threads',
  'perf_hooks', 'fs/promises', 'os', 'timers/promises', 'readline', 'zlib', 'dgram', 'v8', 'stream/promises', 'crypto',
]);
const bareBuiltin = (spec: string) => spec.replace(/^node:/, '');
const requireBuiltin = createRequire(import.meta.url);

/** The source of a stand-in for the built-in `name` (LAZY_BUILTINS). */
function lazyBuiltin(name: string): string {
  // Every own property, the non-enumerable ones too (zlib's constants, crypto's deprecated names).
  const keys = Object.getOwnPropertyNames(requireBuiltin(`node:${name}`));
  return [
    `let real;`,
    `const load = () => (real ??= require(${JSON.stringify(`node:${name}`)}));`,
    `for (const k of ${JSON.stringify(keys)}) Object.defineProperty(exports, k, { get: () => load()[k], enumerable: true });`,
  ].join('\n');
}
const packageName = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);

const outdir = packagePath('dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: [packagePath('dist', 'main.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Whitespace and syntax only: identifiers keep their names, so stack traces and logs still
  // name the functions. V8 keeps every loaded file's source in the heap (a third smaller so:
  // 4 MiB less for serve, bench/idle-rss.ts) and scans it at start-up.
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [
    {
      name: 'externals',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, async (args) => {
          if (args.pluginData === 'resolving') return undefined;
          if (BUILTIN.has(args.path) || EXTERNAL.includes(packageName(args.path))) return { path: args.path, external: true };
          const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'resolving' });
          return r.errors.length > 0 ? { path: args.path, external: true } : r;
        });
      },
    },
  ],
  // CommonJS packages in the bundle call require() for Node's own modules and the externals.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
  write: false,
});
mkdirSync(outdir, { recursive: true });
for (const f of result.outputFiles) writeFileSync(f.path, asciiOnly(f.text));
// Which modules each output file holds: test/startup.test.ts maps the files a command loaded
// back to the modules (ours and the packages') in them.
const outputs: Record<string, string[]> = Object.fromEntries(Object.entries(result.metafile.outputs).map(([file, o]) => [file, Object.keys(o.inputs)]));

// The light entry (src/light.ts): `--help`, `help`, `gate` and `validate` as CommonJS files.
// Node loads an ES module graph asynchronously, a file at a time through its thread pool (open,
// stat, read, close), after compiling its ES module loader: for these short-lived commands that
// cost more than their own work, and several times that on a loaded machine (bench/README.md).
// require() reads a file synchronously. dist/bundle/light.cjs holds the program (commander and
// src/cli.ts) and gate; validate's checklist loader (most of a MB) is its own file,
// dist/bundle/validate.cjs, required by validate's action only, so --help and gate do not
// parse it. The two hold separate copies of the few small modules both use (src/cli/common.ts,
// src/paths.ts): nothing validate uses from them keeps state or is compared by identity.
//
// The commands this entry never runs (bin/readiness.js sends them to main.js) are left out:
// their import is a stub that throws, as is every other module of ours imported lazily (a
// probe kind's client wrapper, the store): gate and validate run no probe. A package imported
// lazily (a probe kind's client) stays outside, loaded from node_modules if it ever runs.
//
// `lazy` names the lazily imported modules of ours that the file keeps: bundled in it (true),
// or required from another file of dist/bundle/ (its name; `cached:` and its name: compiled
// with its code cache, src/code-cache.ts). With `inlineDeferred`, the modules src/deferred.ts
// requires on first use (re2js, the precompiled validators) are bundled into the file too,
// still run on first use only, so that its code cache holds them.
async function cjsBundle(entry: string, outfile: string, lazy: Record<string, true | string>, inlineDeferred = false) {
  const r = await build({
    absWorkingDir: ROOT,
    entryPoints: [packagePath('dist', entry)],
    outfile: packagePath('dist', 'bundle', outfile),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // import() becomes require(): an import() of a built-in (gate's node:http) would start the
    // ES module loader these files are here to avoid.
    supported: { 'dynamic-import': false },
    minifyWhitespace: true,
    minifySyntax: true,
    // src/paths.ts finds the package root from its own module's URL.
    define: { 'import.meta.url': '__cjsModuleUrl' },
    banner: { js: "const __cjsModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
    plugins: [
      {
        name: 'light',
        setup(b) {
          b.onResolve({ filter: /^\./ }, (args) => {
            if (inlineDeferred && /(^|\/)deferred\.js$/.test(args.path)) return { path: 'deferred', namespace: 'deferred' };
            if (args.kind !== 'dynamic-import') return undefined;
            const keep = lazy[args.path];
            if (keep === true) return undefined;
            if (keep?.startsWith('cached:')) return { path: keep.slice('cached:'.length), namespace: 'cached' };
            return keep ? { path: keep, external: true } : { path: args.path, namespace: 'not-light' };
          });
          // Another file of dist/bundle/, compiled with its V8 code cache (src/code-cache.ts).
          b.onLoad({ filter: /.*/, namespace: 'cached' }, (args) => ({
            contents: `module.exports = require(${JSON.stringify(packagePath('dist', 'code-cache.js'))}).requireCached(require('node:path').join(__dirname, ${JSON.stringify(args.path)}));`,
            resolveDir: ROOT,
            loader: 'js',
          }));
          // src/deferred.ts itself, with its two loaders replaced by static require()s, which
          // esbuild bundles (as CommonJS modules that run when first required).
          b.onLoad({ filter: /.*/, namespace: 'deferred' }, () => ({
            contents: [
              `const deferred = require(${JSON.stringify(packagePath('dist', 'deferred.js'))});`,
              `module.exports = { ...deferred, requireRe2js: () => require('re2js'), requirePrecompiled: () => require(${JSON.stringify(packagePath('dist', 'config', 'validators.cjs'))}) };`,
            ].join('\n'),
            resolveDir: ROOT,
            loader: 'js',
          }));
          b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({ contents: lazyBuiltin(args.path), loader: 'js' }));
          b.onLoad({ filter: /.*/, namespace: 'not-light' }, (args) => ({
            contents: `throw new Error(${JSON.stringify(`internal: ${args.path} is not part of dist/bundle/${outfile} (bin/readiness.js sends its command to main.js)`)});`,
            loader: 'js',
          }));
          b.onResolve({ filter: /^[^./]/ }, async (args) => {
            if (args.pluginData === 'resolving') return undefined;
            if (BUILTIN.has(args.path) && LAZY_BUILTINS.has(bareBuiltin(args.path)) && args.namespace !== 'lazy-builtin') {
              return { path: bareBuiltin(args.path), namespace: 'lazy-builtin' };
            }
            if (BUILTIN.has(args.path) || EXTERNAL.includes(packageName(args.path)) || args.kind === 'dynamic-import') return { path: args.path, external: true };
            const res = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'resolving' });
            return res.errors.length > 0 ? { path: args.path, external: true } : res;
          });
        },
      },
    ],
    logLevel: 'warning',
    metafile: true,
    write: false,
  });
  for (const f of r.outputFiles) writeFileSync(f.path, asciiOnly(f.text));
  for (const [file, o] of Object.entries(r.metafile.outputs)) outputs[file] = Object.keys(o.inputs);
}
await cjsBundle('light.js', 'light.cjs', { './cli/gate.js': true, './cli/validate.js': 'cached:./validate.cjs' });
await cjsBundle('cli/validate.js', 'validate.cjs', {}, true);
writeFileSync(packagePath('dist', 'bundle', 'modules.json'), `${JSON.stringify(outputs, null, 1)}\n`);
const files = Object.keys(outputs).length;
console.log(`bundled dist/main.js into ${outdir} (${files} files)`);
