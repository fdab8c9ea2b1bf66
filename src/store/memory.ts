// The in-memory store: nothing survives a restart. Used by `readiness check` and tests;
// `readiness serve` uses the embedded SQLite store by default.
import { CachedStore, type Backend, type CachedStoreOptions } from './cached.js';
import type { RunResult } from './types.js';

export class MemoryBackend implements Backend {
  readonly kind = 'memory';
  readonly #history = new Map<string, RunResult[]>();

  constructor(readonly historyLimit = 100) {}

  async open() {
    return { statuses: [], attestations: [], deployments: [] };
  }

  async writeStatus(s: { check: string; last: RunResult }): Promise<void> {
    const h = this.#history.get(s.check) ?? [];
    h.unshift(s.last);
    if (h.length > this.historyLimit) h.length = this.historyLimit;
    this.#history.set(s.check, h);
  }

  async history(check: string, limit: number): Promise<RunResult[]> {
    return (this.#history.get(check) ?? []).slice(0, limit);
  }

  async writeAttestation(): Promise<void> {}
  async writeDeployment(): Promise<void> {}
  async close(): Promise<void> {}
}

export class MemoryStore extends CachedStore {
  constructor(historyLimit = 100, opts: CachedStoreOptions = {}) {
    super(new MemoryBackend(historyLimit), { preopened: true, ...opts });
  }
}
