// grafana: named dashboards exist, found through Grafana's search API (GET /api/search) by
// uid or by exact title, optionally in a given folder. Authenticates with a service account
// token (tokenEnv) or Basic auth; `orgId` selects the organisation.
import { Type, type Static } from '@sinclair/typebox';
import { CONNECTION_PARAMS, connectionEnv,
  connectionProblems, decode, listSome, loadApiClient, withApi, type ApiClient } from './prometheus.js';
import { defineProbe, type Observation } from './types.js';

const params = Type.Object(
  {
    ...CONNECTION_PARAMS,
    titles: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Dashboard titles that must exist (exact, case-insensitive; "API Overview" does not match "API Overview (old)").' }),
    ),
    uids: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Dashboard uids that must exist.' })),
    folder: Type.Optional(Type.String({ minLength: 1, description: 'The dashboards must be in this folder (title; "General" is the root).' })),
    orgId: Type.Optional(Type.Integer({ minimum: 1, description: 'Organisation to search in (X-Grafana-Org-Id); default the token’s own.' })),
  },
  { additionalProperties: false },
);

export type GrafanaParams = Static<typeof params>;

/** The hits of GET /api/search (Grafana 8 to 11). */
const SearchHits = Type.Array(
  Type.Object({
    uid: Type.String(),
    title: Type.String(),
    type: Type.Optional(Type.String()),
    url: Type.Optional(Type.String()),
    folderTitle: Type.Optional(Type.String()),
  }),
);
type Hit = Static<typeof SearchHits>[number];

/** Grafana's search caps `limit` at 5000. */
const LIMIT = '5000';

const norm = (s: string) => s.trim().toLowerCase();
const folderOf = (h: Hit) => h.folderTitle || 'General';
const describe = (h: Hit) => `"${h.title}" (${h.uid}) in ${folderOf(h)}`;

export default defineProbe({
  kind: 'grafana',
  description: 'Named Grafana dashboards exist (by uid or exact title, optionally in a folder), found through /api/search.',
  params,
  // The token comes from the environment variable named by tokenEnv and a URL with
  // user:password is rejected at load, so no param value is a secret.
  secretParams: [],
  fields: {
    found: { type: 'number', description: 'Listed dashboards found. The check value.' },
    missing: { type: 'number', description: 'Listed dashboards not found (or not in `folder`).' },
    missing_dashboards: { type: 'any', description: 'The titles/uids not found (a list).' },
    dashboards: { type: 'any', description: 'The dashboards found, as "Title" (uid) in Folder (a list).' },
  },

  requiredEnv: connectionEnv,
  validate(p) {
    const problems = connectionProblems(p);
    if (!p.titles && !p.uids) problems.push('set "titles" and/or "uids": the dashboards that must exist');
    return problems;
  },

  load: loadApiClient,

  run(p, ctx) {
    const headers: Record<string, string> = p.orgId ? { 'x-grafana-org-id': String(p.orgId) } : {};
    return withApi(p, ctx, { service: 'Grafana', headers }, (api) => measureDashboards(api, p));
  },
});

async function search(api: ApiClient, query: Record<string, string | string[]>): Promise<Hit[]> {
  const path = '/api/search';
  return decode(SearchHits, await api.getJson(path, { type: 'dash-db', limit: LIMIT, ...query }), api.where(path), 'a dashboard search result');
}

async function measureDashboards(api: ApiClient, p: GrafanaParams): Promise<Observation> {
  const inFolder = (h: Hit) => p.folder === undefined || norm(folderOf(h)) === norm(p.folder);
  const found: Hit[] = [];
  const missing: string[] = [];
  const notes: string[] = [];

  if (p.uids) {
    const hits = await search(api, { dashboardUIDs: p.uids });
    for (const uid of p.uids) {
      const hit = hits.find((h) => h.uid === uid);
      if (hit && inFolder(hit)) found.push(hit);
      else {
        missing.push(`uid ${uid}`);
        if (hit) notes.push(`${describe(hit)} is not in folder ${p.folder}`);
      }
    }
  }
  // One search per title: the query is a substring match, so the exact title is picked here.
  for (const title of p.titles ?? []) {
    const hits = await search(api, { query: title });
    const exact = hits.filter((h) => norm(h.title) === norm(title));
    const hit = exact.find(inFolder);
    if (hit) found.push(hit);
    else {
      missing.push(`"${title}"`);
      const near = (exact.length > 0 ? exact : hits).slice(0, 3).map(describe);
      if (near.length > 0) notes.push(`searching "${title}" found ${near.join(', ')}`);
    }
  }

  const where = p.folder ? ` in folder ${p.folder}` : '';
  const fields = { found: found.length, missing: missing.length, missing_dashboards: missing, dashboards: found.map(describe) };
  if (missing.length > 0) {
    const more = notes.length > 0 ? ` (${notes.join('; ')})` : '';
    return {
      value: found.length,
      fields,
      failure: { reason: 'condition', message: `dashboard${missing.length > 1 ? 's' : ''} not found${where}: ${listSome(missing)}${more}` },
    };
  }
  return { value: found.length, fields, message: `found ${listSome(found.map(describe))}` };
}
