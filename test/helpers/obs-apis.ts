// Local servers speaking the documented HTTP APIs of Grafana (/api/search), Jaeger's query
// service (/api/services, /api/traces) and Loki (/loki/api/v1/query), for probe tests where
// the real service cannot run here: Grafana, Jaeger and Grafana Loki are not packaged for
// Debian 12 (Debian's `loki` package is an unrelated genetics tool).
//
// Each fake serves real data the test puts in (dashboards, services and spans, log lines)
// and computes answers from it the way the service does (Loki counts log lines over a range
// with a small LogQL subset), and can be told to misbehave: `fault` makes every request answer
// 401, 403, 404, 429, 500, a proxy's 502 HTML page, slowly, with malformed JSON, with JSON of
// the wrong shape, or by resetting the connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp } from './listeners.js';
import type { Teardown } from './service.js';

export type Fault = 'unauthorized' | 'forbidden' | 'not-found' | 'rate-limited' | 'server-error' | 'bad-gateway-html' | 'slow' | 'malformed' | 'wrong-shape' | 'reset';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

export interface FakeApi {
  /** Base URL, including the sub-path prefix when one was set. */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** When set, every request misbehaves this way. */
  fault: Fault | undefined;
  /** How long `slow` waits before answering. */
  slowMs: number;
}

interface Answer {
  status: number;
  body: unknown;
  /** text/plain instead of JSON. */
  text?: boolean;
}

interface FakeOptions {
  t: Teardown;
  /** Serve under this sub-path (Grafana's root_url /grafana, a proxy prefix). */
  prefix?: string;
  /** Undefined when the request is authorized, else the answer. */
  authorize(req: IncomingMessage): Answer | undefined;
  /** The service's own error body for a status (Grafana `{message}`, Jaeger `{errors}`, Loki text). */
  errorBody(status: number, message: string): Answer;
  route(path: string, query: URLSearchParams, req: IncomingMessage): Answer;
  /** A 200 body that parses as JSON but is not what the API returns. */
  wrongShape: unknown;
}

async function startFake(o: FakeOptions): Promise<FakeApi> {
  const prefix = (o.prefix ?? '').replace(/\/+$/, '');
  const state: { fault: Fault | undefined; slowMs: number; requests: RecordedRequest[] } = { fault: undefined, slowMs: 3000, requests: [] };
  const send = (res: ServerResponse, a: Answer, headers: Record<string, string> = {}) => {
    if (res.destroyed) return;
    const body = a.text ? String(a.body) : JSON.stringify(a.body);
    res.writeHead(a.status, { 'content-type': a.text ? 'text/plain; charset=utf-8' : 'application/json', ...headers });
    res.end(body);
  };
  const listener = await listenHttp((req, res) => {
    const u = new URL(req.url ?? '/', 'http://fake');
    state.requests.push({ method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, headers: req.headers });
    const fault = state.fault;
    const answer = async () => {
      switch (fault) {
        case 'reset':
          return void req.socket.destroy();
        case 'slow':
          await new Promise((r) => setTimeout(r, state.slowMs));
          break;
        case 'unauthorized':
          return send(res, o.errorBody(401, 'Unauthorized'));
        case 'forbidden':
          return send(res, o.errorBody(403, 'Permission denied'));
        case 'not-found':
          return send(res, o.errorBody(404, 'Not found'));
        case 'rate-limited':
          return send(res, o.errorBody(429, 'Too many requests'), { 'retry-after': '30' });
        case 'server-error':
          return send(res, o.errorBody(500, 'internal error: storage unavailable'));
        case 'bad-gateway-html':
          res.writeHead(502, { 'content-type': 'text/html' });
          return void res.end('<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>');
        case 'malformed':
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end('{"status":"success","data":[{"uid":');
        case 'wrong-shape':
          return send(res, { status: 200, body: o.wrongShape });
        case undefined:
          break;
      }
      if (prefix && !u.pathname.startsWith(`${prefix}/`)) return send(res, o.errorBody(404, 'Not found'));
      const denied = o.authorize(req);
      if (denied) return send(res, denied);
      send(res, o.route(u.pathname.slice(prefix.length), u.searchParams, req));
    };
    answer().catch(() => req.socket.destroy());
  });
  o.t.teardown(() => listener.close());
  return {
    url: `${listener.url}${prefix}`,
    requests: state.requests,
    get fault() {
      return state.fault;
    },
    set fault(f) {
      state.fault = f;
    },
    get slowMs() {
      return state.slowMs;
    },
    set slowMs(ms) {
      state.slowMs = ms;
    },
  };
}

