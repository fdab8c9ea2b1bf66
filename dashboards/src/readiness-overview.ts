// "Readiness overview": is the release ready, per phase and per section, which checks are not
// passing and why, and how that changed over time. Reads only the exporter's metric contract.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import {
  rollbackPanel,
  DATASOURCE,
  EXPORTER_JOB,
  RUNBOOK_BASE,
  STATE_COLORS,
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

export const UID = 'readiness-overview';

/** Selector for the exporter's series: the `job` variable picks one exporter deployment (or all). */
const SEL = 'job=~"$job"';

const READY = valueMappings({ 1: ['READY', 'green'], 0: ['NOT READY', 'red'] });

function readyStat(id: number, title: string, expr: string, legend: string, width: number): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .id(id)
    .title(title)
    .datasource(DATASOURCE)
    .withTarget(instantQuery(expr, legend))
    .mappings(READY)
    .thresholds(thresholds('red', [1, 'green']))
    .colorMode(common.BigValueColorMode.Background)
    .graphMode(common.BigValueGraphMode.None)
    .textMode(common.BigValueTextMode.ValueAndName)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .noValue('no data')
    .height(4)
    .span(width);
}

export function readinessOverview(): dashboard.DashboardBuilder {
  const stateOverrides = Object.entries(STATE_COLORS).map(([state, [, color]]) => ({
    matcher: { id: 'byName', options: state },
    properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: color } }],
  }));

  return new dashboard.DashboardBuilder('Readiness overview')
    .uid(UID)
    .description('Deployment readiness from readiness-exporter: the gate per phase, passing per section, every check with its state and reason.')
    .tags(TAGS)
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-6h', to: 'now' })
    .refresh('1m')
    .timezone('browser')
    .withVariable(datasourceVariable())
    .withVariable(labelValuesVariable('job', 'Exporter job', 'label_values(readiness_build_info, job)'))
    .annotation(deploymentAnnotation(SEL))
    .link(
      new dashboard.DashboardLinkBuilder('Readiness dashboards')
        .type(dashboard.DashboardLinkType.Dashboards)
        .tags(['readiness'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    )

    .withRow(new dashboard.RowBuilder('Gate').id(1))
    .withPanel(
      readyStat(2, 'Ready (whole gate)', `max(readiness_ready{${SEL}, phase="all"})`, 'all', 6).description(
        'readiness_ready{phase="all"}: 1 when every gating check passes. This is what GET /readiness and `readiness gate` answer.',
      ),
    )
    .withPanel(
      readyStat(3, 'Ready per phase', `max by (phase) (readiness_ready{${SEL}, phase!="all"})`, '{{phase}}', 12).description(
        'readiness_ready{phase}: 1 when every gating check of that phase passes.',
      ),
    )
    .withPanel(
      rollbackPanel(4, SEL).height(4),
    )
    .withPanel(
      new stat.PanelBuilder()
        .id(5)
        .title('Checks by state')
        .description('How many checks are in each of the seven states. Only pass and warn count as passing.')
        .datasource(DATASOURCE)
        .withTarget(instantQuery(`sum by (state) (max by (check, state) (readiness_check_state{${SEL}}))`, '{{state}}'))
        .colorMode(common.BigValueColorMode.Value)
        .graphMode(common.BigValueGraphMode.None)
        .textMode(common.BigValueTextMode.ValueAndName)
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
        .overrides(stateOverrides)
        .height(4)
        .span(24),
    )

    .withRow(new dashboard.RowBuilder('Sections and trend').id(6))
    .withPanel(
      new bargauge.PanelBuilder()
        .id(7)
        .title('Passing per section')
        .description('Share of the checks of each checklist section that pass (pass or warn).')
        .datasource(DATASOURCE)
        .withTarget(
          instantQuery(
            `sum by (section) (max by (check, section) (readiness_check_passing{${SEL}}))` +
              ` / count by (section) (max by (check, section) (readiness_check_passing{${SEL}}))`,
            '{{section}}',
          ),
        )
        .unit('percentunit')
        .min(0)
        .max(1)
        .thresholds(thresholds('red', [0.8, 'yellow'], [1, 'green']))
        .displayMode(common.BarGaugeDisplayMode.Basic)
        .orientation(common.VizOrientation.Horizontal)
        .showUnfilled(true)
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
        .height(9)
        .span(10),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .id(8)
        .title('Checks not passing, by severity')
        .description('Count of checks whose state is neither pass nor warn, by the check severity.')
        .datasource(DATASOURCE)
        .withTarget(
          rangeQuery(`sum by (severity) (1 - max by (check, severity) (readiness_check_passing{${SEL}}))`, '{{severity}}'),
        )
        .unit('short')
        .min(0)
        .decimals(0)
        .drawStyle(common.GraphDrawStyle.Line)
        .fillOpacity(30)
        .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal))
        .overrides([
          { matcher: { id: 'byName', options: 'critical' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }] },
          { matcher: { id: 'byName', options: 'high' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'orange' } }] },
          { matcher: { id: 'byName', options: 'medium' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'yellow' } }] },
          { matcher: { id: 'byName', options: 'low' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } }] },
        ])
        .height(9)
        .span(14),
    )

    .withRow(new dashboard.RowBuilder('Checks').id(9))
    .withPanel(
      new table.PanelBuilder()
        .id(10)
        .title('Every check')
        .description(
          'One row per check: whether it passes, its state, measured value, the reason it does not pass, when it last ran, ' +
            'and what its failure means for a person (notify: rollback, page, ticket or none). The check id links to its runbook.',
        )
        .datasource(DATASOURCE)
        .targets([
          tableQuery(`max by (check, section, severity, phase) (readiness_check_passing{${SEL}})`, 'A'),
          tableQuery(`max by (check, state) (readiness_check_state{${SEL}}) == 1`, 'B'),
          tableQuery(`max by (check) (readiness_check_value{${SEL}})`, 'C'),
          tableQuery(`max by (check, reason) (readiness_check_failure_info{${SEL}}) == 1`, 'D'),
          tableQuery(`max by (check) (readiness_check_last_run_timestamp_seconds{${SEL}}) * 1000`, 'E'),
          tableQuery(`max by (check, notify, expect) (readiness_check_info{${SEL}})`, 'F'),
        ])
        .transformations([
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true, 'Value #B': true, 'Value #D': true, 'Value #F': true },
              renameByName: { 'Value #A': 'passing', 'Value #C': 'value', 'Value #E': 'last run' },
              indexByName: {
                check: 0,
                'Value #A': 1,
                state: 2,
                reason: 3,
                'Value #C': 4,
                'Value #E': 5,
                severity: 6,
                phase: 7,
                section: 8,
                notify: 9,
                expect: 10,
              },
            },
          },
        ])
        .sortBy([new common.TableSortByFieldStateBuilder().displayName('passing').desc(false)])
        .filterable(true)
        .overrides([
          {
            matcher: { id: 'byName', options: 'check' },
            properties: [
              {
                id: 'links',
                value: [{ title: 'Runbook for ${__value.raw}', url: `${RUNBOOK_BASE}/checks/\${__value.raw}`, targetBlank: true }],
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'passing' },
            properties: [
              { id: 'mappings', value: valueMappings({ 1: ['yes', 'green'], 0: ['no', 'red'] }) },
              { id: 'custom.cellOptions', value: { type: common.TableCellDisplayMode.ColorBackground } },
              { id: 'custom.width', value: 90 },
            ],
          },
          {
            matcher: { id: 'byName', options: 'state' },
            properties: [
              { id: 'mappings', value: valueMappings(STATE_COLORS) },
              { id: 'custom.cellOptions', value: { type: common.TableCellDisplayMode.ColorText } },
              { id: 'custom.width', value: 120 },
            ],
          },
          { matcher: { id: 'byName', options: 'last run' }, properties: [{ id: 'unit', value: 'dateTimeFromNow' }] },
          { matcher: { id: 'byName', options: 'value' }, properties: [{ id: 'decimals', value: 2 }] },
        ])
        .height(16)
        .span(24),
    )
    .withPanel(
      new statetimeline.PanelBuilder()
        .id(11)
        .title('Failing checks over time')
        .description('Each check that did not pass at some point in the time range, coloured while it was not passing.')
        .datasource(DATASOURCE)
        .withTarget(rangeQuery(`max by (check) (readiness_check_passing{${SEL}}) == 0`, '{{check}}'))
        .mappings(valueMappings({ 0: ['not passing', 'red'] }))
        .thresholds(thresholds('red'))
        .showValue(common.VisibilityMode.Never)
        .mergeValues(true)
        .rowHeight(0.8)
        .legend(new common.VizLegendOptionsBuilder().showLegend(false))
        .height(10)
        .span(24),
    )

    .withRow(new dashboard.RowBuilder('Exporter').id(12))
    .withPanel(
      new stat.PanelBuilder()
        .id(13)
        .title('Exporter replicas up')
        .description('up of each scraped exporter replica: only targets of jobs whose name contains "readiness", as the alerts count them, so "All" never counts the application\'s targets.')
        .datasource(DATASOURCE)
        .withTarget(instantQuery(`up{${SEL}, ${EXPORTER_JOB}}`, '{{instance}}'))
        .mappings(valueMappings({ 1: ['up', 'green'], 0: ['down', 'red'] }))
        .thresholds(thresholds('red', [1, 'green']))
        .colorMode(common.BigValueColorMode.Background)
        .graphMode(common.BigValueGraphMode.None)
        .textMode(common.BigValueTextMode.ValueAndName)
        .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
        .height(6)
        .span(8),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .id(14)
        .title('Slowest checks (last run duration)')
        .description('readiness_check_duration_seconds of the ten slowest checks: a check close to its timeout is about to turn to error.')
        .datasource(DATASOURCE)
        .withTarget(rangeQuery(`topk(10, max by (check) (readiness_check_duration_seconds{${SEL}}))`, '{{check}}'))
        .unit('s')
        .min(0)
        .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Right))
        .height(6)
        .span(16),
    );
}
