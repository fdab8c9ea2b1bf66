// flow: a user flow as a sequence of HTTP requests (log in, create an activity, generate a
// report, view the dashboard). A step can capture values from its answer (`capture: { token:
// json.token }`) that later steps use as `{{token}}` in their path, headers and body. Each
// step has its own expected statuses and conditions; the first step that fails ends the flow,
// and the observation names it. Cookies set by an answer are sent back to the same origin,
// so session-cookie logins work too.
//
// Credentials go in `secrets` (values from ${ENV}), used as {{name}}: they and every captured
// value (session tokens) are kept out of messages.
import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import { ConditionError, evaluateConditionAsync, parseCondition, resolveField, type Condition } from '../conditions.js';
import { reasonFromError, type Reason } from '../reasons.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type FieldSpecs, type Observation } from './types.js';
import { commonjs, lazy } from './lazy.js';
import { scrubSecrets } from './shared.js';

const undici = lazy(() => import('undici').then(commonjs));

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const NAME = '^[a-z0-9][a-z0-9_-]{0,62}$';
const VAR = '^[A-Za-z_][A-Za-z0-9_]*$';
/** Most steps in one flow: a flow is a smoke test, not a load test. */
const MAX_STEPS = 20;

const Step = Type.Object(
  {
    name: Type.String({ pattern: NAME, 'x-hint': 'lower-case letters, digits, - and _', description: 'Step name, shown when it fails.' }),
    method: Type.Union(
      METHODS.map((m) => Type.Literal(m)),
      { default: 'GET', description: 'HTTP method.' },
    ),
    path: Type.Optional(Type.String({ description: "Appended to the flow's url; may use {{vars}} (URL-encoded) and carry a ?query." })),
    url: Type.Optional(Type.String({ minLength: 1, description: "Absolute URL instead of the flow's url + path." })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Request headers; values may use {{vars}}.' })),
    body: Type.Optional(Type.String({ description: 'Request body; may use {{vars}}.' })),
    json: Type.Optional(Type.Unknown({ description: 'Request body sent as JSON; string values may use {{vars}} ("{{id}}" alone keeps the captured type).' })),
    expectStatus: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, description: 'Statuses that pass (default: any 2xx).' })),
    capture: Type.Optional(
      Type.Record(Type.String({ pattern: VAR }), Type.String({ pattern: '^(status|body|json(\\.[^.\\s]+)*|header\\.[a-z0-9-]+)$', 'x-hint': 'status, body, json.PATH or header.NAME' }), {
        description: 'Variables taken from the answer: { token: json.access_token, location: header.location }.',
      }),
    ),
    expect: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Conditions on this step\'s answer: status, duration_ms, body, json.*, header.*.' })),
  },
  { additionalProperties: false },
);
type StepT = Static<typeof Step>;

const params = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Base URL the steps\' paths are appended to.' }),
    steps: Type.Array(Step, { minItems: 1, maxItems: MAX_STEPS, description: 'The requests, in order.' }),
    vars: Type.Optional(Type.Record(Type.String({ pattern: VAR }), Type.String(), { description: 'Values usable as {{name}} (not secret).' })),
    secrets: Type.Optional(
      Type.Record(Type.String({ pattern: VAR }), Type.String(), { description: 'Secret values usable as {{name}}, e.g. password: "${SMOKE_PASSWORD}"; never shown.' }),
    ),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Headers sent with every step (a step\'s own win).' })),
    cookies: Type.Boolean({ default: true, description: 'Send cookies set by earlier answers back to the same origin.' }),
    maxBodyBytes: Type.Integer({ minimum: 0, default: 1_048_576, description: 'Read at most this many bytes of each answer.' }),
    insecure: Type.Boolean({ default: false, description: 'Skip TLS certificate verification.' }),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;

/** What a step's own conditions may refer to: the same names as the http kind's fields. */
export const STEP_FIELDS: FieldSpecs = {
  status: { type: 'number', description: 'HTTP status.' },
  duration_ms: { type: 'number', unit: 'ms', description: 'Time of the step.' },
  body: { type: 'string', description: 'Answer body (capped).' },
  'json.*': { type: 'any', description: 'Answer parsed as JSON.' },
  'header.*': { type: 'string', description: 'Answer headers by lower-case name.' },
};

const TEMPLATE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** Names a step's request refers to with {{...}}. */
function references(step: StepT): string[] {
  const texts: string[] = [step.path ?? '', step.url ?? '', step.body ?? '', ...Object.values(step.headers ?? {})];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') texts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(step.json);
  return [...new Set(texts.flatMap((t) => [...t.matchAll(TEMPLATE)].map((m) => m[1]!)))];
}

function fill(text: string, vars: Map<string, unknown>, encode = false): string {
  return text.replace(TEMPLATE, (_m, name: string) => {
    const v = vars.get(name);
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return encode ? encodeURIComponent(s) : s;
  });
}

