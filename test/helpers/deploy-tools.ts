// What Argo Rollouts and Flagger do with an HTTP answer, as their sources do it, so a test can
// send their exact requests to a running exporter and assert the decision each would take.
//
// Argo Rollouts v1.9 (metricproviders/webmetric/webmetric.go, analysis/analysis.go,
// utils/analysis/factory.go):
//   - args are substituted into the metric's JSON ({{args.NAME}}, the value JSON-escaped);
//   - the request uses the metric's method (GET by default), headers, and jsonBody (as JSON,
//     with Content-Type: application/json); the client times out after timeoutSeconds (10);
//   - a transport error or a status outside 200-299 is a measurement Error;
//   - the body is parsed as JSON, jsonPath picks the first value (a missing key is an Error),
//     and successCondition/failureCondition decide Successful/Failed/Inconclusive (argo-expr.ts);
//   - a metric is Failed once failed > failureLimit (default 0), Inconclusive once
//     inconclusive > inconclusiveLimit (0), Error once consecutive errors > consecutiveErrorLimit
//     (default 4); Successful once `count` measurements are taken (count 1 when there is no
//     interval); otherwise still Running. Errors do not count towards `count`.
// Flagger v1.44 (pkg/controller/webhook.go, scheduler_hooks.go, go-retryablehttp v0.7):
//   - every webhook is a POST of {name, namespace, phase, checksum, metadata} as JSON;
//   - a 429 or a 5xx other than 501 is retried `retries` times (default 0), then an error;
//     any other status above 202 is an error carrying the body; 200-202 is success.
import { evaluateResult, type Phase } from './argo-expr.js';

export interface WebMetric {
  name: string;
  interval?: string;
  count?: number;
  failureLimit?: number;
  inconclusiveLimit?: number;
  consecutiveErrorLimit?: number;
  successCondition?: string;
  failureCondition?: string;
  provider: { web: { url: string; method?: string; headers?: { key: string; value: string }[]; jsonBody?: unknown; body?: string; jsonPath?: string; timeoutSeconds?: number } };
}

/** utils/template ResolveQuotedArgs over the marshalled metric. */
export function resolveArgs(metric: WebMetric, args: Record<string, string>): WebMetric {
  const text = JSON.stringify(metric).replace(/\{\{\s*args\.([\w-]+)\s*\}\}/g, (m, name: string) => {
    if (!(name in args)) throw new Error(`failed to resolve {{args.${name}}}`);
    return JSON.stringify(args[name]).slice(1, -1);
  });
  return JSON.parse(text) as WebMetric;
}

/** The subset of Kubernetes JSONPath the templates use: {$}, {$.a.b}, {.a.b}. */
export function jsonPath(data: unknown, path: string): unknown {
  const m = /^\{\s*\$?((?:\.[\w-]+)*)\s*\}$/.exec(path);
  if (!m) throw new Error(`unsupported jsonPath ${path}`);
  let v = data;
  for (const key of m[1]!.split('.').filter(Boolean)) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !(key in v)) throw new Error(`${key} is not found`);
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export interface Measurement {
  phase: Phase;
  status?: number;
  value?: unknown;
  message?: string;
}

/** One measurement of a web metric, as the web provider takes it. */
export async function measure(metric: WebMetric): Promise<Measurement> {
  const web = metric.provider.web;
  const method = web.method ?? 'GET';
  if (web.body && web.jsonBody !== undefined) return { phase: 'Error', message: 'use either Body or JSONBody' };
  if ((web.body || web.jsonBody !== undefined) && method === 'GET') return { phase: 'Error', message: 'Body/JSONBody can only be used with POST or PUT' };
  const headers: Record<string, string> = {};
  for (const h of web.headers ?? []) headers[h.key] = h.value;
  let body: string | undefined = web.body;
  if (web.jsonBody !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(web.jsonBody);
  }
  let res: Response;
  try {
    res = await fetch(web.url, { method, headers, ...(body !== undefined && { body }), signal: AbortSignal.timeout((web.timeoutSeconds && web.timeoutSeconds > 0 ? web.timeoutSeconds : 10) * 1000) });
  } catch (err) {
    return { phase: 'Error', message: String((err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message) };
  }
  const text = await res.text();
  if (res.status < 200 || res.status >= 300) return { phase: 'Error', status: res.status, message: `received non 2xx response code: ${res.status}` };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    const r = evaluateResult(text, metric);
    return { phase: r.phase, status: res.status, value: text, ...(r.error && { message: r.error }) };
  }
  let value: unknown;
  try {
    value = jsonPath(data, web.jsonPath ?? '{$}');
  } catch (err) {
    return { phase: 'Error', status: res.status, message: `Could not find JSONPath in body: ${(err as Error).message}` };
  }
  const r = evaluateResult(value, metric);
  return { phase: r.phase, status: res.status, value, ...(r.error && { message: r.error }) };
}

