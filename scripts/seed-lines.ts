// Which line of the seed checklist each shipped check covers (issue 11, item 5). The seed is
// docs/seed/production-deployment-checklist.md, a byte-for-byte copy of the OffGridFlow
// checklist the project started from (/work/shared/seed/); numbers are its 1-based lines.
// A check's title must contain its line's text (seedLineText), optionally followed by
// " - <qualifier>" when several checks share a line. test/seed-titles.test.ts enforces this,
// and scripts/gen-coverage.ts shows the line in docs/coverage.md.
import { readFileSync } from 'node:fs';

export const SEED_FILE = 'docs/seed/production-deployment-checklist.md';

export const SEED_LINES: Readonly<Record<string, number>> = {
  // 1. Code quality & testing
  'ci-backend-tests': 14,
  'ci-frontend-tests': 15,
  'ci-integration-tests': 16,
  'ci-security-scans': 17,
  'coverage-backend': 19,
  'coverage-frontend': 19,
  'vulnerabilities-critical-high': 29,
  'code-review-approvals': 36,
  'todos-tracked': 38,
  // 2. Configuration & secrets
  'secrets-rotated': 42,
  'env-validated': 51,
  'postgres-reachable': 56,
  'credential-stripe': 63,
  'credential-openai': 64,
  'credential-aws': 65,
  'credential-azure': 66,
  'credential-gcp': 67,
  'tls-api-expiry': 69,
  'tls-app-expiry': 69,
  // 3. Database
  'migrations-staging-current': 77,
  'migrations-production-clean': 77,
  'backup-job-succeeded': 84,
  'postgres-connection-headroom': 94,
  'postgres-pool-usage': 95,
  'postgres-indexes': 97,
  'postgres-disk-free': 105,
  // 4. Infrastructure & resources
  'k8s-nodes-ready': 113,
  'k8s-node-pressure': 113,
  'k8s-pods-healthy': 113,
  'k8s-resources-set': 120,
  'k8s-hpa-api': 125,
  'k8s-hpa-worker': 125,
  'k8s-pdb': 131,
  'k8s-network-policies': 136,
  'k8s-ingress-rate-limit': 141,
  // 5. Observability & monitoring
  'prometheus-targets-up': 148,
  'grafana-dashboard-api-overview': 155,
  'grafana-dashboard-database-performance': 156,
  'grafana-dashboard-kubernetes-cluster': 157,
  'grafana-dashboard-business-metrics': 158,
  'prometheus-rules-loaded': 160,
  'alerting-pipeline-watchdog': 160,
  'alertmanager-receiver-pagerduty': 167,
  'alertmanager-receiver-slack': 168,
  'alertmanager-receiver-email': 169,
  'jaeger-services': 171,
  'jaeger-traces-recent': 171,
  'loki-logs-flowing': 176,
  // 6. Security
  'scan-images': 185,
  'scan-static': 186,
  'scan-dependencies': 187,
  'k8s-rbac-no-cluster-admin': 189,
  'k8s-rbac-reviewed': 189,
  'k8s-serviceaccounts-least-privilege': 195,
  'secrets-sealed': 200,
  'postgres-not-public': 206,
  'redis-not-public': 207,
  'k8s-services-internal': 208,
  'api-rate-limited': 210,
  'waf-blocks-attack': 216,
  'ddos-protection': 218,
  // 7. Performance & load testing
  'loadtest-p95': 222,
  'loadtest-p99': 222,
  'loadtest-errors': 222,
  'loadtest-throughput': 222,
  'postgres-slow-queries': 234,
  'lighthouse-performance': 243,
  'cdn-static-cached': 248,
  'postgres-connection-usage': 250,
  // 8. Disaster recovery
  'backup-latest-age': 261,
  'backup-retention': 262,
  'backup-offsite-region': 263,
  'restore-tested': 265,
  'restore-drill-attested': 265,
  'rto-restore-duration': 271,
  'rto-defined': 271,
  'rpo-wal-archive-age': 273,
  'dr-runbook-reviewed': 275,
  'backup-offsite-verified': 277,
  // 9. Documentation
  'api-docs-current': 281,
  'docs-architecture': 283,
  'runbook-api-down': 286,
  'runbook-db-connectivity': 287,
  'runbook-high-error-rate': 288,
  'runbook-performance': 289,
  'runbook-security-incident': 290,
  'docs-deploy-procedure': 292,
  'docs-rollback-tested': 294,
  'oncall-published': 296,
  'incident-plan-reviewed': 298,
  // 10. Compliance & legal
  'privacy-gdpr-ccpa': 302,
  'audit-logs-flowing': 304,
  'data-retention': 310,
  'legal-pages-current': 312,
  'legal-privacy-policy': 312,
  'security-policy-reviewed': 314,
  'compliance-frameworks': 316,
  // Deployment execution: the numbered steps (comments in the seed's shell blocks)
  'maintenance-announced': 325,
  'predeploy-backup-fresh': 332,
  'predeploy-backup-in-s3': 332,
  'staging-healthy': 336,
  'migrate-job-complete': 343,
  'rollout-api': 347,
  'rollout-worker': 351,
  'rollout-web': 355,
  'health-ready': 366,
  'health-live': 366,
  'smoke-tests': 370,
  'logs-no-errors': 376,
  'app-metrics-exposed': 379,
  'flow-login': 383,
  'flow-create-activity': 384,
  'flow-generate-report': 385,
  'flow-view-dashboard': 386,
  // Monitoring period (T+2 hours)
  'monitor-error-rate': 391,
  'monitor-latency-p95': 392,
  'monitor-db-connections': 393,
  'monitor-memory': 394,
  'monitor-cpu': 395,
  'monitor-no-alerts': 396,
  'monitor-support-clear': 397,
  // Sign-off table
  'signoff-engineering': 431,
  'signoff-devops': 432,
  'signoff-security': 433,
  'signoff-qa': 434,
  'signoff-product': 435,
  // Post-deployment
  'retro-scheduled': 441,
  'baseline-updated': 442,
  'known-issues-documented': 443,
  'changelog-published': 444,
  'team-notified': 445,
};

