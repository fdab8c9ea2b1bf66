// The metric families of DESIGN.md, read from the current state at scrape time (each
// family's collect() asks the service), plus the exporter's own readiness_exporter_* health.
// A registry is injected: no global state, so tests and reloads get clean registries.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { PHASES } from './config/schema.js';
import type { Checklist } from './config/types.js';
import type { SchedulerStats } from './scheduler.js';
import { isReady, type CheckView } from './state.js';
import { isPassing, STATES, type StoreHealth } from './store/types.js';

/** What the collectors read at scrape time. */
export interface MetricsSource {
  checklist(): Checklist;
  views(): CheckView[];
  schedulerStats(): SchedulerStats;
  storeHealth(): StoreHealth;
  rollbackRecommended(views?: CheckView[]): boolean;
  deploymentWindow(): { deployment?: { at: number }; open: boolean };
  reloads(): { success: number; failure: number; lastSuccessful: boolean; lastSuccessAt: number };
  version: string;
}

/** prom-client's nodejs_active_*_total are gauges whose names end in _total: promtool rejects them. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface ExporterMetrics {
  registry: Registry;
  /** One exposition: the check views are computed once and shared by every family. */
  scrape(): Promise<string>;
}

export function createMetrics(source: MetricsSource): ExporterMetrics {
  // Every family reads the views; computing them once per scrape instead of once per family
  // is what keeps a 500-check scrape cheap (bench/scrape-bench.ts).
  let memo: CheckView[] | undefined;
  const src: MetricsSource = {
    version: source.version,
    checklist: () => source.checklist(),
    views: () => (memo ??= source.views()),
    schedulerStats: () => source.schedulerStats(),
    storeHealth: () => source.storeHealth(),
    rollbackRecommended: () => source.rollbackRecommended(src.views()),
    deploymentWindow: () => source.deploymentWindow(),
    reloads: () => source.reloads(),
  };
  const reg = new Registry();
  const registers = [reg];
  const checkLabels = (v: CheckView) => ({ check: v.def.id });
  /**
   * A label-less gauge with no sample while its value is unknown. prom-client's reset() puts
   * a label-less gauge back at 0, which a reader cannot tell from a real 0 (a deployment at
   * the epoch): every "absent until known" family without labels goes through here.
   */
  const optionalGauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const x = read();
        if (x === undefined || !Number.isFinite(x)) this.remove({});
        else this.set(x);
      },
    });

  new Gauge({
    name: 'readiness_check_passing',
    help: 'Whether the check is passing (state pass or warn): 1 or 0.',
    labelNames: ['check', 'section', 'severity', 'phase'],
    registers,
    collect() {
      this.reset();
      for (const v of src.views()) {
        this.set({ check: v.def.id, section: v.def.section, severity: v.def.severity, phase: v.def.phase }, isPassing(v.state) ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'readiness_check_state',
    help: 'The check state, one-hot over pass, warn, fail, error, stale, pending and unconfigured.',
    labelNames: ['check', 'state'],
    registers,
    collect() {
      this.reset();
      for (const v of src.views()) for (const s of STATES) this.set({ check: v.def.id, state: s }, v.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_check_failure_info',
    help: 'Why a non-passing check is not passing: 1 for its current reason (a fixed list, see docs/metrics.md).',
    labelNames: ['check', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const v of src.views()) if (!isPassing(v.state) && v.reason) this.set({ check: v.def.id, reason: v.reason }, 1);
    },
  });
  const perCheck = (name: string, help: string, read: (v: CheckView) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['check'],
      registers,
      collect() {
        this.reset();
        for (const v of src.views()) {
          const x = read(v);
          if (x !== undefined && Number.isFinite(x)) this.set(checkLabels(v), x);
        }
      },
    });
  perCheck('readiness_check_value', 'The number the check measured (days left, percent, seconds, count), when it has one.', (v) => v.value);
  perCheck('readiness_check_last_run_timestamp_seconds', 'Unix time at which the last run of the check ended.', (v) => (v.lastRun === undefined ? undefined : v.lastRun / 1000));
  perCheck('readiness_check_last_pass_timestamp_seconds', 'Unix time at which the last passing run of the check ended.', (v) => (v.lastPass === undefined ? undefined : v.lastPass / 1000));
  perCheck('readiness_check_interval_seconds', 'Configured interval of the check (for a cron schedule, the gap between firings).', (v) => v.def.intervalMs / 1000);
  perCheck('readiness_check_duration_seconds', 'Duration of the last run of the check.', (v) => (v.durationMs === undefined ? undefined : v.durationMs / 1000));
  new Counter({
    name: 'readiness_check_runs_total',
    help: 'Runs of the check by resulting state.',
    labelNames: ['check', 'result'],
    registers,
    collect() {
      this.reset();
      for (const v of src.views()) {
        for (const [result, n] of Object.entries(v.status?.runs ?? {})) if (n) this.inc({ check: v.def.id, result }, n);
      }
    },
  });
  new Gauge({
    name: 'readiness_ready',
    help: 'Whether every gating check of the phase passes: 1 or 0; phase="all" covers the whole checklist.',
    labelNames: ['phase'],
    registers,
    collect() {
      this.reset();
      const views = src.views();
      for (const phase of PHASES) this.set({ phase }, isReady(views.filter((v) => v.def.phase === phase)) ? 1 : 0);
      this.set({ phase: 'all' }, isReady(views) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_rollback_recommended',
    help: 'Whether a gating monitor-phase check cannot show it is healthy (fail, error, no data, stale) inside the window after the latest deployment: 1 or 0.',
    registers,
    collect() {
      this.set(src.rollbackRecommended() ? 1 : 0);
    },
  });
  optionalGauge('readiness_deployment_timestamp_seconds', 'Unix time the latest recorded deployment went out (POST /deployments); absent before the first.', () => {
    const d = src.deploymentWindow().deployment;
    return d && d.at / 1000;
  });
  new Gauge({
    name: 'readiness_deployment_window_open',
    help: 'Whether the post-deploy monitoring window of the latest deployment is open: 1 or 0.',
    registers,
    collect() {
      this.set(src.deploymentWindow().open ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_build_info',
    help: 'Always 1; labels carry the exporter version and the loaded checklist name.',
    labelNames: ['version', 'checklist'],
    registers,
    collect() {
      this.reset();
      this.set({ version: src.version, checklist: src.checklist().name }, 1);
    },
  });

  // The exporter's own health.
  new Counter({
    name: 'readiness_exporter_config_reloads_total',
    help: 'Checklist reloads (SIGHUP) by result: success or failure (the old checklist keeps running).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const r = src.reloads();
      this.inc({ result: 'success' }, r.success);
      this.inc({ result: 'failure' }, r.failure);
    },
  });
  new Gauge({
    name: 'readiness_exporter_config_last_reload_successful',
    help: 'Whether the last checklist load succeeded: 1 or 0.',
    registers,
    collect() {
      this.set(src.reloads().lastSuccessful ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_exporter_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful checklist load.',
    registers,
    collect() {
      this.set(src.reloads().lastSuccessAt / 1000);
    },
  });
  new Gauge({
    name: 'readiness_exporter_checks',
    help: 'Checks in the loaded checklist.',
    registers,
    collect() {
      this.set(src.checklist().checks.length);
    },
  });
  new Gauge({
    name: 'readiness_exporter_scheduler_lag_seconds',
    help: 'Largest delay between a run being due and starting, since the previous scrape.',
    registers,
    collect() {
      const s = src.schedulerStats();
      this.set(s.maxLagSeconds);
      s.maxLagSeconds = s.lagSeconds;
    },
  });
  new Gauge({
    name: 'readiness_exporter_runs_in_flight',
    help: 'Check runs executing now.',
    registers,
    collect() {
      this.set(src.schedulerStats().running);
    },
  });
  new Gauge({
    name: 'readiness_exporter_runs_queued',
    help: 'Check runs due but waiting for the concurrency cap.',
    registers,
    collect() {
      this.set(src.schedulerStats().queued);
    },
  });
  new Counter({
    name: 'readiness_exporter_scheduler_skipped_runs_total',
    help: 'Scheduled runs skipped because the previous run of the same check was still in progress.',
    registers,
    collect() {
      this.reset();
      this.inc(src.schedulerStats().skipped);
    },
  });
  new Gauge({
    name: 'readiness_exporter_store_up',
    help: 'Whether the state store accepts writes: 1 or 0 (degraded).',
    registers,
    collect() {
      this.set(src.storeHealth().ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_exporter_store_queued_results',
    help: 'Check results held in memory while the store is unavailable (drained when it returns).',
    registers,
    collect() {
      this.set(src.storeHealth().queued ?? 0);
    },
  });
  new Counter({
    name: 'readiness_exporter_store_errors_total',
    help: 'Failed writes to the state store.',
    registers,
    collect() {
      this.reset();
      this.inc(src.schedulerStats().storeErrors + (src.storeHealth().errors ?? 0));
    },
  });

  collectDefaultMetrics({ register: reg });
  for (const name of LINT_FAILING_DEFAULTS) reg.removeSingleMetric(name);
  return {
    registry: reg,
    async scrape() {
      memo = undefined;
      try {
        return await reg.metrics();
      } finally {
        memo = undefined;
      }
    },
  };
}