function bearer(token: string | undefined, req: IncomingMessage): boolean {
  return token === undefined || req.headers.authorization === `Bearer ${token}`;
}

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

export interface FakeDashboard {
  uid: string;
  title: string;
  /** Folder title; undefined: the root (General). */
  folder?: string;
  /** Organisation (default 1). */
  orgId?: number;
}

/**
 * Grafana's GET /api/search: `query` (case-insensitive substring of the title), `dashboardUIDs`
 * (repeated), `type` (dash-db | dash-folder), `limit`; a service account token as Bearer.
 * `X-Grafana-Org-Id` selects the organisation the token must belong to.
 */
export async function fakeGrafana(t: Teardown, o: { token?: string; dashboards: FakeDashboard[]; prefix?: string; orgs?: number[] }): Promise<FakeApi & { dashboards: FakeDashboard[] }> {
  const errorBody = (status: number, message: string): Answer => ({ status, body: { message } });
  const fake = await startFake({
    t,
    prefix: o.prefix,
    authorize: (req) => {
      if (!bearer(o.token, req)) return { status: 401, body: { message: 'invalid API key', traceID: '' } };
      const org = Number(req.headers['x-grafana-org-id'] ?? 1);
      if (!(o.orgs ?? [1]).includes(org)) return { status: 401, body: { message: 'user is not a member of this organization' } };
      return undefined;
    },
    errorBody,
    wrongShape: { dashboards: 'not a list' },
    route: (path, q, req) => {
      if (path !== '/api/search') return errorBody(404, 'Not found');
      const org = Number(req.headers['x-grafana-org-id'] ?? 1);
      const needle = (q.get('query') ?? '').toLowerCase();
      const uids = q.getAll('dashboardUIDs');
      const type = q.get('type');
      const limit = Number(q.get('limit') ?? 1000);
      const hits = o.dashboards
        .filter((d) => (d.orgId ?? 1) === org)
        .filter(() => type === null || type === 'dash-db')
        .filter((d) => d.title.toLowerCase().includes(needle))
        .filter((d) => uids.length === 0 || uids.includes(d.uid))
        .slice(0, limit)
        .map((d, i) => ({
          id: i + 1,
          uid: d.uid,
          title: d.title,
          uri: `db/${d.title.toLowerCase().replace(/\W+/g, '-')}`,
          url: `/d/${d.uid}`,
          slug: '',
          type: 'dash-db',
          tags: [],
          isStarred: false,
          sortMeta: 0,
          ...(d.folder && { folderId: 7, folderUid: `f-${d.folder}`, folderTitle: d.folder, folderUrl: `/dashboards/f/f-${d.folder}` }),
        }));
      return { status: 200, body: hits };
    },
  });
  return Object.assign(fake, { dashboards: o.dashboards });
}

// ---------------------------------------------------------------------------------------------
// Jaeger
// ---------------------------------------------------------------------------------------------

export interface FakeSpan {
  service: string;
  operation: string;
  /** Start, ms since the epoch. */
  startMs: number;
  tags?: Record<string, string | boolean | number>;
}

/**
 * Jaeger query's GET /api/services and GET /api/traces (`service` required, `operation`,
 * `tags` as JSON, `start`/`end` in microseconds, `limit`), answering in its
 * `{data, total, limit, offset, errors}` envelope. Each span is its own trace.
 */
