// Building blocks shared by the dashboards: the datasource variable every query goes through,
// query and mapping helpers, and the conventions the alert rules use too (runbook base URL,
// T+2h limits), kept here once so the dashboards and alerts/readiness.rules.yml cannot drift
// (test/dashboards.test.ts compares the limits with the rules).
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';

/** Every panel, query, variable and annotation reads from this variable: no datasource uid is hard-coded. */
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** Base of every runbook link; a check's runbook is `${RUNBOOK_BASE}/checks/<check id>` (docs/alerts.md). */
export const RUNBOOK_BASE = 'https://runbooks.offgridflow.com/readiness';

/**
 * Where Grafana serves these dashboards: the pages' dashboard_url annotations in
 * alerts/readiness.rules.yml are `${GRAFANA_BASE}/d/<uid>/...` (test/alerts.test.ts compares).
 */
export const GRAFANA_BASE = 'https://grafana.offgridflow.com';

/** The exporter's own scrape targets: the job name contains "readiness", as the alerts assume. */
export const EXPORTER_JOB = 'job=~".*readiness.*"';

/** Tags on both dashboards: the dashboard links find each other through them. */
export const TAGS = ['readiness', 'readiness-exporter'];

/** One T+2h threshold: the panel that draws it and the alert that fires on it share the limit. */
export interface PostDeployThreshold {
  /** Alert in alerts/readiness.rules.yml whose expression ends in `> limit`. */
  alert: string;
  title: string;
  limit: number;
  /** Grafana unit of the panel. */
  unit: string;
}

export const POST_DEPLOY_THRESHOLDS = {
  errorRate: { alert: 'ReadinessAppErrorRateHigh', title: 'Error rate (5xx share, limit 1%)', limit: 0.01, unit: 'percentunit' },
  latencyP95: { alert: 'ReadinessAppLatencyP95High', title: 'p95 latency (limit 500 ms)', limit: 0.5, unit: 's' },
  dbConnections: { alert: 'ReadinessAppDatabaseConnectionsHigh', title: 'DB connections in use (limit 80% of max_connections)', limit: 0.8, unit: 'percentunit' },
  memory: { alert: 'ReadinessAppMemoryHigh', title: 'Memory (working set, limit 80% of the container limit)', limit: 0.8, unit: 'percentunit' },
  cpu: { alert: 'ReadinessAppCPUHigh', title: 'CPU (limit 70% of the container limit)', limit: 0.7, unit: 'percentunit' },
} as const satisfies Record<string, PostDeployThreshold>;

/** The `datasource` variable: any Prometheus datasource, picked at import or on the dashboard. */
export function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus');
}

/** A query variable over label values, with an "All" that matches series without the label too. */
export function labelValuesVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(DATASOURCE)
    .query({ query, refId: `${name}-variable` })
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .includeAll(true)
    .allValue('.*')
    .current({ text: 'All', value: '$__all' });
}

/** A range query shown as time series. */
export function rangeQuery(expr: string, legend: string, refId = 'A'): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .editorMode(prometheus.QueryEditorMode.Code)
    .expr(expr)
    .legendFormat(legend)
    .range()
    .refId(refId);
}

/** An instant query, for stats and tables. */
export function instantQuery(expr: string, legend: string, refId = 'A'): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .editorMode(prometheus.QueryEditorMode.Code)
    .expr(expr)
    .legendFormat(legend)
    .instant()
    .refId(refId);
}

/** An instant query returning a table frame (one row per series, labels as columns). */
export function tableQuery(expr: string, refId: string): prometheus.DataqueryBuilder {
  return instantQuery(expr, '__auto', refId).format(prometheus.PromQueryFormat.Table);
}

/** Deployment markers: one annotation at each deployment's start (readiness_deployment_timestamp_seconds). */
export function deploymentAnnotation(selector: string): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Deployments')
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor('blue')
    .expr(`max(readiness_deployment_timestamp_seconds{${selector}}) * 1000`)
    .step('60s')
    // The series value is the deployment time in ms: the marker sits there, not at every scrape.
    .useValueForTime(true)
    .titleFormat('Deployment');
}

/** Threshold steps: `base` below the first step, then each `[value, color]`. */
export function thresholds(base: string, ...steps: [number, string][]): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps.map(([value, color]) => ({ value, color }))]);
}

/** Maps exact values to text and colour, e.g. `{ 1: ['READY', 'green'], 0: ['NOT READY', 'red'] }`. */
export function valueMappings(map: Record<string, [text: string, color: string]>): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  Object.entries(map).forEach(([value, [text, color]], index) => {
    options[value] = { text, color, index };
  });
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

/** Colours for the seven check states (readiness_check_state{state}). */
export const STATE_COLORS: Record<string, [string, string]> = {
  pass: ['pass', 'green'],
  warn: ['warn', 'yellow'],
  fail: ['fail', 'red'],
  error: ['error', 'orange'],
  stale: ['stale', 'purple'],
  pending: ['pending', 'blue'],
  unconfigured: ['unconfigured', 'text'],
};

/** Serialises a dashboard the way it is committed: stable key order from the builder, 2-space JSON. */
export function toJson(built: dashboard.Dashboard): string {
  return `${JSON.stringify(built, null, 2)}\n`;
}

/** The "Rollback recommended" stat both dashboards show (readiness_rollback_recommended). */
export function rollbackPanel(id: number, selector: string): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .id(id)
    .title('Rollback recommended')
    .description('readiness_rollback_recommended: a monitor-phase gating check failed within the window after the latest deployment.')
    .datasource(DATASOURCE)
    .withTarget(instantQuery(`max(readiness_rollback_recommended{${selector}})`, 'rollback'))
    .mappings(valueMappings({ 1: ['ROLL BACK', 'red'], 0: ['no', 'green'] }))
    .thresholds(thresholds('green', [1, 'red']))
    .colorMode(common.BigValueColorMode.Background)
    .graphMode(common.BigValueGraphMode.None)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .noValue('no data')
    .span(6);
}
