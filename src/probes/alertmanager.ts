// alertmanager: Alertmanager's v2 API. `measure` picks what is measured:
//   receivers  the running configuration (GET /api/v2/status, `config.original`, a YAML
//              string) has a receiver with the wanted name and/or integration (PagerDuty,
//              Slack to a channel, email to an address)
//   route      an alert with the given labels reaches such a receiver: the route tree is
//              evaluated the way Alertmanager's dispatcher does (matchers, match/match_re,
//              `continue`, child routes, inherited receivers, the root as the default)
//   alert      an alert (the always-firing Watchdog by default) is active in GET
//              /api/v2/alerts: the Prometheus -> Alertmanager path is alive
// Reading the configuration Alertmanager actually runs, not a file in a repository, is the
// point: it is what pages someone.
import { Type, type Static } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import {
  CONNECTION_PARAMS,
  connectionEnv,
  connectionProblems,
  decode,
  formatLabels,
  formatMatcher,
  isObject,
  labelMatcher,
  listSome,
  loadApiClient,
  matchesAll,
  matcherProblems,
  measureProblems,
  parseMatchers,
  withApi,
  type ApiClient,
  type LabelMatcher,
} from './prometheus.js';
import { defineProbe, ProbeError, type Observation } from './types.js';

export const MEASURES = ['receivers', 'route', 'alert'] as const;
export type Measure = (typeof MEASURES)[number];

/** Alertmanager's notification integrations: the `<name>_configs` keys of a receiver. */
export const INTEGRATIONS = ['pagerduty', 'slack', 'email', 'webhook', 'opsgenie', 'victorops', 'pushover', 'wechat', 'telegram', 'sns', 'webex', 'discord', 'msteams'] as const;
export type Integration = (typeof INTEGRATIONS)[number];

const DEFAULT_ALERTNAME = 'Watchdog';

