// The dashboards this package ships, with the file each is committed as.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { readinessOverview } from './readiness-overview.js';
import { postDeployMonitoring } from './post-deploy-monitoring.js';
import { toJson } from './common.js';

export interface ShippedDashboard {
  /** Path relative to the repository root. */
  file: string;
  build: () => dashboard.Dashboard;
}

export const DASHBOARDS: readonly ShippedDashboard[] = [
  { file: 'dashboards/readiness-overview.json', build: () => readinessOverview().build() },
  { file: 'dashboards/post-deploy-monitoring.json', build: () => postDeployMonitoring().build() },
];

/** Each dashboard's committed path and its JSON text as freshly generated. */
export function renderDashboards(): Map<string, string> {
  return new Map(DASHBOARDS.map((d) => [d.file, toJson(d.build())]));
}
