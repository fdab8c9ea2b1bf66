// The shipped checklist answers every COVERAGE.md row, with the ids COVERAGE.md names (they
// are metric label values: renaming one breaks dashboards and alerts), and docs/coverage.md
// is generated from it.
import t from 'tap';
import { loadChecklistFile } from '../src/config/load.js';
import { DEFAULT_CONFIG } from '../src/cli.js';
import { readFileSync } from 'node:fs';
import { COVERAGE_DOC, renderCoverage } from '../scripts/gen-coverage.js';

/** Every check id COVERAGE.md names (the rollback line is a metric, not a check). */
const COVERAGE_IDS = 'ci-backend-tests ci-frontend-tests ci-integration-tests ci-security-scans coverage-backend coverage-frontend vulnerabilities-critical-high code-review-approvals todos-tracked secrets-rotated env-validated postgres-reachable credential-stripe credential-openai credential-aws credential-azure credential-gcp tls-api-expiry migrations-staging-current migrations-production-clean backup-job-succeeded postgres-connection-headroom postgres-pool-usage postgres-indexes postgres-disk-free k8s-nodes-ready k8s-node-pressure k8s-pods-healthy k8s-resources-set k8s-hpa-api k8s-hpa-worker k8s-pdb k8s-network-policies k8s-ingress-rate-limit prometheus-targets-up grafana-dashboard-api-overview prometheus-rules-loaded alerting-pipeline-watchdog alertmanager-receiver-pagerduty jaeger-services loki-logs-flowing scan-images scan-static scan-dependencies k8s-rbac-no-cluster-admin k8s-serviceaccounts-least-privilege secrets-sealed postgres-not-public redis-not-public k8s-services-internal api-rate-limited waf-blocks-attack ddos-protection loadtest-p95 loadtest-p99 loadtest-errors loadtest-throughput postgres-slow-queries lighthouse-performance cdn-static-cached postgres-connection-usage backup-latest-age backup-retention backup-offsite-region restore-tested rto-restore-duration rpo-wal-archive-age dr-runbook-reviewed backup-offsite-verified api-docs-current runbook-api-down docs-architecture docs-deploy-procedure docs-rollback-tested oncall-published incident-plan-reviewed privacy-gdpr-ccpa data-retention legal-pages-current security-policy-reviewed compliance-frameworks audit-logs-flowing maintenance-announced predeploy-backup-fresh staging-healthy migrate-job-complete rollout-api rollout-worker rollout-web health-ready health-live smoke-tests logs-no-errors app-metrics-exposed flow-login flow-create-activity flow-generate-report flow-view-dashboard monitor-error-rate monitor-latency-p95 monitor-db-connections monitor-memory monitor-cpu monitor-no-alerts monitor-support-clear signoff-engineering signoff-product retro-scheduled baseline-updated known-issues-documented changelog-published team-notified'.split(' ');

t.test('every COVERAGE.md check id is shipped', async (t) => {
  const res = await loadChecklistFile(DEFAULT_CONFIG, {});
  if (!res.ok) return t.fail('the shipped checklist does not load');
  const shipped = new Set(res.checklist.byId.keys());
  t.equal(COVERAGE_IDS.length, 112);
  t.same(COVERAGE_IDS.filter((id) => !shipped.has(id)), [], 'none missing');
});

t.test('docs/coverage.md is generated from the shipped checklist', async (t) => {
  t.equal(readFileSync(COVERAGE_DOC, 'utf8'), await renderCoverage(), 'up to date (npx tsx scripts/gen-coverage.ts)');
});
