// /readiness answers kept ready between changes. A deploy script polls the same URL every
// few seconds and Argo/Flagger poll more often; recomputing every view and serialising the
// body per request made the gate slower than the scrape it competes with. An answer is
// serialised once per filter and reused while nothing it shows has changed: the checks'
// states (ViewsSnapshot.readinessVersion, or every change for verbose answers), deployments
// and attestations (recordsVersion), the store's health, the checklist, and the deployment
// window opening or closing. Only `evaluatedAt` is written per request.
import type { Checklist } from '../config/types.js';
import { ApiError } from '../errors.js';
import type { Service } from '../service.js';
import { parseFilters, readiness, type ReadinessBody } from '../state.js';

interface Answer {
  code: number;
  /** The serialised body around the evaluatedAt value. */
  head: string;
  tail: string;
  checklist: Checklist;
  verbose: boolean;
  version: number;
  records: number;
  health: string;
  validUntil: number;
}

/** Distinct query strings kept; a client inventing new ones only costs a recomputation. */
const MAX_ANSWERS = 256;
const EVALUATED_AT = '"evaluatedAt":"';

/** The /readiness body for these query parameters at `now` (throws RDY_BAD_FILTER). */
export function readinessBody(service: Service, query: Record<string, unknown>, now: number): ReadinessBody {
  const parsed = parseFilters(query, service.checklist());
  if (!parsed.ok) throw new ApiError('RDY_BAD_FILTER', parsed.error);
  // Absent is String(undefined): neither value.
  const verbose = ['1', 'true'].includes(String(query.verbose));
  const views = service.views(now);
  const body = readiness(service.checklist(), views, parsed.filters, now, verbose);
  const store = service.storeHealth();
  if (!store.ok) body.store = store;
  const w = service.deploymentWindow(now);
  if (w.deployment) {
    body.deployment = { version: w.deployment.version, at: new Date(w.deployment.at).toISOString(), windowOpen: w.open, windowEndsAt: new Date(w.endsAt!).toISOString() };
    const causes = service.rollbackCauses(views);
    body.rollback = { recommended: causes.length > 0, failing: causes.map((v) => v.def.id) };
  }
  return body;
}

export class ReadinessAnswers {
  readonly #answers = new Map<string, Answer>();
  /** Answers serialised so far: a test's proof that a repeated request does no work. */
  built = 0;

  constructor(readonly service: Service) {}

  /**
   * The status code and body for one request. `key` is the raw query string: the same string
   * always means the same filters (and the same notReadyStatus).
   */
  answer(key: string, query: Record<string, unknown>, now = Date.now()): { code: number; body: string } {
    const service = this.service;
    const snap = service.snapshot(now);
    const health = service.storeHealth();
    const healthKey = health.ok ? '' : health.message;
    let a = this.#answers.get(key);
    if (
      !a ||
      a.checklist !== service.checklist() ||
      a.version !== (a.verbose ? snap.version : snap.readinessVersion) ||
      a.records !== service.recordsVersion() ||
      a.health !== healthKey ||
      now >= a.validUntil
    ) {
      const body = readinessBody(service, query, now);
      const json = JSON.stringify(body);
      const at = json.indexOf(EVALUATED_AT) + EVALUATED_AT.length;
      const end = json.indexOf('"', at);
      const verbose = body.checks !== undefined;
      a = {
        code: body.ready ? 200 : typeof query.notReadyStatus === 'number' ? query.notReadyStatus : 503,
        head: json.slice(0, at),
        tail: json.slice(end),
        checklist: service.checklist(),
        verbose,
        version: verbose ? snap.version : snap.readinessVersion,
        records: service.recordsVersion(),
        health: healthKey,
        validUntil: snap.sharedValidUntil,
      };
      if (this.#answers.size >= MAX_ANSWERS) this.#answers.clear();
      this.#answers.set(key, a);
      this.built++;
    }
    return { code: a.code, body: a.head + new Date(now).toISOString() + a.tail };
  }
}
