// Prometheus for tests, two halves:
//  - startPrometheus(): a real Prometheus (Debian's /usr/bin/prometheus) on a free 127.0.0.1
//    port with its own temp data directory, given rule files, scrape configs and Alertmanagers;
//    stopped and removed in t.teardown.
//  - PromQL checks without a server: parse an expression with @prometheus-io/lezer-promql and
//    list the metrics and label matchers it selects, plus the metric vocabulary that shipped
//    alerts and dashboards may use (the DESIGN.md contract and the documented app metrics).
import { writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import YAML from 'yaml';
import { freePort, logTail, removeDir, serviceDir, spawnService, waitFor, type ServiceProcess, type Teardown } from './service.js';

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';

/** The repository root, for repo-relative rule file paths. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PrometheusOptions {
  /** Rule files to load (absolute or relative to the repository root). */
  ruleFiles?: string[];
  /** `scrape_configs` entries, as in prometheus.yml. */
  scrapeConfigs?: Record<string, unknown>[];
  /** Alertmanagers to send alerts to, as `host:port`. */
  alertmanagers?: string[];
  /** Default 1s, so tests see scrapes and rule evaluations quickly. */
  scrapeInterval?: string;
  /** Default 1s. */
  evaluationInterval?: string;
  externalLabels?: Record<string, string>;
  /** Extra command-line flags. */
  args?: string[];
}

/** One group of GET /api/v1/rules. */
export interface RuleGroup {
  name: string;
  file: string;
  rules: { name: string; type: 'alerting' | 'recording'; health: string; lastError?: string; query: string; state?: string; alerts?: Alert[] }[];
  lastEvaluation: string;
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

/** One active target of GET /api/v1/targets. */
export interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** GET /api/v1/<path>: the `data` of a success answer; throws with Prometheus's error otherwise. */
  api<T>(path: string, params?: Record<string, string>): Promise<T>;
  /** An instant query; throws on a PromQL error. */
  query(expr: string, time?: number): Promise<Sample[]>;
  rules(): Promise<RuleGroup[]>;
  alerts(): Promise<Alert[]>;
  /** Waits until every loaded group has been evaluated at least once; returns the groups. */
  waitForRuleEvaluation(timeoutMs?: number): Promise<RuleGroup[]>;
  /** Waits until every loaded group has been evaluated `rounds` more times from now (counted, not slept out); returns the groups. */
  waitForMoreEvaluations(rounds: number, timeoutMs?: number): Promise<RuleGroup[]>;
  /**
   * Waits until `count` targets (default: every configured static target) are up and scraped at
   * least `scrapes` times (default 2, enough for rate()). Prometheus hands new targets to the
   * scraper about 5s after start: budget for it.
   */
  waitForTargets(opts?: { count?: number; scrapes?: number; timeoutMs?: number }): Promise<Target[]>;
  /** POST /-/reload after changing the rule files or configFile. */
  reload(): Promise<void>;
  stop(): Promise<void>;
  running(): boolean;
}

function configYaml(o: PrometheusOptions): string {
  const cfg: Record<string, unknown> = {
    global: {
      scrape_interval: o.scrapeInterval ?? '1s',
      evaluation_interval: o.evaluationInterval ?? '1s',
      ...(o.externalLabels && { external_labels: o.externalLabels }),
    },
    rule_files: (o.ruleFiles ?? []).map((f) => (isAbsolute(f) ? f : join(ROOT, f))),
    scrape_configs: o.scrapeConfigs ?? [],
  };
  if (o.alertmanagers?.length) {
    cfg.alerting = { alertmanagers: [{ static_configs: [{ targets: o.alertmanagers }], api_version: 'v2' }] };
  }
  return YAML.stringify(cfg);
}

