// The in-memory store: latest status and a bounded ring of recent results per check.
import type { CheckStatus, RunResult, Store, StoreHealth } from './types.js';

export class MemoryStore implements Store {
  readonly #latest = new Map<string, CheckStatus>();
  readonly #history = new Map<string, RunResult[]>();

  constructor(readonly historyLimit = 100) {}

  async put(status: CheckStatus): Promise<void> {
    this.#latest.set(status.check, status);
    const h = this.#history.get(status.check) ?? [];
    h.unshift(status.last);
    if (h.length > this.historyLimit) h.length = this.historyLimit;
    this.#history.set(status.check, h);
  }

  latest(check: string): CheckStatus | undefined {
    return this.#latest.get(check);
  }

  history(check: string, limit: number): RunResult[] {
    return (this.#history.get(check) ?? []).slice(0, limit);
  }

  retain(checks: ReadonlySet<string>): void {
    for (const id of this.#latest.keys()) if (!checks.has(id)) this.#latest.delete(id);
    for (const id of this.#history.keys()) if (!checks.has(id)) this.#history.delete(id);
  }

  health(): StoreHealth {
    return { ok: true, message: 'in-memory store' };
  }

  async close(): Promise<void> {}
}
