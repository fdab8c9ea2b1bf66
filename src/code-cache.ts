// A V8 code cache for the CommonJS file validate runs from (dist/bundle/validate.cjs, most of a
// MB): compiling it took validate longer than Node's whole start-up (bench/README.md). Node 20
// keeps no compile cache of its own (Node 22's module.enableCompileCache() does), so
// `npm run build` writes one beside the file (src/build/code-cache.ts) and requireCached()
// hands it to V8.
//
// The cache holds compiled code only: it is made by a process with an empty environment that
// validates the shipped checklist, so nothing of the builder's environment exists there to be
// kept. It is used only when it was made from these very bytes (the file's SHA-256 is its
// first 32 bytes), is whole (the SHA-256 of V8's data follows: V8 does not check that in a
// release build) and V8 accepts it (same V8 version and flags). A process started with other
// flags, a missing or damaged cache, or another Node's compiles from source as require() would.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

/** Where the cache of `file` lives. */
export const cacheFileOf = (file: string): string => `${file}.v8cache`;

const digest = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest();

/** The compiled file, with a cache when one of its source and this V8 is at hand. */
export function compileCached(file: string, useCache = true): { script: Script; source: string; cache: 'accepted' | 'rejected' | 'none' } {
  // Hashed as read: hashing the decoded text would encode it to UTF-8 again first.
  const bytes = readFileSync(file);
  const source = bytes.toString('utf8');
  let cachedData: Buffer | undefined;
  if (useCache) {
    try {
      const c = readFileSync(cacheFileOf(file));
      const data = c.subarray(64);
      if (data.length > 0 && c.subarray(0, 32).equals(digest(bytes)) && c.subarray(32, 64).equals(digest(data))) cachedData = data;
    } catch {
      // no cache: compile from source
    }
  }
  const script = new Script(Module.wrap(source), { filename: file, cachedData });
  return { script, source, cache: cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted' };
}

/** Runs a compiled CommonJS file as require() would, and returns its exports. */
export function runModule(script: Script, file: string): unknown {
  const m = new Module(file);
  m.filename = file;
  const require = createRequire(file);
  // In require's cache as require() puts it (what test/startup.test.ts's tracer lists).
  require.cache[file] = m;
  const fn = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
  fn.call(m.exports, m.exports, require, m, file, dirname(file));
  m.loaded = true;
  return m.exports;
}

/** require(file), compiled with its code cache when it has a valid one. */
export function requireCached(file: string): unknown {
  return runModule(compileCached(file).script, file);
}

/** The bytes of a cache for `source`: its digest, the digest of V8's data, then the data. */
export function cacheBytes(source: string, data: Buffer): Buffer {
  return Buffer.concat([digest(Buffer.from(source)), digest(data), data]);
}