/** A Prometheus duration of one unit (`500ms`, `1s`, `1m`) in milliseconds. */
function durationMs(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`unsupported duration ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

function staticTargets(o: PrometheusOptions): number {
  let n = 0;
  for (const sc of o.scrapeConfigs ?? []) {
    for (const st of (sc.static_configs as { targets?: string[] }[] | undefined) ?? []) n += st.targets?.length ?? 0;
  }
  return n;
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: res.status, body: text };
  }
}

/** Starts Prometheus for the test `t`; it is stopped and its directory removed in t.teardown. */
export async function startPrometheus(t: Teardown, opts: PrometheusOptions = {}): Promise<PrometheusServer> {
  const base = serviceDir('prometheus');
  t.teardown(() => removeDir(base));
  const dataDir = join(base, 'data');
  const configFile = join(base, 'prometheus.yml');
  const logFile = join(base, 'prometheus.log');
  writeFileSync(configFile, configYaml(opts));

  // The free port can be taken between freePort() and Prometheus binding it: retry then.
  let proc: ServiceProcess | undefined;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    proc = spawnService(
      PROMETHEUS_BIN,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${dataDir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--web.enable-lifecycle',
        '--log.level=warn',
        ...(opts.args ?? []),
      ],
      { logFile },
    );
    const p = proc;
    t.teardown(() => p.stop());
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        'prometheus ready',
        async () => {
          try {
            return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok ? true : undefined;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 30_000, everyMs: 100, abortIf: () => (p.running() ? undefined : 'exited') },
      );
      break;
    } catch (err) {
      await p.stop();
      if (attempt >= 3 || !/address already in use/.test(logTail(logFile, 50))) {
        throw new Error(`prometheus did not start: ${(err as Error).message}\n${logTail(logFile)}`);
      }
    }
  }

  const url = `http://127.0.0.1:${port}`;
  const p = proc;
  const api = async <T>(path: string, params?: Record<string, string>): Promise<T> => {
    const qs = params ? `?${new URLSearchParams(params).toString()}` : '';
    const { status, body } = await getJson(`${url}/api/v1/${path}${qs}`);
    const b = body as { status?: string; data?: T; error?: string; errorType?: string };
    if (b?.status !== 'success') throw new Error(`GET /api/v1/${path}${qs}: HTTP ${status}: ${b?.errorType ?? ''} ${b?.error ?? String(body)}`);
    return b.data as T;
  };
  const rules = async () => (await api<{ groups: RuleGroup[] }>('rules')).groups;
  const query = async (expr: string, time?: number) => {
    const r = await api<{ resultType: string; result: Sample[] }>('query', { query: expr, ...(time !== undefined && { time: String(time) }) });
    return r.resultType === 'vector' ? r.result : [];
  };
  return {
    url,
    port,
    dataDir,
    configFile,
    logFile,
    api,
    query,
    rules,
    async alerts() {
      return (await api<{ alerts: Alert[] }>('alerts')).alerts;
    },
    waitForRuleEvaluation(timeoutMs = 30_000) {
      return waitFor(
        'every rule group evaluated',
        async () => {
          const groups = await rules();
          return groups.every((g) => !g.lastEvaluation.startsWith('0001-')) ? groups : undefined;
        },
        { timeoutMs, everyMs: 200 },
      );
    },
    waitForMoreEvaluations(rounds, timeoutMs = 30_000) {
      // Each group's lastEvaluation as first seen, then every other value it takes: a poll that
      // misses an evaluation only makes the wait longer.
      const first = new Map<string, string>();
      const later = new Map<string, Set<string>>();
      return waitFor(
        `${rounds} more evaluations of every rule group`,
        async () => {
          const groups = await rules();
          for (const g of groups) {
            const key = `${g.file}\0${g.name}`;
            if (!first.has(key)) first.set(key, g.lastEvaluation);
            else if (g.lastEvaluation !== first.get(key)) (later.get(key) ?? later.set(key, new Set()).get(key)!).add(g.lastEvaluation);
          }
          return groups.every((g) => (later.get(`${g.file}\0${g.name}`)?.size ?? 0) >= rounds) ? groups : undefined;
        },
        { timeoutMs, everyMs: 100 },
      );
    },
    async waitForTargets(o = {}) {
      const count = o.count ?? staticTargets(opts);
      const scrapes = o.scrapes ?? 2;
      const targets = await waitFor(
        `${count} targets up`,
        async () => {
          const active = (await api<{ activeTargets: Target[] }>('targets')).activeTargets;
          return active.length >= count && active.every((x) => x.health === 'up') ? active : undefined;
        },
        { timeoutMs: o.timeoutMs ?? 30_000, everyMs: 200 },
      );
      // Health turns up after the first scrape; then wait for the rest, counted instead of slept
      // out: `up` gets one sample per scrape of each target (1 when it succeeded), committed with
      // the scrape's other samples, so its sum is the target's successful scrapes so far.
      if (scrapes > 1) {
        await waitFor(
          `${scrapes} successful scrapes of each of ${count} targets`,
          async () => {
            const seen = await query('sum_over_time(up[1h])');
            return seen.length >= count && seen.every((s) => Number(s.value[1]) >= scrapes) ? true : undefined;
          },
          { timeoutMs: scrapes * durationMs(opts.scrapeInterval ?? '1s') + 30_000, everyMs: 200 },
        );
      }
      return targets;
    },
    async reload() {
      const res = await fetch(`${url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`reload: HTTP ${res.status}: ${await res.text()}`);
    },
    stop: () => p.stop(),
    running: () => p.running(),
  };
}

// ---------------------------------------------------------------------------------------------
// PromQL without a server
// ---------------------------------------------------------------------------------------------

/** One vector selector of an expression: its metric name and the label names it matches on. */
export interface Selector {
  metric: string | undefined;
  labels: string[];
  /** The selector's text, for messages. */
  text: string;
}

export interface ParsedPromQL {
  /** Offsets of syntax errors (empty when the expression parses). */
  errors: number[];
  selectors: Selector[];
}

/** Parses PromQL with the Prometheus UI's own Lezer grammar. */
export function parsePromQL(expr: string): ParsedPromQL {
  const errors: number[] = [];
  const selectors: Selector[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name !== 'VectorSelector') return;
      let metric: string | undefined;
      const labels: string[] = [];
      const c = node.node.cursor();
      // Walk the selector's subtree: Identifier is the metric name, each matcher's LabelName a label.
      c.iterate((n) => {
        const text = expr.slice(n.from, n.to);
        if (n.name === 'Identifier') metric = text;
        if (n.name === 'UnquotedLabelMatcher' || n.name === 'QuotedLabelMatcher') {
          const name = n.node.getChild('LabelName') ?? n.node.getChild('QuotedLabelName');
          const value = n.node.getChild('StringLiteral');
          const labelName = name ? expr.slice(name.from, name.to).replace(/^"|"$/g, '') : '';
          if (labelName === '__name__' && value) metric = expr.slice(value.from + 1, value.to - 1);
          else if (labelName) labels.push(labelName);
        }
      });
      selectors.push({ metric, labels, text: expr.slice(node.from, node.to) });
      return false;
    },
  });
  return { errors, selectors };
}

/**
 * Grafana template variables replaced by literal values, so a panel query parses as PromQL.
 * `$__rate_interval` and friends become durations, every other `$var` or `${var}` a regex.
 */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m')
    .replace(/\$\{?__(range_s|interval_ms|range_ms)\}?/g, '300')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, '.*');
}

/** Labels a scrape adds to every series: allowed on any selector. */
export const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service', 'endpoint', 'container', 'cluster'];

/**
 * The exporter's metric contract (DESIGN.md, "Metrics contract") with each metric's labels.
 * test/alerts.test.ts checks this list against DESIGN.md's table.
 */
export const CONTRACT_METRICS: Readonly<Record<string, readonly string[]>> = {
  readiness_check_passing: ['check', 'section', 'severity', 'phase'],
  readiness_check_state: ['check', 'state'],
  readiness_check_failure_info: ['check', 'reason'],
  readiness_check_value: ['check'],
  readiness_check_last_run_timestamp_seconds: ['check'],
  readiness_check_last_pass_timestamp_seconds: ['check'],
  readiness_check_interval_seconds: ['check'],
  readiness_check_duration_seconds: ['check'],
  readiness_check_runs_total: ['check', 'result'],
  readiness_ready: ['phase'],
  readiness_rollback_recommended: [],
  readiness_deployment_timestamp_seconds: [],
  readiness_deployment_window_open: [],
  readiness_build_info: ['version', 'checklist'],
};

/**
 * Metrics the alerts/dashboards use that are proposed for the contract but not yet in
 * DESIGN.md. Move each to CONTRACT_METRICS once the table has it (a test says when).
 */
export const PROPOSED_METRICS: Readonly<Record<string, readonly string[]>> = {
  // Issue 13: what a check's failure means for a person, and the version the rollback page names.
  readiness_check_info: ['check', 'probe', 'notify', 'expect'],
  readiness_deployment_info: ['version'],
};

/**
 * The recording rules of alerts/readiness.rules.yml with the labels their series carry (besides
 * the target labels): the alerts read these. test/alerts.test.ts checks the list against the
 * rule file, test/e2e.test.ts against the series a real Prometheus records.
 */
export const RECORDED_METRICS: Readonly<Record<string, readonly string[]>> = {
  'readiness:check_failing': ['check', 'check_severity', 'section', 'phase'],
  'readiness:check_stale': ['check', 'state'],
  'readiness:check_notify': ['check', 'notify'],
  'readiness:tls_days_left': ['check'],
  'readiness:deployment_window_open': [],
  'readiness:deployment_info': ['version'],
};

/**
 * The app metric contract (docs/alerts.md, "App metric contract"): what the T+2h alerts and the
 * post-deploy dashboard read from the app, postgres_exporter, cAdvisor and kube-state-metrics.
 */
export const APP_METRICS: Readonly<Record<string, readonly string[]>> = {
  http_requests_total: ['code', 'method'],
  http_request_duration_seconds_bucket: ['le', 'method'],
  pg_stat_activity_count: ['datname', 'state'],
  pg_settings_max_connections: [],
  container_memory_working_set_bytes: ['image'],
  container_cpu_usage_seconds_total: ['image', 'cpu'],
  kube_pod_container_resource_limits: ['resource', 'unit', 'node'],
};

/** Series Prometheus itself makes: any label allowed (ALERTS carries the alert's labels). */
export const PROMETHEUS_METRICS = ['up', 'ALERTS', 'ALERTS_FOR_STATE'];

/**
 * Problems with the metrics an expression selects: unknown metrics, selectors without a
 * metric name, label matchers on labels the metric does not have. Empty when all is well.
 */
export function metricProblems(expr: string): string[] {
  const problems: string[] = [];
  const { errors, selectors } = parsePromQL(expr);
  if (errors.length > 0) problems.push(`syntax error at offset ${errors[0]}`);
  for (const s of selectors) {
    if (s.metric === undefined) {
      problems.push(`${s.text}: selector without a metric name`);
      continue;
    }
    if (PROMETHEUS_METRICS.includes(s.metric) || s.metric.startsWith('readiness_exporter_')) continue;
    const labels = CONTRACT_METRICS[s.metric] ?? PROPOSED_METRICS[s.metric] ?? RECORDED_METRICS[s.metric] ?? APP_METRICS[s.metric];
    if (labels === undefined) {
      problems.push(`${s.metric}: not a contract, recorded, readiness_exporter_* or documented app metric`);
      continue;
    }
    for (const l of s.labels) {
      if (!labels.includes(l) && !TARGET_LABELS.includes(l)) problems.push(`${s.text}: ${s.metric} has no label "${l}"`);
    }
  }
  return problems;
}
