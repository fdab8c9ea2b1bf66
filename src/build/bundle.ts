// Build step (`npm run build`, after tsc and the validators): bundles the command into
// dist/bundle/ with esbuild. Node 20 spends longer resolving and linking an ES module graph
// of a few hundred files (TypeBox alone is 247) than running the code in them, and keeps a
// module record, wrapper and source for each: bundled, validate starts several times faster,
// and serve holds tens of MiB less (fastify 19 -> 9 MiB, @kubernetes/client-node 70 -> 18 MiB,
// whose unused generated API esbuild leaves out). Each command's code (serve, check, validate,
// ...) and each probe kind's client is a chunk, loaded by its dynamic import when needed.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
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
const outputs = Object.fromEntries(Object.entries(result.metafile.outputs).map(([file, o]) => [file, Object.keys(o.inputs)]));
writeFileSync(packagePath('dist', 'bundle', 'modules.json'), `${JSON.stringify(outputs, null, 1)}\n`);
const files = Object.keys(outputs).length;
console.log(`bundled dist/main.js into ${outdir} (${files} files)`);