export async function fakeJaeger(t: Teardown, o: { services: string[]; spans: FakeSpan[]; token?: string }): Promise<FakeApi & { spans: FakeSpan[]; services: string[] }> {
  const envelope = (data: unknown, errors: unknown = null) => ({ data, total: Array.isArray(data) ? data.length : 0, limit: 0, offset: 0, errors });
  const errorBody = (status: number, message: string): Answer => ({ status, body: envelope(null, [{ code: status, msg: message }]) });
  const fake = await startFake({
    t,
    authorize: (req) => (bearer(o.token, req) ? undefined : { status: 401, body: 'Unauthorized', text: true }),
    errorBody,
    wrongShape: { services: ['api'] },
    route: (path, q) => {
      if (path === '/api/services') return { status: 200, body: envelope([...o.services]) };
      if (path !== '/api/traces') return errorBody(404, '404 page not found');
      const service = q.get('service');
      if (!service) return errorBody(400, "parameter 'service' is required");
      const start = Number(q.get('start') ?? 0) / 1000;
      const end = Number(q.get('end') ?? Date.now() * 1000) / 1000;
      const limit = Number(q.get('limit') ?? 20);
      const tags = q.get('tags') ? (JSON.parse(q.get('tags')!) as Record<string, string>) : {};
      const op = q.get('operation');
      const traces = o.spans
        .filter((s) => s.service === service && s.startMs >= start && s.startMs <= end && (!op || s.operation === op))
        .filter((s) => Object.entries(tags).every(([k, v]) => String(s.tags?.[k]) === v))
        .sort((a, b) => b.startMs - a.startMs)
        .slice(0, limit)
        .map((s, i) => {
          const traceID = `${(s.startMs * 1000 + i).toString(16).padStart(32, '0')}`;
          return {
            traceID,
            spans: [
              {
                traceID,
                spanID: traceID.slice(16),
                operationName: s.operation,
                references: [],
                startTime: s.startMs * 1000,
                duration: 1500,
                tags: Object.entries(s.tags ?? {}).map(([key, value]) => ({ key, type: typeof value === 'boolean' ? 'bool' : 'string', value })),
                logs: [],
                processID: 'p1',
                warnings: null,
              },
            ],
            processes: { p1: { serviceName: s.service, tags: [] } },
            warnings: null,
          };
        });
      return { status: 200, body: envelope(traces) };
    },
  });
  return Object.assign(fake, { spans: o.spans, services: o.services });
}

// ---------------------------------------------------------------------------------------------
// Loki
// ---------------------------------------------------------------------------------------------

export interface LogLine {
  labels: Record<string, string>;
  /** ms since the epoch. */
  atMs: number;
  line: string;
}

type LabelOp = '=' | '!=' | '=~' | '!~';
type LineOp = '|=' | '!=' | '|~' | '!~';

interface Parsed {
  /** Outer vector aggregation, if any. */
  agg?: { op: 'sum' | 'max' | 'min' | 'count'; by: string[] };
  /** Range aggregation; undefined for a log query. */
  fn?: 'count_over_time' | 'rate';
  selector: { name: string; op: LabelOp; value: string }[];
  filters: { op: LineOp; value: string }[];
  rangeMs?: number;
}

class LogqlError extends Error {
  constructor(
    message: string,
    readonly col: number,
  ) {
    super(message);
  }
}

/**
 * A subset of LogQL: `[sum|max|min|count [by (l, ...)]] (count_over_time|rate ( {sel} filters [range] ))`,
 * or a log query `{sel} filters`. Anything else is a parse error, as Loki reports it.
 */
