// Ownership stand-ins for in-process Service tests: no leases, no PostgreSQL. A test says which
// checks this replica owns by filling `mine`.
import type { Ownership } from '../../src/ha.js';

/** Owns what is in `mine`; start and stop do nothing; no way to ask an owner for a run. */
export class TestOwnership implements Ownership {
  readonly replicaId = 'replica-test';
  readonly mine = new Set<string>();
  onAcquire?: Ownership['onAcquire'];
  canRelease?: Ownership['canRelease'];
  onRunRequest?: Ownership['onRunRequest'];
  owns(id: string): boolean {
    return this.mine.has(id);
  }
  fence(): undefined {
    return undefined;
  }
  owned(): string[] {
    return [...this.mine];
  }
  async start(_checks: readonly string[]): Promise<void> {}
  async stop(): Promise<void> {}
}

/** The same, and a run asked of the owner is recorded in `requests` and answered by `answer`. */
export class RequestingOwnership extends TestOwnership {
  requests: string[] = [];
  answer: ((id: string) => unknown) | undefined;
  async requestRun(id: string): Promise<void> {
    this.requests.push(id);
    await this.answer?.(id);
  }
}
