// validate runs dist/bundle/validate.cjs compiled with the V8 code cache `npm run build` wrote
// beside it (src/code-cache.ts, src/build/code-cache.ts). Pinned: the built cache is accepted
// by a plain `node`, and a cache that does not fit (damaged, made from other bytes, missing)
// is never used to run other code: the file compiles from source and works the same.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { cacheBytes, cacheFileOf } from '../src/code-cache.js';

const BUILT = resolve('dist/bundle/validate.cjs');

t.test('the built cache fits the built file and a plain node accepts it', async (t) => {
  const cache = readFileSync(cacheFileOf(BUILT));
  t.ok(cache.length > 100_000, `a cache of the functions validate runs, not just the top level (${cache.length} bytes)`);
  // A process as users start it: no NODE_OPTIONS (tap's hooks), no other flags, no environment.
  const probe = `import { compileCached } from ${JSON.stringify(resolve('dist/code-cache.js'))}; console.log(compileCached(${JSON.stringify(BUILT)}).cache);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { env: {}, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), 'accepted');
});

t.test('a cache that does not fit is not used; the file compiles from source and runs alike', async (t) => {
  // A copy inside the package (validate.cjs finds the package root above itself).
  const dir = mkdtempSync(resolve('dist', 'code-cache-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'validate.cjs');
  copyFileSync(BUILT, file);
  const good = readFileSync(cacheFileOf(BUILT));

  // Each in a process of its own: V8 keeps what one process compiled, and would not look at a
  // second cache of the same source.
  const child = `import { compileCached, runModule } from ${JSON.stringify(resolve('dist/code-cache.js'))};
    const { script, cache } = compileCached(${JSON.stringify(file)});
    const out = [];
    const code = await runModule(script, ${JSON.stringify(file)}).validate({}, { out: (s) => out.push(s), err: (s) => out.push('err: ' + s), env: {} });
    console.log(JSON.stringify({ code, cache, out: out.join('\\n') }));`;
  const run = async (label: string) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { env: {}, encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, `${label}: ${r.stderr}`);
    const res = JSON.parse(r.stdout) as { code: number; cache: string; out: string };
    t.equal(res.code, 0, `${label}: validate of the shipped checklist passes`);
    return res;
  };

  writeFileSync(cacheFileOf(file), good);
  const reference = await run('the built cache');
  t.equal(reference.cache, 'accepted', 'precondition: the copy takes the built cache');
  t.match(reference.out, /offgridflow\.yaml: ok, \d+ checks/);

  rmSync(cacheFileOf(file));
  const none = await run('no cache');
  t.equal(none.cache, 'none');
  t.equal(none.out, reference.out);

  // V8's data damaged: V8 itself does not notice (release builds skip its checksum), the
  // digest of the data does.
  const damaged = Buffer.from(good);
  for (let i = 200; i < damaged.length; i += 997) damaged[i] = damaged[i]! ^ 0xff;
  writeFileSync(cacheFileOf(file), damaged);
  const broken = await run('a damaged cache');
  t.equal(broken.cache, 'none');
  t.equal(broken.out, reference.out);

  // Whole, but not V8's (as from another Node): V8 refuses it.
  const data = Buffer.from(good.subarray(64));
  data[0] = data[0]! ^ 0xff;
  writeFileSync(cacheFileOf(file), cacheBytes(readFileSync(file, 'utf8'), data));
  const rejected = await run('a cache V8 does not take');
  t.equal(rejected.cache, 'rejected');
  t.equal(rejected.out, reference.out);

  // The file changed after the cache was made (same length: V8's own check would pass).
  const source = readFileSync(file, 'utf8');
  const i = source.lastIndexOf('ok, ');
  t.ok(i > 0, 'precondition: the file prints "ok, "');
  writeFileSync(file, `${source.slice(0, i)}OK, ${source.slice(i + 4)}`);
  writeFileSync(cacheFileOf(file), good);
  const other = await run('a cache of other bytes');
  t.equal(other.cache, 'none', 'a cache made from other bytes is not handed to V8');
  t.match(other.out, /offgridflow\.yaml: OK, \d+ checks/, 'the changed file runs as it now reads');
});
