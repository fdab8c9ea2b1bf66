// Cluster health: nodes Ready, node usage against allocatable (kubectl top nodes), pods
// Running/Succeeded with their restarts, and container usage against limits (kubectl top pods).
// Usage comes from metrics.k8s.io by a plain GET each run: the metrics API has no watch.
import type { NodeMetricsList, PodMetricsList, V1Pod } from '@kubernetes/client-node';
import { formatDuration } from '../../config/duration.js';
import type { Observation } from '../types.js';
import type { Measurement, View } from './measure.js';
import { DEFAULTS } from './params.js';
import type { Wire } from './resources.js';
import { durationMs, ms, nsName, parseQuantity, parseSelector, plural, round1, verdict } from './util.js';

type Pod = Wire<V1Pod>;

const PRESSURE = ['MemoryPressure', 'DiskPressure', 'PIDPressure'] as const;

/** GET a metrics.k8s.io list, with a hint when the metrics API is not there. */
async function metrics<T>(v: View, path: string): Promise<T> {
  try {
    return await v.getJson<T>(path);
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 404 || status === 503) {
      (err as Error).message += ' (metrics.k8s.io is not served: is metrics-server installed and healthy?)';
    }
    throw err;
  }
}

function selectorOf(text: string | undefined) {
  return text ? parseSelector(text) : () => true;
}

export const nodes: Measurement = {
  reads: () => [{ res: 'nodes' }],
  run(v) {
    const sel = selectorOf(v.p.selector);
    const all = v.list('nodes').filter((n) => sel(n.metadata?.labels));
    if (all.length === 0) return { fields: { nodes: 0 }, noData: true, message: v.p.selector ? `no node matches ${v.p.selector}` : 'the cluster has no nodes' };
    const offenders: string[] = [];
    let ready = 0;
    let pressure = 0;
    let unschedulable = 0;
    for (const n of all) {
      const conds = n.status?.conditions ?? [];
      const r = conds.find((c) => c.type === 'Ready');
      if (r?.status === 'True') ready++;
      else offenders.push(`${n.metadata?.name} (${r ? `Ready ${r.status}${r.reason ? `: ${r.reason}` : ''}` : 'no Ready condition'})`);
      if (conds.some((c) => (PRESSURE as readonly string[]).includes(c.type) && c.status === 'True')) pressure++;
      if (n.spec?.unschedulable) unschedulable++;
    }
    return verdict({
      enforce: v.enforce,
      total: all.length,
      offenders,
      label: 'nodes not Ready',
      ok: `all ${plural(all.length, 'node')} Ready`,
      fields: { nodes: all.length, nodes_ready: ready, nodes_not_ready: all.length - ready, nodes_pressure: pressure, nodes_unschedulable: unschedulable },
      value: all.length - ready,
      notes: [...(pressure ? [`${plural(pressure, 'node')} under pressure`] : []), ...(unschedulable ? [`${unschedulable} cordoned`] : [])],
    });
  },
};

export const nodeUsage: Measurement = {
  reads: () => [{ res: 'nodes' }],
  async run(v) {
    const maxCpu = v.p.maxCpuPercent ?? DEFAULTS.nodeCpuPercent;
    const maxMem = v.p.maxMemoryPercent ?? DEFAULTS.nodeMemoryPercent;
    const sel = selectorOf(v.p.selector);
    const all = v.list('nodes').filter((n) => sel(n.metadata?.labels));
    if (all.length === 0) return { fields: { nodes: 0 }, noData: true, message: 'no nodes to measure' };
    const list = await metrics<NodeMetricsList>(v, '/apis/metrics.k8s.io/v1beta1/nodes');
    const usage = new Map((list.items ?? []).map((m) => [m.metadata.name, m.usage]));
    const offenders: string[] = [];
    let cpuMax = 0;
    let memMax = 0;
    let pressure = 0;
    let measured = 0;
    for (const n of all) {
      const name = n.metadata?.name ?? '?';
      const problems: string[] = [];
      const conds = n.status?.conditions ?? [];
      for (const c of conds) if ((PRESSURE as readonly string[]).includes(c.type) && c.status === 'True') problems.push(c.type);
      if (problems.length) pressure++;
      const u = usage.get(name);
      const ready = conds.find((c) => c.type === 'Ready')?.status === 'True';
      if (!u) {
        if (ready) problems.push('no metrics');
      } else {
        const cpu = pct(parseQuantity(u.cpu), parseQuantity(n.status?.allocatable?.cpu));
        const mem = pct(parseQuantity(u.memory), parseQuantity(n.status?.allocatable?.memory));
        if (cpu !== undefined) {
          cpuMax = Math.max(cpuMax, cpu);
          if (cpu > maxCpu) problems.push(`cpu ${round1(cpu)}% of allocatable`);
        }
        if (mem !== undefined) {
          memMax = Math.max(memMax, mem);
          if (mem > maxMem) problems.push(`memory ${round1(mem)}% of allocatable`);
        }
        measured++;
      }
      if (problems.length) offenders.push(`${name} (${problems.join(', ')})`);
    }
    return verdict({
      enforce: v.enforce,
      total: all.length,
      offenders,
      label: 'nodes under pressure',
      ok: `${plural(measured, 'node')}: highest cpu ${round1(cpuMax)}%, memory ${round1(memMax)}% of allocatable; no pressure conditions`,
      fields: { nodes: all.length, nodes_pressure: pressure, cpu_percent: round1(cpuMax), memory_percent: round1(memMax) },
      value: round1(Math.max(cpuMax, memMax)),
    });
  },
};

