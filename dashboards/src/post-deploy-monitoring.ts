// "Post-deploy monitoring": the T+2h watch after a deployment. The checklist's thresholds drawn
// over the app's own metrics (the app metric contract, docs/alerts.md), deployment markers from
// readiness_deployment_timestamp_seconds, and the exporter's rollback recommendation.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import {
  rollbackPanel,
  DATASOURCE,
  POST_DEPLOY_THRESHOLDS,
  type PostDeployThreshold,
  TAGS,
  datasourceVariable,
  deploymentAnnotation,
  instantQuery,
  labelValuesVariable,
  rangeQuery,
  tableQuery,
  thresholds,
  valueMappings,
} from './common.js';

export const UID = 'readiness-post-deploy';

/** The post-deploy window after a deployment, in seconds (the checklist's T+2h). */
const WINDOW_SECONDS = 2 * 60 * 60;

/** Exporter series (`job` variable) and app series (`namespace` and `app` variables). */
const EXPORTER = 'job=~"$job"';
const NS = 'namespace=~"$namespace"';
const APP = 'namespace=~"$namespace", job=~"$app"';

/** A time series panel for one T+2h threshold: the limit is drawn as a dashed red line. */
function thresholdPanel(id: number, t: PostDeployThreshold, expr: string, legend: string, description: string): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder()
    .id(id)
    .title(t.title)
    .description(`${description} Alert: ${t.alert}.`)
    .datasource(DATASOURCE)
    .withTarget(rangeQuery(expr, legend))
    .unit(t.unit)
    .min(0)
    .axisSoftMax(t.limit * 1.25)
    .thresholds(thresholds('green', [t.limit, 'red']))
    .thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.DashedAndArea))
    .fillOpacity(10)
    .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom))
    .height(8)
    .span(12);
}

export function postDeployMonitoring(): dashboard.DashboardBuilder {
  const t = POST_DEPLOY_THRESHOLDS;
  return new dashboard.DashboardBuilder('Post-deploy monitoring')
    .uid(UID)
    .description('The two hours after a deployment: error rate, p95 latency, DB connections, memory and CPU against the checklist limits, with deployment markers and the rollback recommendation.')
    .tags(TAGS)
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-3h', to: 'now' })
    .refresh('30s')
    .timezone('browser')
    .withVariable(datasourceVariable())
    .withVariable(labelValuesVariable('job', 'Exporter job', 'label_values(readiness_build_info, job)'))
    .withVariable(labelValuesVariable('namespace', 'App namespace', 'label_values(http_requests_total, namespace)'))
    .withVariable(labelValuesVariable('app', 'App job', 'label_values(http_requests_total{namespace=~"$namespace"}, job)'))
    .annotation(deploymentAnnotation(EXPORTER))
    .annotation(
      new dashboard.AnnotationQueryBuilder()
        .name('Rollback recommended')
        .datasource(DATASOURCE)
        .enable(true)
        .iconColor('red')
        .expr(`max(readiness_rollback_recommended{${EXPORTER}}) == 1`)
        .step('60s')
        .titleFormat('Rollback recommended'),
    )
    .link(
      new dashboard.DashboardLinkBuilder('Readiness dashboards')
        .type(dashboard.DashboardLinkType.Dashboards)
        .tags(['readiness'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    )

    .withRow(new dashboard.RowBuilder('Deployment').id(1))
    .withPanel(
      rollbackPanel(2, EXPORTER).height(5),
    )
    .withPanel(
      new stat.PanelBuilder()
        .id(3)
        .title('Since the latest deployment')
        .description('Time since readiness_deployment_timestamp_seconds (POST /deployments). Blue while inside the 2h post-deploy window.')
        .datasource(DATASOURCE)
        .withTarget(instantQuery(`time() - max(readiness_deployment_timestamp_seconds{${EXPORTER}})`, 'since deployment'))
        .unit('s')
        .thresholds(thresholds('blue', [WINDOW_SECONDS, 'green']))
        .colorMode(common.BigValueColorMode.Value)
        .graphMode(common.BigValueGraphMode.None)
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
        .noValue('no deployment recorded')
        .height(5)
        .span(6),
    )
    .withPanel(
      new stat.PanelBuilder()
        .id(4)
        .title('Monitor-phase checks')
        .description('The exporter\'s own T+2h checks (phase monitor); any of them failing inside the window recommends a rollback.')
        .datasource(DATASOURCE)
        .withTarget(instantQuery(`max by (check) (readiness_check_passing{${EXPORTER}, phase="monitor"})`, '{{check}}'))
        .mappings(valueMappings({ 1: ['pass', 'green'], 0: ['not passing', 'red'] }))
        .thresholds(thresholds('red', [1, 'green']))
        .colorMode(common.BigValueColorMode.Background)
        .graphMode(common.BigValueGraphMode.None)
        .textMode(common.BigValueTextMode.ValueAndName)
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
        .noValue('no monitor checks')
        .height(5)
        .span(12),
    )

    .withRow(new dashboard.RowBuilder('T+2h thresholds').id(5))
    .withPanel(
      thresholdPanel(
        6,
        t.errorRate,
        `sum by (namespace, job) (rate(http_requests_total{${APP}, code=~"5.."}[$__rate_interval]))` +
          ` / sum by (namespace, job) (rate(http_requests_total{${APP}}[$__rate_interval]))`,
        '{{namespace}}/{{job}}',
        'Share of requests answered with a 5xx status (http_requests_total{code}).',
      ),
    )
    .withPanel(
      thresholdPanel(
        7,
        t.latencyP95,
        `histogram_quantile(0.95, sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{${APP}}[$__rate_interval])))`,
        '{{namespace}}/{{job}}',
        '95th percentile of http_request_duration_seconds.',
      ),
    )
    .withPanel(
      thresholdPanel(
        8,
        t.dbConnections,
        `sum by (namespace, job, instance) (pg_stat_activity_count{${NS}})` +
          ` / max by (namespace, job, instance) (pg_settings_max_connections{${NS}})`,
        '{{instance}}',
        'Connections in use over max_connections, from postgres_exporter.',
      ),
    )
    .withPanel(
      thresholdPanel(
        9,
        t.memory,
        `max by (namespace, pod, container) (container_memory_working_set_bytes{${NS}, container!="", container!="POD"})` +
          ` / max by (namespace, pod, container) (kube_pod_container_resource_limits{${NS}, resource="memory"})`,
        '{{pod}}/{{container}}',
        'Working set over the memory limit, per container (cAdvisor and kube-state-metrics).',
      ),
    )
    .withPanel(
      thresholdPanel(
        10,
        t.cpu,
        `sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{${NS}, container!="", container!="POD"}[$__rate_interval]))` +
          ` / max by (namespace, pod, container) (kube_pod_container_resource_limits{${NS}, resource="cpu"})`,
        '{{pod}}/{{container}}',
        'CPU usage over the CPU limit, per container (cAdvisor and kube-state-metrics).',
      ),
    )
    .withPanel(
      new table.PanelBuilder()
        .id(11)
        .title('Alerts firing')
        .description('Critical and warning alerts firing now (the checklist\'s "no alerts firing").')
        .datasource(DATASOURCE)
        .withTarget(tableQuery('sum by (alertname, severity) (ALERTS{alertstate="firing", severity=~"critical|warning"})', 'A'))
        .transformations([{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }])
        .noValue('no alerts firing')
        .height(8)
        .span(12),
    );
}
