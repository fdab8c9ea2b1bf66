// The checklist's fixed vocabularies, apart from the schema (which needs TypeBox) so that the
// CLI can list them in --help and check --severity/--phase without loading the loader.
export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export const PHASES = ['pre-deploy', 'deploy', 'verify', 'monitor', 'post-deploy'] as const;
export const NO_DATA = ['fail', 'error', 'pass'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type Phase = (typeof PHASES)[number];
export type OnNoData = (typeof NO_DATA)[number];
