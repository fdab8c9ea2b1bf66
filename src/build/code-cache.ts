// Build step (`npm run build`, after the bundle): writes the V8 code cache of
// dist/bundle/validate.cjs (src/code-cache.ts says why and when it is used). A child process
// with an empty environment and no Node options (the flags `node bin/readiness.js` runs with,
// which V8 checks) compiles the file, validates the shipped checklist with it so the functions
// validate runs are compiled too, and writes the cache.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { cacheBytes, cacheFileOf, compileCached, runModule } from '../code-cache.js';
import { packagePath } from '../paths.js';

const FILE = packagePath('dist', 'bundle', 'validate.cjs');

if (process.argv[2] === '--child') {
  const { script, source } = compileCached(FILE, false);
  const { validate } = runModule(script, FILE) as { validate: (o: { config?: string }, io: { out: (s: string) => void; err: (s: string) => void; env: NodeJS.ProcessEnv }) => Promise<number> };
  const code = await validate({}, { out: () => {}, err: (s) => process.stderr.write(`${s}\n`), env: {} });
  if (code !== 0) throw new Error(`validate of the shipped checklist exited ${code}`);
  writeFileSync(cacheFileOf(FILE), cacheBytes(source, script.createCachedData()));
} else {
  rmSync(cacheFileOf(FILE), { force: true });
  const r = spawnSync(process.execPath, [process.argv[1]!, '--child'], { env: {}, execArgv: [], stdio: 'inherit' } as Parameters<typeof spawnSync>[2]);
  if (r.status !== 0) throw new Error(`writing the code cache of ${FILE} failed (${r.status ?? r.signal})`);
  console.log(`wrote ${cacheFileOf(FILE)}`);
}
