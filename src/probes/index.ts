// The one place probe kinds are registered: adding a kind is its own file plus one line here.
import type { ProbeKind } from './types.js';
import alertmanager from './alertmanager.js';
import attestation from './attestation.js';
import credential from './credential.js';
import exec from './exec.js';
import flow from './flow.js';
import github from './github.js';
import grafana from './grafana.js';
import http from './http.js';
import jaeger from './jaeger.js';
import kubernetes from './kubernetes.js';
import loki from './loki.js';
import pagerduty from './pagerduty.js';
import postgres from './postgres.js';
import prometheus from './prometheus.js';
import ratelimit from './ratelimit.js';
import report from './report.js';
import s3 from './s3.js';
import tcp from './tcp.js';
import tls from './tls.js';

const kinds: ProbeKind[] = [alertmanager, attestation, credential, exec, flow, github, grafana, http, jaeger, kubernetes, loki, pagerduty, postgres, prometheus, ratelimit, report, s3, tcp, tls];

export const probeKinds: ReadonlyMap<string, ProbeKind> = new Map(kinds.map((k) => [k.kind, k]));

export function getProbeKind(kind: string): ProbeKind | undefined {
  return probeKinds.get(kind);
}

/** Closes every kind's shared resources (pools, agents): on reload and shutdown. */
export async function closeProbeKinds(): Promise<void> {
  await Promise.allSettled(kinds.map((k) => k.close?.()));
}