export type MetricPhase = Phase | 'Running';

/** A metric's results and its phase after each measurement (analysis.assessMetricStatus). */
export class MetricRun {
  successful = 0;
  failed = 0;
  inconclusive = 0;
  error = 0;
  consecutiveError = 0;
  count = 0;
  readonly measurements: Measurement[] = [];
  constructor(readonly metric: WebMetric) {}

  add(m: Measurement): MetricPhase {
    this.measurements.push(m);
    if (m.phase === 'Error') {
      this.error++;
      this.consecutiveError++;
    } else {
      this.consecutiveError = 0;
      this.count++;
      if (m.phase === 'Successful') this.successful++;
      if (m.phase === 'Failed') this.failed++;
      if (m.phase === 'Inconclusive') this.inconclusive++;
    }
    return this.phase();
  }

  phase(): MetricPhase {
    const { metric } = this;
    let phase: MetricPhase | undefined;
    const failureLimit = metric.failureLimit ?? 0;
    if (failureLimit >= 0 && this.failed > failureLimit) phase = 'Failed';
    if (this.inconclusive > (metric.inconclusiveLimit ?? 0)) phase = 'Inconclusive';
    if (this.consecutiveError > (metric.consecutiveErrorLimit ?? 4)) phase = 'Error';
    if (phase) return phase;
    const effectiveCount = metric.count ? metric.count : metric.interval ? undefined : 1;
    if (effectiveCount !== undefined && this.count >= effectiveCount) return 'Successful';
    return 'Running';
  }

  /** Measures until the metric is decided or `max` measurements were taken. */
  async runUntilDecided(max: number, between?: () => Promise<void>): Promise<MetricPhase> {
    for (let i = 0; i < max; i++) {
      const p = this.add(await measure(this.metric));
      if (p !== 'Running') return p;
      await between?.();
    }
    return this.phase();
  }
}

export interface FlaggerWebhook {
  name: string;
  type: string;
  url: string;
  timeout?: string;
  retries?: number;
  metadata?: Record<string, string>;
}

/** CallWebhook: undefined on success, else the error Flagger records. */
export async function callWebhook(w: FlaggerWebhook, canary: { name: string; namespace: string; phase: string }): Promise<{ ok: boolean; status?: number; error?: string; attempts: number }> {
  const payload = { name: canary.name, namespace: canary.namespace, phase: canary.phase, checksum: 'test', ...(w.metadata && { metadata: w.metadata }) };
  const seconds = Number(/^(\d+)s$/.exec(w.timeout ?? '10s')?.[1] ?? 10);
  let attempts = 0;
  for (;;) {
    attempts++;
    let status: number | undefined;
    let body = '';
    let transport: string | undefined;
    try {
      const res = await fetch(w.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(payload), signal: AbortSignal.timeout(seconds * 1000) });
      status = res.status;
      body = await res.text();
    } catch (err) {
      transport = String((err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
    }
    const retryable = transport !== undefined || status === 429 || (status !== undefined && status >= 500 && status !== 501);
    if (retryable && attempts <= (w.retries ?? 0)) continue;
    if (transport !== undefined) return { ok: false, error: transport, attempts };
    if (retryable) return { ok: false, status, error: `POST ${w.url} giving up after ${attempts} attempt(s): unexpected HTTP status ${status}`, attempts };
    if (status! > 202) return { ok: false, status, error: body, attempts };
    return { ok: true, status, attempts };
  }
}

/** What each hook type does with the call's outcome (scheduler_hooks.go, scheduler.go). */
export function flaggerDecision(type: string, ok: boolean): string {
  switch (type) {
    case 'pre-rollout':
      return ok ? 'start the analysis' : 'halt, failed checks +1 (rolled back at the threshold)';
    case 'confirm-promotion':
      return ok ? 'promote' : 'wait for promotion approval';
    case 'rollback':
      return ok ? 'roll back now' : 'no rollback signalled';
    default:
      throw new Error(`hook type ${type} not modelled`);
  }
}