function pct(used: number | undefined, of: number | undefined): number | undefined {
  return used === undefined || !of ? undefined : (used / of) * 100;
}

/** Container waiting reasons that mean the pod is broken, whatever its phase says. */
const BAD_WAITING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'PreCreateHookError',
  'PostStartHookError',
]);

const HOUR = 3_600_000;

/**
 * Restart counts per container over time (uid/container -> samples), so "restarts in the last
 * hour" can be told from a counter that only ever grows. Samples are taken when a pods check
 * runs, which a restart triggers (the pod's status changes). Before an hour of history exists,
 * a container whose last termination ended within the hour counts at least once.
 */
const restartHistory = new Map<string, { samples: { t: number; n: number }[]; seen: number }>();

function restartsLastHour(pod: Pod, now: number): number {
  let total = 0;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const key = `${pod.metadata?.uid ?? nsName(pod.metadata)}/${cs.name}`;
    const h = restartHistory.get(key) ?? { samples: [], seen: now };
    h.seen = now;
    const last = h.samples[h.samples.length - 1];
    if (!last || last.n !== cs.restartCount) h.samples.push({ t: now, n: cs.restartCount });
    while (h.samples.length > 1 && h.samples[1]!.t <= now - HOUR) h.samples.shift();
    restartHistory.set(key, h);
    const delta = cs.restartCount - h.samples[0]!.n;
    const lastEnd = ms(cs.lastState?.terminated?.finishedAt);
    total += Math.max(delta, lastEnd !== undefined && lastEnd > now - HOUR && cs.restartCount > 0 ? 1 : 0);
  }
  return total;
}

function sweepRestartHistory(now: number): void {
  for (const [k, h] of restartHistory) if (h.seen < now - 2 * HOUR) restartHistory.delete(k);
}

/** Why a pod is unhealthy, or undefined when it is fine. */
function podProblem(pod: Pod, now: number, pendingMs: number, restarts: number): string | undefined {
  const st = pod.status ?? {};
  const r = restarts > 0 ? `, ${plural(restarts, 'restart')}` : '';
  for (const [prefix, list] of [['Init:', st.initContainerStatuses], ['', st.containerStatuses]] as const) {
    for (const cs of list ?? []) {
      const w = cs.state?.waiting;
      if (w?.reason && BAD_WAITING.has(w.reason)) return `${prefix}${w.reason}${r}`;
    }
  }
  switch (st.phase) {
    case 'Succeeded':
      return undefined;
    case 'Running': {
      const ready = st.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'True') return undefined;
      const since = ms(ready?.lastTransitionTime) ?? ms(st.startTime) ?? ms(pod.metadata?.creationTimestamp) ?? now;
      return now - since > pendingMs ? `Running, not Ready for ${formatDuration(now - since)}${r}` : undefined;
    }
    case 'Pending': {
      const age = now - (ms(pod.metadata?.creationTimestamp) ?? now);
      if (age <= pendingMs) return undefined;
      const waiting = [...(st.initContainerStatuses ?? []), ...(st.containerStatuses ?? [])].map((c) => c.state?.waiting?.reason).find((x) => x);
      const sched = st.conditions?.find((c) => c.type === 'PodScheduled' && c.status !== 'True');
      const why = waiting ?? sched?.reason ?? st.reason;
      return `Pending for ${formatDuration(age)}${why ? `: ${why}` : ''}${r}`;
    }
    case 'Failed':
      return `Failed${st.reason ? `: ${st.reason}` : ''}${r}`;
    default:
      return `${st.phase ?? 'Unknown'}${st.reason ? `: ${st.reason}` : ''}${r}`;
  }
}

function restartCount(pod: Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((s, c) => s + c.restartCount, 0);
}