export function parseLogql(q: string): Parsed {
  let i = 0;
  const ws = () => {
    while (i < q.length && /\s/.test(q[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new LogqlError(`syntax error: ${what}`, i + 1);
  };
  const expect = (s: string) => {
    ws();
    if (!q.startsWith(s, i)) fail(`unexpected ${JSON.stringify(q.slice(i, i + 8) || 'end of input')}, expecting ${s}`);
    i += s.length;
  };
  const ident = () => {
    ws();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(q.slice(i));
    if (!m) fail(`unexpected ${JSON.stringify(q.slice(i, i + 8) || 'end of input')}, expecting IDENTIFIER`);
    i += m![0].length;
    return m![0];
  };
  const str = () => {
    ws();
    const quote = q[i];
    if (quote !== '"' && quote !== '`') fail('expecting STRING');
    let out = '';
    for (i++; i < q.length && q[i] !== quote; i++) {
      if (quote === '"' && q[i] === '\\') i++;
      out += q[i];
    }
    if (i >= q.length) fail('unterminated string');
    i++;
    return out;
  };
  const labels = () => {
    expect('(');
    const out = [ident()];
    for (ws(); q[i] === ','; ws()) {
      i++;
      out.push(ident());
    }
    expect(')');
    return out;
  };
  const logQuery = (p: Parsed) => {
    expect('{');
    ws();
    while (q[i] !== '}') {
      const name = ident();
      ws();
      const op = (['=~', '!~', '!=', '='] as const).find((o) => q.startsWith(o, i));
      if (!op) fail('expecting = != =~ !~');
      i += op!.length;
      p.selector.push({ name, op: op!, value: str() });
      ws();
      if (q[i] === ',') i++;
      ws();
      if (i >= q.length) fail('unexpected end of input, expecting }');
    }
    i++;
    if (p.selector.length === 0) fail('queries require at least one regexp or equality matcher that does not have an empty-compatible value');
    for (ws(); ; ws()) {
      const op = (['|=', '!=', '|~', '!~'] as const).find((o) => q.startsWith(o, i));
      if (!op) break;
      i += op.length;
      p.filters.push({ op, value: str() });
    }
  };
  const p: Parsed = { selector: [], filters: [] };
  ws();
  const head = /^(sum|max|min|count)\b/.exec(q.slice(i));
  if (head) {
    i += head[0].length;
    ws();
    let by: string[] = [];
    if (q.startsWith('by', i)) {
      i += 2;
      by = labels();
    }
    p.agg = { op: head[1] as 'sum', by };
    expect('(');
  }
  ws();
  const fn = /^(count_over_time|rate)\b/.exec(q.slice(i));
  if (fn) {
    i += fn[0].length;
    p.fn = fn[1] as 'rate';
    expect('(');
    logQuery(p);
    expect('[');
    const m = /^(\d+)(ms|s|m|h|d)/.exec(q.slice(i));
    if (!m) fail('expecting a duration');
    i += m![0].length;
    p.rangeMs = Number(m![1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m![2] as 'ms'];
    expect(']');
    expect(')');
  } else if (p.agg) {
    fail(`unexpected ${JSON.stringify(q.slice(i, i + 8))}, expecting count_over_time or rate`);
  } else {
    logQuery(p);
  }
  if (p.agg) {
    expect(')');
    ws();
    if (q.startsWith('by', i) && p.agg.by.length === 0) {
      i += 2;
      p.agg.by = labels();
    }
  }
  ws();
  if (i < q.length) fail(`unexpected ${JSON.stringify(q.slice(i, i + 8))}`);
  return p;
}

function lineMatches(p: Parsed, l: LogLine): boolean {
  const sel = p.selector.every((m) => {
    const v = l.labels[m.name] ?? '';
    const re = () => new RegExp(`^(?:${m.value})$`);
    return m.op === '=' ? v === m.value : m.op === '!=' ? v !== m.value : m.op === '=~' ? re().test(v) : !re().test(v);
  });
  return (
    sel &&
    p.filters.every((f) => (f.op === '|=' ? l.line.includes(f.value) : f.op === '!=' ? !l.line.includes(f.value) : f.op === '|~' ? new RegExp(f.value).test(l.line) : !new RegExp(f.value).test(l.line)))
  );
}

const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).sort());

/** Evaluates a parsed query at `nowMs` over `lines` into Loki's `data` object. */
export function evaluateLogql(p: Parsed, lines: readonly LogLine[], nowMs: number): { resultType: string; result: unknown[] } {
  const ts = nowMs / 1000;
  if (!p.fn) {
    const streams = new Map<string, { stream: Record<string, string>; values: [string, string][] }>();
    for (const l of lines.filter((x) => x.atMs <= nowMs && lineMatches(p, x))) {
      const s = streams.get(key(l.labels)) ?? { stream: l.labels, values: [] };
      s.values.push([String(l.atMs * 1e6), l.line]);
      streams.set(key(l.labels), s);
    }
    return { resultType: 'streams', result: [...streams.values()] };
  }
  const inRange = lines.filter((x) => x.atMs <= nowMs && x.atMs > nowMs - p.rangeMs! && lineMatches(p, x));
  const perStream = new Map<string, { labels: Record<string, string>; n: number }>();
  for (const l of inRange) {
    const s = perStream.get(key(l.labels)) ?? { labels: l.labels, n: 0 };
    s.n++;
    perStream.set(key(l.labels), s);
  }
  let series = [...perStream.values()].map((s) => ({ labels: s.labels, v: p.fn === 'rate' ? s.n / (p.rangeMs! / 1000) : s.n }));
  if (p.agg) {
    const groups = new Map<string, { labels: Record<string, string>; vs: number[] }>();
    for (const s of series) {
      const labels = Object.fromEntries(p.agg.by.filter((b) => s.labels[b] !== undefined).map((b) => [b, s.labels[b]!]));
      const g = groups.get(key(labels)) ?? { labels, vs: [] };
      g.vs.push(s.v);
      groups.set(key(labels), g);
    }
    const op = p.agg.op;
    series = [...groups.values()].map((g) => ({
      labels: g.labels,
      v: op === 'sum' ? g.vs.reduce((a, b) => a + b, 0) : op === 'max' ? Math.max(...g.vs) : op === 'min' ? Math.min(...g.vs) : g.vs.length,
    }));
  }
  return { resultType: 'vector', result: series.map((s) => ({ metric: s.labels, value: [ts, String(s.v)] })) };
}

/**
 * Loki's GET /loki/api/v1/query (instant): `query`, `time` (ns or RFC3339, default now),
 * answering `{status, data: {resultType, result, stats}}`; parse errors are a 400 with a text
 * body; `tenant` makes X-Scope-OrgID required (401 "no org id" without it, as Loki does with
 * auth_enabled); `token` or `basic` puts a gateway's authentication in front. `override`
 * replaces the answers' data (a matrix result, say).
 */
export async function fakeLoki(
  t: Teardown,
  o: { lines: LogLine[]; tenant?: string; token?: string; basic?: { user: string; password: string } },
): Promise<FakeApi & { lines: LogLine[]; override: { resultType: string; result: unknown } | undefined }> {
  const errorBody = (status: number, message: string): Answer => ({ status, body: message, text: true });
  // Read at request time: the test sets it on the returned object.
  let self: { override: { resultType: string; result: unknown } | undefined } = { override: undefined };
  const fake = await startFake({
    t,
    authorize: (req) => {
      if (!bearer(o.token, req)) return { status: 401, body: 'Unauthorized', text: true };
      if (o.basic && req.headers.authorization !== `Basic ${Buffer.from(`${o.basic.user}:${o.basic.password}`).toString('base64')}`) {
        return { status: 401, body: '401 Authorization Required', text: true };
      }
      if (o.tenant !== undefined && req.headers['x-scope-orgid'] !== o.tenant) return { status: 401, body: 'no org id\n', text: true };
      return undefined;
    },
    errorBody,
    wrongShape: { status: 'success', data: { result: 'nope' } },
    route: (path, q) => {
      if (path !== '/loki/api/v1/query') return errorBody(404, '404 page not found\n');
      const query = q.get('query');
      if (!query) return errorBody(400, 'query parameter is required\n');
      const time = q.get('time');
      const nowMs = time ? (/^\d+$/.test(time) ? Number(time) / 1e6 : Date.parse(time)) : Date.now();
      let data: { resultType: string; result: unknown };
      try {
        data = self.override ?? evaluateLogql(parseLogql(query), o.lines, nowMs);
      } catch (err) {
        if (err instanceof LogqlError) return errorBody(400, `parse error at line 1, col ${err.col}: ${err.message}\n`);
        throw err;
      }
      return { status: 200, body: { status: 'success', data: { ...data, stats: { summary: { bytesProcessedPerSecond: 0, linesProcessedPerSecond: 0 } } } } };
    },
  });
  const result = Object.assign(fake, { lines: o.lines, override: undefined as { resultType: string; result: unknown } | undefined });
  self = result;
  return result;
}