const params = Type.Object(
  {
    ...CONNECTION_PARAMS,
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to measure: ${MEASURES.join(' | ')}.` }),
    receiver: Type.Optional(Type.String({ minLength: 1, description: 'receivers, route: the receiver name.' })),
    integration: Type.Optional(
      Type.Unsafe<Integration>({ type: 'string', enum: [...INTEGRATIONS], description: `receivers, route: the receiver must have <integration>_configs (${INTEGRATIONS.join(', ')}).` }),
    ),
    channel: Type.Optional(Type.String({ minLength: 1, description: 'receivers, route: a slack_configs entry must post to this channel (#alerts).' })),
    to: Type.Optional(Type.String({ minLength: 1, description: 'receivers, route: an email_configs entry must send to this address.' })),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }), Type.String(), {
        description: 'route: the labels of the test alert, e.g. { severity: critical }.',
      }),
    ),
    alertname: Type.Optional(Type.String({ minLength: 1, description: `alert: the alert that must be active (default ${DEFAULT_ALERTNAME}).` })),
    matchers: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'alert: the alert must also match these, in Alertmanager syntax (env="production").' }),
    ),
  },
  { additionalProperties: false },
);

export type AlertmanagerParams = Static<typeof params>;
type ParamName = keyof AlertmanagerParams;

const SELECTION: readonly ParamName[] = ['receiver', 'integration', 'channel', 'to'];

const MEASURE_PARAMS: Record<Measure, { required: readonly ParamName[]; optional: readonly ParamName[] }> = {
  receivers: { required: [], optional: SELECTION },
  route: { required: ['labels'], optional: SELECTION },
  alert: { required: [], optional: ['alertname', 'matchers'] },
};

export default defineProbe({
  kind: 'alertmanager',
  description: "Asks Alertmanager: receivers in its running configuration, where an alert with given labels is routed, and whether the Watchdog alert arrives.",
  params,
  // Credentials come from environment variables named by tokenEnv/usernameEnv/passwordEnv and a
  // URL with user:password is rejected at load, so no param value is a secret.
  secretParams: [],
  fields: {
    receivers: { type: 'number', description: 'receivers, route: receivers defined in the running configuration.' },
    matching: { type: 'number', description: 'receivers: receivers that have the wanted name/integration/channel/address. The check value.' },
    receiver_names: { type: 'any', description: 'receivers, route: names of those receivers (a list).' },
    routed: { type: 'boolean', description: 'route: the alert reaches one of the wanted receivers. The check value (1/0).' },
    matched_receivers: { type: 'any', description: 'route: every receiver the alert is sent to, in routing order (a list).' },
    matched_routes: { type: 'any', description: 'route: the routes that matched, as route.routes[0].routes[1] (a list).' },
    present: { type: 'boolean', description: 'alert: the alert is active.' },
    alerts: { type: 'number', description: 'alert: active alerts with that name and matchers. The check value.' },
    suppressed: { type: 'number', description: 'alert: of those, how many are silenced or inhibited.' },
    updated_seconds: { type: 'number', unit: 's', description: 'alert: seconds since Alertmanager last received the alert from Prometheus (Prometheus re-sends firing alerts every minute).' },
  },

  requiredEnv: connectionEnv,
  validate(p) {
    const problems = [...connectionProblems(p), ...measureProblems(p.measure, p, MEASURE_PARAMS)];
    if ((p.measure === 'receivers' || p.measure === 'route') && !p.receiver && !p.integration && !p.channel && !p.to) {
      problems.push(`measure ${p.measure} needs "receiver" and/or "integration" (or "channel" / "to")`);
    }
    if (p.channel && p.integration && p.integration !== 'slack') problems.push(`"channel" is a Slack setting; integration is ${p.integration}`);
    if (p.to && p.integration && p.integration !== 'email') problems.push(`"to" is an email setting; integration is ${p.integration}`);
    if (p.labels && Object.keys(p.labels).length === 0) problems.push('"labels" needs at least one label');
    problems.push(...matcherProblems(p.matchers));
    return problems;
  },

  load: loadApiClient,

  run(p, ctx) {
    return withApi(p, ctx, { service: 'Alertmanager' }, (api) => (p.measure === 'alert' ? measureAlert(api, p) : measureConfig(api, p)));
  },
});

// ---------------------------------------------------------------------------------------------
// The running configuration
// ---------------------------------------------------------------------------------------------

const Status = Type.Object({ config: Type.Object({ original: Type.String() }) });

/** The parts of an Alertmanager route the dispatcher uses to pick receivers. */
export interface AmRoute {
  receiver?: string;
  match?: Record<string, string>;
  match_re?: Record<string, string>;
  matchers?: string[];
  continue?: boolean;
  routes?: AmRoute[];
  mute_time_intervals?: string[];
  active_time_intervals?: string[];
}

const RouteSchema = Type.Recursive((This) =>
  Type.Object({
    receiver: Type.Optional(Type.String()),
    match: Type.Optional(Type.Record(Type.String(), Type.String())),
    match_re: Type.Optional(Type.Record(Type.String(), Type.String())),
    matchers: Type.Optional(Type.Array(Type.String())),
    continue: Type.Optional(Type.Boolean()),
    routes: Type.Optional(Type.Array(This)),
  }),
);

const ConfigSchema = Type.Object({
  route: RouteSchema,
  receivers: Type.Array(Type.Object({ name: Type.String() })),
});

export type AmReceiver = { name: string } & Record<string, unknown>;

export interface AmConfig {
  route: AmRoute;
  receivers: AmReceiver[];
}

/** Parses `config.original`; ProbeError('protocol') when it is not an Alertmanager configuration. */
export function parseConfig(original: string, where: string): AmConfig {
  let doc: unknown;
  try {
    doc = parseYaml(original);
  } catch (err) {
    throw new ProbeError('protocol', `${where}: config.original is not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  // Alertmanager writes matchers as strings; YAML could read unquoted numbers and booleans in
  // match/match_re as other types, so values are checked to be strings like the schema says.
  return decode(ConfigSchema, doc, where, 'an Alertmanager configuration (route and receivers)') as AmConfig;
}

/** A route with its matchers compiled and its receiver inherited, as Alertmanager builds it. */
export interface RouteNode {
  /** route, route.routes[0], route.routes[0].routes[2]: for messages. */
  path: string;
  receiver: string;
  matchers: LabelMatcher[];
  continue: boolean;
  routes: RouteNode[];
  timeIntervals: string[];
}

/** Builds the tree; throws Error naming the route for a matcher or regex that does not parse. */
export function buildRouteTree(route: AmRoute, parentReceiver = '', path = 'route'): RouteNode {
  const matchers: LabelMatcher[] = [];
  try {
    for (const [k, v] of Object.entries(route.match ?? {})) matchers.push(labelMatcher(k, '=', String(v)));
    for (const [k, v] of Object.entries(route.match_re ?? {})) matchers.push(labelMatcher(k, '=~', String(v)));
    for (const m of route.matchers ?? []) matchers.push(...parseMatchers(m));
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  const receiver = route.receiver || parentReceiver;
  return {
    path,
    receiver,
    matchers,
    continue: route.continue === true,
    routes: (route.routes ?? []).map((r, i) => buildRouteTree(r, receiver, `${path}.routes[${i}]`)),
    timeIntervals: [...(route.mute_time_intervals ?? []), ...(route.active_time_intervals ?? [])],
  };
}

/**
 * The routes an alert with `labels` ends in, in order (Alertmanager's dispatch.Route.Match): a
 * route that matches descends into its children; the first matching child without `continue`
 * stops the search among its siblings; a matching route none of whose children match is
 * itself a destination. The root matches every alert, so it is the default.
 */
export function matchRoutes(node: RouteNode, labels: Readonly<Record<string, string>>): RouteNode[] {
  if (!matchesAll(node.matchers, labels)) return [];
  const all: RouteNode[] = [];
  for (const child of node.routes) {
    const found = matchRoutes(child, labels);
    all.push(...found);
    if (found.length > 0 && !child.continue) break;
  }
  return all.length > 0 ? all : [node];
}

function describeRoute(r: RouteNode): string {
  const bits = [...r.matchers.map(formatMatcher), ...(r.continue ? ['continue'] : [])];
  return `${r.path}${bits.length > 0 ? ` (${bits.join(', ')})` : r.path === 'route' ? ' (the default route)' : ''}`;
}

function configsOf(r: AmReceiver, integration: string): Record<string, unknown>[] {
  const v = r[`${integration}_configs`];
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function integrationsOf(r: AmReceiver): string[] {
  return INTEGRATIONS.filter((i) => configsOf(r, i).length > 0);
}

const normChannel = (c: string) => c.trim().replace(/^#/, '').toLowerCase();

/** Receivers that satisfy the selection, and why each other one does not (for messages). */
function selectReceivers(receivers: readonly AmReceiver[], p: AlertmanagerParams): { matching: AmReceiver[]; wanted: string; why: string } {
  const integration = p.integration ?? (p.channel ? 'slack' : p.to ? 'email' : undefined);
  const wanted = [
    p.receiver ? `receiver ${p.receiver}` : integration ? `a receiver with ${integration}_configs` : '',
    p.receiver && integration ? `with ${integration}_configs` : '',
    p.channel ? `posting to ${p.channel}` : '',
    p.to ? `sending to ${p.to}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const named = p.receiver ? receivers.filter((r) => r.name === p.receiver) : [...receivers];
  if (p.receiver && named.length === 0) {
    return { matching: [], wanted, why: `no receiver is named ${p.receiver} (receivers: ${receivers.map((r) => r.name).join(', ') || 'none'})` };
  }
  const withIntegration = integration ? named.filter((r) => configsOf(r, integration).length > 0) : named;
  if (withIntegration.length === 0) {
    const have = named.map((r) => `${r.name}: ${integrationsOf(r).join(', ') || 'no integrations'}`);
    return { matching: [], wanted, why: `no ${p.receiver ? `receiver ${p.receiver}` : 'receiver'} has ${integration}_configs (${listSome(have)})` };
  }
  let matching = withIntegration;
  if (p.channel) {
    const want = normChannel(p.channel);
    matching = matching.filter((r) => configsOf(r, 'slack').some((c) => typeof c.channel === 'string' && normChannel(c.channel) === want));
    if (matching.length === 0) {
      const channels = withIntegration.flatMap((r) => configsOf(r, 'slack').map((c) => `${r.name}: ${typeof c.channel === 'string' ? c.channel : '(webhook default channel)'}`));
      return { matching, wanted, why: `no Slack config posts to ${p.channel} (${listSome(channels)})` };
    }
  }
  if (p.to) {
    const want = p.to.trim().toLowerCase();
    const addresses = (c: Record<string, unknown>) => (typeof c.to === 'string' ? c.to.split(',').map((a) => a.trim().toLowerCase()) : []);
    matching = matching.filter((r) => configsOf(r, 'email').some((c) => addresses(c).includes(want)));
    if (matching.length === 0) {
      const tos = withIntegration.flatMap((r) => configsOf(r, 'email').map((c) => `${r.name}: ${typeof c.to === 'string' ? c.to : '?'}`));
      return { matching, wanted, why: `no email config sends to ${p.to} (${listSome(tos)})` };
    }
  }
  return { matching, wanted, why: '' };
}

async function measureConfig(api: ApiClient, p: AlertmanagerParams): Promise<Observation> {
  const path = '/api/v2/status';
  const where = api.where(path);
  const status = decode(Status, await api.getJson(path), where, 'an Alertmanager status');
  const config = parseConfig(status.config.original, where);
  const { matching, wanted, why } = selectReceivers(config.receivers, p);
  const names = matching.map((r) => r.name);
  const base = { receivers: config.receivers.length, matching: matching.length, receiver_names: names };

  if (p.measure === 'receivers') {
    if (matching.length === 0) return { value: 0, fields: base, failure: { reason: 'condition', message: why } };
    const detail = matching.map((r) => `${r.name} (${integrationsOf(r).join(', ') || 'no integrations'})`);
    return { value: matching.length, fields: base, message: `${wanted}: ${listSome(detail)}` };
  }

  let tree: RouteNode;
  try {
    tree = buildRouteTree(config.route);
  } catch (err) {
    throw new ProbeError('protocol', `${where}: the running route tree does not parse here: ${(err as Error).message}`);
  }
  const labels = p.labels ?? {};
  const routes = matchRoutes(tree, labels);
  const receivers = [...new Set(routes.map((r) => r.receiver))];
  const routed = receivers.some((r) => names.includes(r));
  const fields = { ...base, routed, matched_receivers: receivers, matched_routes: routes.map((r) => r.path) };
  const alert = formatLabels(labels) || '{}';
  const via = routes.map((r) => `${r.receiver} via ${describeRoute(r)}`);
  const muted = routes.filter((r) => r.timeIntervals.length > 0).map((r) => `${r.path}: ${r.timeIntervals.join(', ')}`);
  const mutedNote = muted.length > 0 ? `; time intervals not evaluated (${muted.join('; ')})` : '';
  if (matching.length === 0) {
    return { value: 0, fields, failure: { reason: 'condition', message: `an alert ${alert} cannot reach ${wanted}: ${why}; it goes to ${listSome(via)}` } };
  }
  if (!routed) {
    return { value: 0, fields, failure: { reason: 'condition', message: `an alert ${alert} goes to ${listSome(via)}, not to ${listSome(names)}${mutedNote}` } };
  }
  return { value: 1, fields, message: `an alert ${alert} reaches ${listSome(via)}${mutedNote}` };
}

// ---------------------------------------------------------------------------------------------
// Active alerts
// ---------------------------------------------------------------------------------------------

const Alerts = Type.Array(
  Type.Object({
    labels: Type.Record(Type.String(), Type.String()),
    updatedAt: Type.Optional(Type.String()),
    startsAt: Type.Optional(Type.String()),
    status: Type.Optional(Type.Object({ state: Type.String() })),
  }),
);

async function measureAlert(api: ApiClient, p: AlertmanagerParams): Promise<Observation> {
  const path = '/api/v2/alerts';
  const where = api.where(path);
  // Silenced and inhibited alerts still prove the pipeline works: ask for every active alert.
  const alerts = decode(Alerts, await api.getJson(path, { active: 'true', silenced: 'true', inhibited: 'true', unprocessed: 'true' }), where, 'an alerts list');
  const name = p.alertname ?? DEFAULT_ALERTNAME;
  const matchers = (p.matchers ?? []).flatMap((m) => parseMatchers(m));
  const found = alerts.filter((a) => a.labels.alertname === name && matchesAll(matchers, a.labels));
  const filter = matchers.length > 0 ? ` matching ${matchers.map(formatMatcher).join(', ')}` : '';
  if (found.length === 0) {
    const others = [...new Set(alerts.map((a) => a.labels.alertname ?? '?'))];
    return {
      value: 0,
      fields: { present: false, alerts: 0, suppressed: 0 },
      failure: {
        reason: 'condition',
        message: `${name}${filter} is not active in Alertmanager: the path from Prometheus (the rule, its evaluation, the notifier) to Alertmanager is broken${others.length > 0 ? ` (active: ${listSome(others)})` : ' (no alerts active at all)'}`,
      },
    };
  }
  const now = Date.now();
  const updated = found.map((a) => Date.parse(a.updatedAt ?? a.startsAt ?? '')).filter((t) => Number.isFinite(t));
  const fields: Record<string, unknown> = {
    present: true,
    alerts: found.length,
    suppressed: found.filter((a) => a.status?.state === 'suppressed').length,
  };
  if (updated.length > 0) fields.updated_seconds = Math.max(0, (now - Math.max(...updated)) / 1000);
  const age = fields.updated_seconds === undefined ? '' : `, last received ${Math.round(fields.updated_seconds as number)}s ago`;
  return { value: found.length, fields, message: `${name}${filter} is active in Alertmanager (${found.length} alert${found.length > 1 ? 's' : ''}${age})` };
}