export const pods: Measurement = {
  reads: () => [{ res: 'pods' }],
  run(v): Observation {
    const pendingMs = durationMs(v.p.pendingFor ?? DEFAULTS.pendingFor);
    const sel = selectorOf(v.p.selector);
    // Terminating pods are on their way out (a rollout, a scale-down): not a health problem.
    const all = v.list('pods').filter((p) => sel(p.metadata?.labels) && !p.metadata?.deletionTimestamp);
    sweepRestartHistory(v.now);
    if (all.length === 0) return { fields: { pods: 0 }, noData: true, message: `no pods in ${v.namespace}${v.p.selector ? ` matching ${v.p.selector}` : ''}` };
    const offenders: string[] = [];
    let running = 0;
    let pending = 0;
    let restarts = 0;
    let lastHour = 0;
    for (const pod of all) {
      const phase = pod.status?.phase;
      if (phase === 'Running') running++;
      if (phase === 'Pending') pending++;
      const n = restartCount(pod);
      const recent = restartsLastHour(pod, v.now);
      restarts += n;
      lastHour += recent;
      let problem = podProblem(pod, v.now, pendingMs, n);
      if (!problem && v.p.maxRestarts !== undefined && recent > v.p.maxRestarts) problem = `${plural(recent, 'restart')} in the last hour`;
      if (problem) offenders.push(`${nsName(pod.metadata)} (${problem})`);
    }
    return verdict({
      enforce: v.enforce,
      total: all.length,
      offenders,
      label: 'pods not Running',
      ok: `${plural(all.length, 'pod')} in ${v.namespace} Running or Succeeded`,
      fields: { pods: all.length, pods_running: running, pods_pending: pending, restarts, restarts_last_hour: lastHour },
      notes: lastHour > 0 ? [`${plural(lastHour, 'restart')} in the last hour`] : [],
    });
  },
};

export const podUsage: Measurement = {
  reads: () => [{ res: 'pods' }],
  async run(v) {
    const maxCpu = v.p.maxCpuPercent ?? DEFAULTS.podCpuPercent;
    const maxMem = v.p.maxMemoryPercent ?? DEFAULTS.podMemoryPercent;
    const sel = selectorOf(v.p.selector);
    const byName = new Map(v.list('pods').map((p) => [p.metadata?.name ?? '', p]));
    const list = await metrics<PodMetricsList>(v, `/apis/metrics.k8s.io/v1beta1/namespaces/${encodeURIComponent(v.namespace)}/pods`);
    const offenders: string[] = [];
    let containers = 0;
    let unlimited = 0;
    let cpuMax = 0;
    let memMax = 0;
    for (const pm of list.items ?? []) {
      const pod = byName.get(pm.metadata.name);
      if (!pod || !sel(pod.metadata?.labels)) continue;
      for (const cm of pm.containers ?? []) {
        const spec = pod.spec?.containers.find((c) => c.name === cm.name);
        if (!spec) continue;
        containers++;
        const limits = spec.resources?.limits ?? {};
        const cpu = pct(parseQuantity(cm.usage.cpu), parseQuantity(limits.cpu));
        const mem = pct(parseQuantity(cm.usage.memory), parseQuantity(limits.memory));
        if (cpu === undefined || mem === undefined) unlimited++;
        const problems: string[] = [];
        if (cpu !== undefined) {
          cpuMax = Math.max(cpuMax, cpu);
          if (cpu > maxCpu) problems.push(`cpu ${round1(cpu)}% of the ${limits.cpu} limit`);
        }
        if (mem !== undefined) {
          memMax = Math.max(memMax, mem);
          if (mem > maxMem) problems.push(`memory ${round1(mem)}% of the ${limits.memory} limit`);
        }
        if (problems.length) offenders.push(`${nsName(pod.metadata)}/${cm.name} (${problems.join(', ')})`);
      }
    }
    if (containers === 0) return { fields: { containers: 0 }, noData: true, message: `metrics.k8s.io has no usage for pods in ${v.namespace}${v.p.selector ? ` matching ${v.p.selector}` : ''}` };
    return verdict({
      enforce: v.enforce,
      total: containers,
      offenders,
      label: 'containers near their limits',
      ok: `${plural(containers, 'container')}: highest cpu ${round1(cpuMax)}%, memory ${round1(memMax)}% of the limit`,
      fields: { containers, containers_unlimited: unlimited, cpu_percent: round1(cpuMax), memory_percent: round1(memMax) },
      value: round1(Math.max(cpuMax, memMax)),
      notes: unlimited ? [`${plural(unlimited, 'container')} without a cpu or memory limit not measured`] : [],
    });
  },
};