// Checkbox lines that head sub-items and are covered through them, not by a check of their own.
export const SEED_HEADER_LINES: Readonly<Record<number, string>> = {
  13: 'CI/CD pipelines: one check per pipeline, lines 14-17',
  62: 'API keys: one check per provider, lines 63-67',
  93: 'pool sizing: lines 94 (max_connections headroom) and 95 (pool usage)',
  154: 'Grafana dashboards: one check per dashboard, lines 155-158',
  166: 'notification channels: one check per channel, lines 167-169',
  184: 'security scanning: one check per scanner, lines 185-187',
  205: 'network segmentation: lines 206-208',
  260: 'backup strategy: lines 261-263',
  285: 'runbooks: one check per incident, lines 286-290',
};

export function readSeed(file = SEED_FILE): string[] {
  return readFileSync(file, 'utf8').split('\n');
}

// The seed was saved through a Mac Roman round trip, so "≥" reads "‚â•": undo that, so a
// title can say what the author wrote.
const MAC_ROMAN = new TextDecoder('macintosh');
const FROM_MAC = new Map<string, number>();
for (let b = 0x80; b <= 0xff; b++) FROM_MAC.set(MAC_ROMAN.decode(Uint8Array.of(b)), b);
export function unMojibake(s: string): string {
  return s.replace(/[^\p{ASCII}]+/gu, (run) => {
    const bytes = [...run].map((ch) => FROM_MAC.get(ch));
    if (bytes.some((b) => b === undefined)) return run;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes as number[]));
    } catch {
      return run;
    }
  });
}

/** A seed line as a title quotes it: checkbox, step number, table cell and markdown removed. */
export function seedLineText(raw: string): string {
  let s = unMojibake(raw).trim();
  if (s.startsWith('|')) s = s.split('|')[1] ?? '';
  s = s
    .replace(/^- \[[ x]\]\s*/, '')
    .replace(/^#\s*(\d+\.|-)\s*/, '')
    .replace(/\*\*|`/g, '')
    .replace(/\p{Extended_Pictographic}\uFE0F?/gu, '');
  return s.replace(/\s+/g, ' ').trim();
}

/** Whether a seed line is a checklist checkbox ("- [ ] ..."). */
export function isCheckbox(raw: string): boolean {
  return /^\s*- \[[ x]\]/.test(raw);
}
