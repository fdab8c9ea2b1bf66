// A probe kind's client library, loaded the first time a check of that kind runs. A kind's
// file declares its schema and fields up front (so `readiness validate` checks params
// without any client) and pulls its client in only inside `run`: the CLI, `validate` and a
// service whose checklist has no check of the kind never load undici, pg, the AWS SDK or
// @kubernetes/client-node. test/startup.test.ts pins which modules each command loads.

/**
 * `lazy(() => import('pg'))` returns a function that imports the module on its first call
 * and hands every later call the same promise. A failed import is retried next time.
 */
export function lazy<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}

/**
 * A CommonJS package's exports from `import()`: Node's loader lists them by name (and adds
 * `default`), while in the bundle (src/build/bundle.ts) an imported CommonJS chunk has only
 * `default`. Both are the package's `module.exports`: `lazy(() => import('undici').then(commonjs))`.
 */
export function commonjs<T>(m: T): T {
  return (m as { default?: T }).default ?? m;
}
