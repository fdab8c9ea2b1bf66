// loki: a LogQL metric query through Loki's instant query API (GET /loki/api/v1/query); the
// number is the value: logs flowing (sum(count_over_time({namespace="app"}[10m]))), audit
// lines in the last hour, ERROR lines since a deployment. An empty result (no stream matched)
// is no-data, decided by the check's onNoData. The query's structure is checked at load; Loki
// itself parses it fully and a 400 names the problem.
import { Type, type Static } from '@sinclair/typebox';
import { CONNECTION_PARAMS, connectionEnv,
  connectionProblems, decode, envelopeData, queryObservation, reduceParam, loadApiClient, withApi, type ApiClient } from './prometheus.js';
import { defineProbe, type Observation } from './types.js';

const params = Type.Object(
  {
    ...CONNECTION_PARAMS,
    query: Type.String({ minLength: 1, description: 'A LogQL metric query, e.g. sum(count_over_time({namespace="offgridflow"}[10m])).' }),
    reduce: reduceParam('sum (count_over_time gives one series per stream)'),
    tenant: Type.Optional(Type.String({ minLength: 1, description: 'Tenant (X-Scope-OrgID) of a multi-tenant Loki.' })),
  },
  { additionalProperties: false },
);

export type LokiParams = Static<typeof params>;

/**
 * Structural problems with a LogQL query, each with its column: unbalanced brackets or quotes,
 * no stream selector, or a log query (lines) where a metric query (numbers) is needed.
 */
export function logqlProblems(query: string): string[] {
  const stack: { c: string; at: number }[] = [];
  const close: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let hasSelector = false;
  let hasRange = false;
  for (let i = 0; i < query.length; i++) {
    const c = query[i]!;
    if (c === '"' || c === '`') {
      const start = i;
      for (i++; i < query.length && query[i] !== c; i++) if (c === '"' && query[i] === '\\') i++;
      if (i >= query.length) return [`unterminated string starting at column ${start + 1}`];
      continue;
    }
    if (c === '#') {
      // A comment runs to the end of the line.
      while (i < query.length && query[i] !== '\n') i++;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') {
      stack.push({ c, at: i });
      if (c === '{') hasSelector = true;
      if (c === '[') hasRange = true;
    } else if (c in close) {
      const open = stack.pop();
      if (!open || open.c !== close[c]) return [`unexpected "${c}" at column ${i + 1}${open ? ` (the "${open.c}" at column ${open.at + 1} is not closed)` : ''}`];
    }
  }
  const open = stack.pop();
  if (open) return [`"${open.c}" at column ${open.at + 1} is never closed`];
  if (!hasSelector && !/^\s*vector\s*\(/.test(query)) return ['no stream selector such as {namespace="offgridflow"}'];
  if (!hasRange && hasSelector) {
    return ['this is a log query (it returns lines, not a number): wrap it in a range aggregation such as sum(count_over_time(<query> [10m]))'];
  }
  return [];
}

export default defineProbe({
  kind: 'loki',
  description: "A LogQL metric query's number from Loki (log lines counted, rates): logs flowing, audit lines present, ERROR lines since a deployment.",
  params,
  // Credentials come from environment variables named by tokenEnv/usernameEnv/passwordEnv and a
  // URL with user:password is rejected at load, so no param value is a secret.
  secretParams: [],
  fields: {
    value: { type: 'number', description: 'The query result reduced to one number (default: the sum over series). The check value.' },
    series: { type: 'number', description: 'Series in the result (one per stream for count_over_time without sum).' },
    'labels.*': { type: 'string', description: 'Labels of the series the value came from (reduce single, max, min).' },
  },

  requiredEnv: connectionEnv,
  validate(p) {
    return [...connectionProblems(p), ...logqlProblems(p.query).map((m) => `query: ${m}`)];
  },

  load: loadApiClient,

  run(p, ctx) {
    const headers: Record<string, string> = p.tenant ? { 'x-scope-orgid': p.tenant } : {};
    return withApi(p, ctx, { service: 'Loki', headers }, (api) => measureQuery(api, p));
  },
});

const QueryData = Type.Object({ resultType: Type.String(), result: Type.Unknown() });

async function measureQuery(api: ApiClient, p: LokiParams): Promise<Observation> {
  const path = '/loki/api/v1/query';
  const where = api.where(path);
  const data = decode(QueryData, envelopeData(await api.getJson(path, { query: p.query }), where), where, 'a Loki query result');
  const obs = queryObservation(data.resultType, data.result, p.reduce ?? 'sum', where);
  if (obs.noData && obs.fields.series === 0) obs.message = 'the query returned no series: no log stream matched the selector in the range';
  return obs;
}
