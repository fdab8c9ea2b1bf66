// Build step (`npm run build`, after tsc and the validators): bundles the command into
// dist/bundle/ with esbuild. Node 20 spends longer resolving and linking an ES module graph
// of a few hundred files (TypeBox alone is 247) than running the code in them, so the
// modules every command needs become one file, and each command's own code (serve, check,
// validate, ...) a chunk loaded by its dynamic import. Packages that only some runs need
// stay external and load from node_modules when used: probe clients, the server, the store
// drivers, the logger, and native or worker-thread code that cannot be bundled.
import { rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { packagePath, ROOT } from '../paths.js';

/** Packages on the start-up path of every command (validate loads all of them). */
const BUNDLED = ['commander', '@sinclair/typebox', 'yaml', 'js-yaml', 'croner', '@prometheus-io/lezer-promql', '@lezer/common', '@lezer/lr', '@lezer/highlight'];

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
  plugins: [
    // Every other package, including ones added later, loads from node_modules as before.
    {
      name: 'bundle-listed-packages',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, async (args) => {
          if (args.pluginData === 'listed') return undefined;
          const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0]!;
          if (!BUNDLED.includes(name)) return { path: args.path, external: true };
          return b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'listed' });
        });
      },
    },
  ],
  // CommonJS packages in the bundle (commander) call require() for Node's own modules.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});
// Which modules each output file holds: test/startup.test.ts maps the files a command loaded
// back to the modules (ours and the packages') in them.
const outputs = Object.fromEntries(Object.entries(result.metafile.outputs).map(([file, o]) => [file, Object.keys(o.inputs)]));
writeFileSync(packagePath('dist', 'bundle', 'modules.json'), `${JSON.stringify(outputs, null, 1)}\n`);
const files = Object.keys(outputs).length;
console.log(`bundled dist/main.js into ${outdir} (${files} files)`);