function fillJson(v: unknown, vars: Map<string, unknown>): unknown {
  if (typeof v === 'string') {
    const whole = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/.exec(v);
    return whole ? vars.get(whole[1]!) : fill(v, vars);
  }
  if (Array.isArray(v)) return v.map((x) => fillJson(x, vars));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillJson(x, vars)]));
  return v;
}

function stepUrl(p: Params, step: StepT, vars: Map<string, unknown>): URL {
  if (step.url) return new URL(fill(step.url, vars));
  const u = new URL(p.url);
  const path = step.path ? fill(step.path, vars, true) : '';
  if (path) {
    const q = path.indexOf('?');
    const pathPart = q < 0 ? path : path.slice(0, q);
    u.pathname = u.pathname.replace(/\/+$/, '') + '/' + pathPart.replace(/^\/+/, '');
    if (q >= 0) u.search = path.slice(q);
  }
  return u;
}

function conditionsOf(step: StepT): Condition[] {
  return (step.expect ?? []).map((src) => ({ ...parseCondition(src, STEP_FIELDS), source: src }));
}

function shownUrl(u: URL): string {
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  c.search = '';
  return c.href;
}

async function readCapped(body: AsyncIterable<Buffer>, cap: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > cap) {
      chunks.push(chunk.subarray(0, cap - size));
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
}

/** A path or URL without a query string (a Location header, a resource link): not a credential. */
function isPlainLocation(v: unknown): boolean {
  return typeof v === 'string' && /^(\/|https?:\/\/)[^?#\s]*$/.test(v);
}

/** Replaces each secret and captured value (4+ characters) with ***. */
function scrubber(values: () => string[]): (text: string) => string {
  return (text) => scrubSecrets(text, values());
}

export default defineProbe({
  kind: 'flow',
  description: 'A multi-step HTTP user flow: values captured from one answer are used in later requests; the failing step is named.',
  params,
  secretParams: ['secrets', 'headers'],
  fields: {
    duration_ms: { type: 'number', unit: 'ms', description: 'The whole flow (the value).' },
    steps: { type: 'number', description: 'Steps that ran (the failing one included).' },
    steps_passed: { type: 'number', description: 'Steps that passed.' },
    failed_step: { type: 'string', description: 'Name of the step that failed; empty when none did.' },
    'step.*': { type: 'any', description: 'Per step: step.NAME.status, step.NAME.duration_ms.' },
  },

  validate(p) {
    const problems: string[] = [];
    try {
      const u = new URL(p.url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') problems.push('url must be an http(s) URL');
    } catch {
      problems.push('url is not a valid URL');
    }
    const known = new Set([...Object.keys(p.vars ?? {}), ...Object.keys(p.secrets ?? {})]);
    const names = new Set<string>();
    for (const [i, step] of p.steps.entries()) {
      const label = `steps[${i}] (${step.name})`;
      if (names.has(step.name)) problems.push(`${label}: duplicate step name`);
      names.add(step.name);
      if (step.path !== undefined && step.url !== undefined) problems.push(`${label}: set either path or url, not both`);
      if (step.body !== undefined && step.json !== undefined) problems.push(`${label}: set either body or json, not both`);
      for (const ref of references(step)) {
        if (!known.has(ref)) problems.push(`${label}: {{${ref}}} is not a var, a secret or captured by an earlier step`);
      }
      for (const src of step.expect ?? []) {
        try {
          parseCondition(src, STEP_FIELDS);
        } catch (err) {
          if (!(err instanceof ConditionError)) throw err;
          problems.push(`${label}: bad condition ${JSON.stringify(src)}: ${err.message}`);
        }
      }
      for (const v of Object.keys(step.capture ?? {})) known.add(v);
    }
    return problems;
  },

  load: undici,

  async run(p, ctx): Promise<Observation> {
    const { signal } = ctx;
    const vars = new Map<string, unknown>([...Object.entries(p.vars ?? {}), ...Object.entries(p.secrets ?? {})]);
    const hidden = () =>
      [...Object.values(p.secrets ?? {}), ...[...captured].map((k) => vars.get(k)).filter((v) => !isPlainLocation(v))].filter(
        (v): v is string => typeof v === 'string' && v.length >= 4,
      );
    const captured = new Set<string>();
    const scrub = scrubber(hidden);
    const cookies = new Map<string, Map<string, string>>();
    const perStep: Record<string, { status?: number; duration_ms?: number }> = {};
    const summary: string[] = [];
    const backstop = ctx.timeoutMs * 2;
    const { Agent, request } = await undici();
    const agent = new Agent({ connect: await agentConnect({ timeout: backstop, rejectUnauthorized: !p.insecure }, ctx), headersTimeout: backstop, bodyTimeout: backstop });
    const started = performance.now();
    const fields = (failed: string, ran: number) => ({
      duration_ms: performance.now() - started,
      steps: ran,
      steps_passed: failed ? ran - 1 : ran,
      failed_step: failed,
      step: perStep,
    });
    const fail = (i: number, step: StepT, reason: Reason, what: string): Observation => {
      const f = fields(step.name, i + 1);
      return { value: f.duration_ms, fields: f, failure: { reason, message: scrub(`step ${step.name} (${i + 1}/${p.steps.length}): ${what}`) } };
    };

    try {
      for (const [i, step] of p.steps.entries()) {
        let url: URL;
        try {
          url = stepUrl(p, step, vars);
        } catch {
          return { fields: fields(step.name, i + 1), error: { reason: 'error', message: scrub(`step ${step.name}: its URL is not valid`) } };
        }
        const seen = `${step.method} ${shownUrl(url)}`;
        const headers: Record<string, string> = { 'user-agent': 'readiness-exporter' };
        for (const [k, v] of Object.entries({ ...p.headers, ...step.headers })) headers[k.toLowerCase()] = fill(v, vars);
        const jar = cookies.get(url.origin);
        if (p.cookies && jar && jar.size > 0 && headers.cookie === undefined) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        let body = step.body !== undefined ? fill(step.body, vars) : undefined;
        if (step.json !== undefined) {
          body = JSON.stringify(fillJson(step.json, vars));
          headers['content-type'] ??= 'application/json';
        }

        const t0 = performance.now();
        let status: number;
        let resHeaders: Record<string, string | string[] | undefined>;
        let text: string;
        let truncated: boolean;
        try {
          const res = await request(url, { method: step.method, headers, body, signal, dispatcher: agent });
          ({ text, truncated } = await readCapped(res.body as AsyncIterable<Buffer>, p.maxBodyBytes));
          status = res.statusCode;
          resHeaders = res.headers;
        } catch (err) {
          if (signal.aborted) {
            throw new ProbeError('timeout', scrub(`step ${step.name} (${i + 1}/${p.steps.length}): ${seen}: no complete response before the check timeout (${ctx.timeoutMs} ms)`));
          }
          const e = err as Error & { code?: string };
          const f = fields(step.name, i + 1);
          return { fields: f, error: { reason: reasonFromError(e), message: scrub(`step ${step.name} (${i + 1}/${p.steps.length}): ${seen}: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`) } };
        }
        const ms = performance.now() - t0;
        perStep[step.name] = { status, duration_ms: ms };

        const stepFields: Record<string, unknown> = { status, duration_ms: ms, body: text };
        for (const [name, v] of Object.entries(resHeaders)) if (v !== undefined) stepFields[`header.${name}`] = Array.isArray(v) ? v.join(', ') : v;
        if (!truncated && text.trim() !== '') {
          try {
            stepFields.json = JSON.parse(text);
          } catch {
            // Not JSON: json.* conditions and captures see a missing field.
          }
        }
        const setCookie = resHeaders['set-cookie'];
        for (const c of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
          const m = /^\s*([^=;\s]+)=([^;]*)/.exec(c);
          if (!m) continue;
          if (!cookies.has(url.origin)) cookies.set(url.origin, new Map());
          cookies.get(url.origin)!.set(m[1]!, m[2]!);
          captured.add(`cookie:${m[1]}`);
          vars.set(`cookie:${m[1]}`, m[2]!);
        }

        const ok = step.expectStatus ? step.expectStatus.includes(status) : status >= 200 && status < 300;
        if (!ok) {
          const want = step.expectStatus ? `status ${step.expectStatus.join(' or ')}` : 'a 2xx status';
          const reason: Reason = status === 401 || status === 403 ? 'auth' : status === 429 ? 'rate-limited' : 'http-status';
          return fail(i, step, reason, `${seen}: expected ${want}, got ${status}`);
        }
        for (const c of conditionsOf(step)) {
          const r = await evaluateConditionAsync(c, stepFields);
          if (!r.ok) return fail(i, step, 'condition', `${seen}: ${r.text}`);
        }
        for (const [name, from] of Object.entries(step.capture ?? {})) {
          const v = resolveField(stepFields, from);
          if (v === undefined || v === null) return fail(i, step, 'protocol', `${seen}: answered ${status} without ${from} (capture ${name})`);
          vars.set(name, v);
          captured.add(name);
        }
        summary.push(`${step.name} ${status} (${Math.round(ms)} ms)`);
      }
    } finally {
      await agent.destroy();
    }
    const f = fields('', p.steps.length);
    return { value: f.duration_ms, fields: f, message: scrub(`${p.steps.length} steps passed in ${Math.round(f.duration_ms)} ms: ${summary.join(', ')}`) };
  },
});
