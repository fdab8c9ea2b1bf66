// Workloads: requests and limits set, HPA and PDB in place, rollouts complete, environment
// variables defined and their ConfigMap/Secret references resolvable, CronJobs succeeding
// and Jobs complete.
import type { V1Container, V1Deployment, V1Job, V1StatefulSet } from '@kubernetes/client-node';
import { formatDuration } from '../../config/duration.js';
import type { Observation } from '../types.js';
import { byName, type Measurement, type View } from './measure.js';
import { DEFAULTS, namesOf, RESOURCE_KEYS, type KubeParams } from './params.js';
import type { AnyObject, SecretMeta, Wire } from './resources.js';
import { ago, durationMs, ms, nsName, parseSelector, plural, ref, selects, verdict } from './util.js';

type Deployment = Wire<V1Deployment>;
type Job = Wire<V1Job>;
type Container = Wire<V1Container>;

/** The named objects (or those matching the selector, or all), and the requested names not found. */
function pick<T extends { metadata?: { name?: string; labels?: Record<string, string> } }>(all: T[], p: KubeParams): { objects: T[]; missing: string[] } {
  const names = namesOf(p);
  const sel = p.selector ? parseSelector(p.selector) : () => true;
  const objects = all.filter((o) => (!names || names.includes(o.metadata?.name ?? '')) && sel(o.metadata?.labels));
  const found = new Set(objects.map((o) => o.metadata?.name));
  return { objects, missing: (names ?? []).filter((n) => !found.has(n)) };
}

function deploymentsIn(v: View): { objects: Deployment[]; missing: string[] } {
  return pick(v.list('deployments'), v.p);
}

function noneFound(v: View, what: string): Observation {
  const filter = v.p.selector ? ` matching ${v.p.selector}` : '';
  return { fields: { total: 0, offending: 0, offenders: [] }, noData: true, message: `no ${what} in ${v.namespace}${filter}` };
}

export const resources: Measurement = {
  reads: (p) => [
    { res: 'deployments', notify: byName(namesOf(p)) },
    { res: 'statefulsets', notify: byName(namesOf(p)) },
  ],
  run(v) {
    const required = v.p.require ?? RESOURCE_KEYS;
    const all: [string, Deployment | Wire<V1StatefulSet>][] = [
      ...v.list('deployments').map((d): [string, Deployment] => ['Deployment', d]),
      ...v.list('statefulsets').map((s): [string, Wire<V1StatefulSet>] => ['StatefulSet', s]),
    ];
    const { objects, missing } = pick(
      all.map(([kind, o]) => ({ kind, o, metadata: o.metadata })),
      v.p,
    );
    if (objects.length === 0 && missing.length === 0) return noneFound(v, 'Deployments or StatefulSets');
    const offenders = missing.map((n) => `${n} (not found)`);
    let containers = 0;
    for (const { kind, o } of objects) {
      for (const c of o.spec?.template.spec?.containers ?? []) {
        containers++;
        const absent = required.filter((k) => {
          const [group, res] = k.split('.') as ['requests' | 'limits', 'cpu' | 'memory'];
          return c.resources?.[group]?.[res] === undefined;
        });
        if (absent.length) offenders.push(`${ref(kind, o.metadata)} container ${c.name} (no ${absent.join(', ')})`);
      }
    }
    return verdict({
      enforce: v.enforce,
      total: containers,
      offenders,
      label: 'containers without requests and limits',
      ok: `${plural(containers, 'container')} of ${plural(objects.length, 'workload')} in ${v.namespace} set ${required.join(', ')}`,
      fields: { workloads: objects.length, containers, containers_missing: offenders.length },
    });
  },
};

export const hpa: Measurement = {
  reads: (p) => [
    { res: 'hpas', notify: (o) => (o as { spec?: { scaleTargetRef?: { name?: string } } }).spec?.scaleTargetRef?.name === p.name },
    { res: 'deployments', notify: byName([p.name!]) },
  ],
  run(v) {
    const name = v.p.name!;
    const want = v.p.minReplicas ?? DEFAULTS.minReplicas;
    const target = `Deployment ${v.namespace}/${name}`;
    const dep = v.list('deployments').find((d) => d.metadata?.name === name);
    const h = v.list('hpas').find((x) => x.spec?.scaleTargetRef.kind === 'Deployment' && x.spec.scaleTargetRef.name === name);
    if (!h) {
      const why = dep ? 'no HorizontalPodAutoscaler targets it' : 'it does not exist, and no HorizontalPodAutoscaler targets it';
      return verdict({ enforce: v.enforce, total: 0, offenders: [why], label: target, ok: '', fields: { scaling_active: false }, value: undefined });
    }
    const min = h.spec?.minReplicas ?? 1;
    const max = h.spec?.maxReplicas ?? 0;
    const cond = (type: string) => h.status?.conditions?.find((c) => c.type === type);
    const active = cond('ScalingActive');
    const able = cond('AbleToScale');
    const problems: string[] = [];
    if (!dep) problems.push(`its target ${target} does not exist`);
    if (min < want) problems.push(`minReplicas ${min} < ${want}`);
    if (active?.status !== 'True') problems.push(active ? `ScalingActive ${active.status}${active.reason ? `: ${active.reason}` : ''}` : 'ScalingActive not reported yet');
    if (able && able.status !== 'True') problems.push(`AbleToScale ${able.status}${able.reason ? `: ${able.reason}` : ''}`);
    return verdict({
      enforce: v.enforce,
      total: 1,
      offenders: problems,
      label: `HorizontalPodAutoscaler ${nsName(h.metadata)}`,
      ok: `HorizontalPodAutoscaler ${nsName(h.metadata)} scales ${target} between ${min} and ${max} replicas (now ${h.status?.currentReplicas ?? 0}), ScalingActive`,
      fields: {
        min_replicas: min,
        max_replicas: max,
        current_replicas: h.status?.currentReplicas ?? 0,
        desired_replicas: h.status?.desiredReplicas ?? 0,
        scaling_active: active?.status === 'True',
        able_to_scale: able?.status === 'True',
      },
      // The database headroom check reads this through valueOf(): replicas at most.
      value: max,
    });
  },
};

export const pdb: Measurement = {
  reads: (p) => [{ res: 'pdbs' }, { res: 'deployments', notify: byName(namesOf(p)) }],
  run(v) {
    const min = v.p.minDisruptionsAllowed ?? DEFAULTS.minDisruptionsAllowed;
    const { objects, missing } = deploymentsIn(v);
    const deps = objects.filter((d) => d.spec?.replicas !== 0);
    if (deps.length === 0 && missing.length === 0) return noneFound(v, 'Deployments with replicas');
    const pdbs = v.list('pdbs');
    const offenders = missing.map((n) => `${n} (not found)`);
    let without = missing.length;
    let lowest: number | undefined;
    for (const d of deps) {
      const labels = d.spec?.template.metadata?.labels;
      const matched = pdbs.filter((b) => selects(b.spec?.selector, labels));
      const name = d.metadata?.name;
      if (matched.length === 0) {
        without++;
        offenders.push(`${name} (no PodDisruptionBudget selects its pods)`);
        continue;
      }
      if (matched.length > 1) {
        offenders.push(`${name} (selected by ${matched.length} PodDisruptionBudgets: ${matched.map((b) => b.metadata?.name).join(', ')}; evictions of its pods fail)`);
        continue;
      }
      const b = matched[0]!;
      const allowed = b.status?.disruptionsAllowed ?? 0;
      lowest = Math.min(lowest ?? allowed, allowed);
      if (allowed < min) offenders.push(`${name} (PodDisruptionBudget ${b.metadata?.name} allows ${plural(allowed, 'disruption')}${b.status ? `, ${b.status.currentHealthy}/${b.status.desiredHealthy} healthy` : ''})`);
    }
    return verdict({
      enforce: v.enforce,
      total: deps.length + missing.length,
      offenders,
      label: `Deployments in ${v.namespace} without a PodDisruptionBudget allowing ${plural(min, 'disruption')}`,
      ok: `every one of ${plural(deps.length, 'Deployment')} in ${v.namespace} has a PodDisruptionBudget allowing >= ${plural(min, 'disruption')}`,
      fields: { deployments: deps.length, deployments_without_pdb: without, ...(lowest !== undefined && { disruptions_allowed: lowest }) },
    });
  },
};

/** The version an image reference names: its tag, else a short digest, else `latest`. */
export function imageVersion(image: string): string {
  const [name, digest] = image.split('@');
  if (digest) return digest.replace(/^sha256:/, '').slice(0, 12);
  const tag = /:([^:/]+)$/.exec(name!)?.[1];
  return tag ?? 'latest';
}

export const rollout: Measurement = {
  reads: (p) => [{ res: 'deployments', notify: byName(namesOf(p)) }],
  run(v) {
    const { objects, missing } = deploymentsIn(v);
    if (objects.length === 0 && missing.length === 0) return noneFound(v, 'Deployments');
    const offenders = missing.map((n) => `${n} (not found)`);
    const sum = { replicas: 0, updated: 0, ready: 0, available: 0 };
    for (const d of objects) {
      const desired = d.spec?.replicas ?? 1;
      const st = d.status ?? {};
      const updated = st.updatedReplicas ?? 0;
      const ready = st.readyReplicas ?? 0;
      const available = st.availableReplicas ?? 0;
      sum.replicas += desired;
      sum.updated += updated;
      sum.ready += ready;
      sum.available += available;
      const problems: string[] = [];
      const gen = d.metadata?.generation ?? 0;
      if ((st.observedGeneration ?? 0) < gen) problems.push(`generation ${gen} not observed yet (observed ${st.observedGeneration ?? 0})`);
      if (updated < desired) problems.push(`${updated}/${desired} updated`);
      if (ready < desired) problems.push(`${ready}/${desired} ready`);
      if (available < desired) problems.push(`${available}/${desired} available`);
      if ((st.replicas ?? 0) > updated) problems.push(`${(st.replicas ?? 0) - updated} old replicas still running`);
      const progressing = st.conditions?.find((c) => c.type === 'Progressing');
      if (progressing?.reason === 'ProgressDeadlineExceeded') problems.push('ProgressDeadlineExceeded');
      if (d.spec?.paused) problems.push('paused');
      if (problems.length) offenders.push(`${d.metadata?.name} (${problems.join(', ')})`);
    }
    const single = objects.length === 1 && missing.length === 0 ? objects[0] : undefined;
    // What a single Deployment runs, and when its rollout finished: `marksDeployment` checks
    // record a deployment from these (src/service.ts).
    const release: Record<string, unknown> = {};
    if (single) {
      const image = single.spec?.template?.spec?.containers?.[0]?.image;
      if (image) {
        release.image = image;
        release.version = imageVersion(image);
      }
      const done = single.status?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'NewReplicaSetAvailable');
      const at = done?.lastUpdateTime ? Date.parse(String(done.lastUpdateTime)) : NaN;
      if (Number.isFinite(at)) release.rolled_out_at = at / 1000;
    }
    return verdict({
      enforce: v.enforce,
      total: objects.length + missing.length,
      offenders,
      label: `Deployments in ${v.namespace} not rolled out`,
      ok: single
        ? `${ref('Deployment', single.metadata)} rolled out: ${sum.ready}/${sum.replicas} updated, ready and available at generation ${single.metadata?.generation ?? 0}`
        : `${plural(objects.length, 'Deployment')} in ${v.namespace} rolled out (${sum.ready}/${sum.replicas} replicas ready)`,
      fields: {
        deployments: objects.length,
        rolled_out: objects.length - (offenders.length - missing.length),
        replicas: sum.replicas,
        updated_replicas: sum.updated,
        ready_replicas: sum.ready,
        available_replicas: sum.available,
        ...release,
      },
    });
  },
};

/** Key names of a Secret, when they can be known without reading it: from the SealedSecret that produces it. */
function secretKeys(v: View, secret: SecretMeta | undefined, name: string): Set<string> | undefined {
  const sealedName = secret?.metadata?.ownerReferences?.find((o) => o.kind === 'SealedSecret')?.name ?? name;
  const sealed = v.list('sealedsecrets').find((s) => s.metadata?.name === sealedName);
  if (!sealed) return undefined;
  return new Set([...Object.keys(sealed.spec?.encryptedData ?? {}), ...Object.keys(sealed.spec?.template?.data ?? {})]);
}

export const env: Measurement = {
  reads: (p) => [{ res: 'deployments', notify: byName(namesOf(p)) }, { res: 'configmaps' }, { res: 'secrets' }, { res: 'sealedsecrets' }],
  run(v) {
    const { objects, missing } = deploymentsIn(v);
    if (objects.length === 0 && missing.length === 0) return noneFound(v, 'Deployments');
    const configMaps = new Map(v.list('configmaps').map((c) => [c.metadata?.name ?? '', c]));
    const secrets = new Map(v.list('secrets').map((s) => [s.metadata?.name ?? '', s]));
    const sealedNames = new Set(v.list('sealedsecrets').map((s) => s.metadata?.name));
    const offenders = missing.map((n) => `${n}: Deployment not found`);
    const unverified: string[] = [];
    let envMissing = 0;
    let broken = 0;
    const cmKeys = (name: string) => {
      const cm = configMaps.get(name);
      return cm && new Set([...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})]);
    };
    const noSecret = (name: string) => `Secret ${name} does not exist${sealedNames.has(name) ? ' (its SealedSecret exists but is not unsealed)' : ''}`;
    for (const d of objects) {
      const dn = d.metadata?.name ?? '?';
      const pod = d.spec?.template.spec;
      const containers: Container[] = [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
      const defined = new Set<string>();
      const opaque: string[] = [];
      const problem = (text: string) => {
        broken++;
        offenders.push(`${dn}: ${text}`);
      };
      for (const c of containers) {
        for (const e of c.env ?? []) {
          defined.add(e.name);
          const cmRef = e.valueFrom?.configMapKeyRef;
          const sRef = e.valueFrom?.secretKeyRef;
          if (cmRef?.name) {
            const keys = cmKeys(cmRef.name);
            if (!keys) {
              if (!cmRef.optional) problem(`${e.name} -> ConfigMap ${cmRef.name} does not exist`);
            } else if (!keys.has(cmRef.key) && !cmRef.optional) problem(`${e.name} -> ConfigMap ${cmRef.name} has no key ${cmRef.key}`);
          }
          if (sRef?.name) {
            const s = secrets.get(sRef.name);
            if (!s) {
              if (!sRef.optional) problem(`${e.name} -> ${noSecret(sRef.name)}`);
            } else {
              const keys = secretKeys(v, s, sRef.name);
              if (!keys) unverified.push(`${dn}: ${e.name} -> Secret ${sRef.name} key ${sRef.key}`);
              else if (!keys.has(sRef.key) && !sRef.optional) problem(`${e.name} -> Secret ${sRef.name} has no key ${sRef.key}`);
            }
          }
        }
        for (const f of c.envFrom ?? []) {
          const prefix = f.prefix ?? '';
          if (f.configMapRef?.name) {
            const keys = cmKeys(f.configMapRef.name);
            if (keys) for (const k of keys) defined.add(prefix + k);
            else if (!f.configMapRef.optional) problem(`envFrom ConfigMap ${f.configMapRef.name} does not exist`);
          }
          if (f.secretRef?.name) {
            const s = secrets.get(f.secretRef.name);
            const keys = s && secretKeys(v, s, f.secretRef.name);
            if (keys) for (const k of keys) defined.add(prefix + k);
            else if (s) opaque.push(`Secret ${f.secretRef.name}`);
            else if (!f.secretRef.optional) problem(`envFrom ${noSecret(f.secretRef.name)}`);
          }
        }
      }
      for (const r of v.p.required ?? []) {
        if (defined.has(r)) continue;
        if (opaque.length) unverified.push(`${dn}: ${r} (may come from envFrom ${opaque.join(', ')})`);
        else {
          envMissing++;
          offenders.push(`${dn}: ${r} is not set`);
        }
      }
    }
    const notes = unverified.length
      ? [`${plural(unverified.length, 'reference')} not verifiable without reading Secret values (not sealed): ${unverified.slice(0, 4).join(', ')}${unverified.length > 4 ? ', ...' : ''}`]
      : [];
    return verdict({
      enforce: v.enforce,
      total: objects.length + missing.length,
      offenders,
      label: `environment of Deployments in ${v.namespace}`,
      ok: `${plural(objects.length, 'Deployment')} in ${v.namespace}: required variables set, every ConfigMap/Secret reference resolves`,
      fields: { deployments: objects.length, env_missing: envMissing, refs_broken: broken, env_unverified: unverified.length },
      notes,
    });
  },
};

function ownedByCronJob(name: string | undefined) {
  return (o: AnyObject) => (o.metadata?.ownerReferences ?? []).some((r) => r.kind === 'CronJob' && r.name === name);
}

function condition(job: Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** When a Job finished (completed or failed), if it did. */
function finishedAt(job: Job): number | undefined {
  return ms(job.status?.completionTime) ?? ms(condition(job, 'Failed')?.lastTransitionTime) ?? ms(condition(job, 'Complete')?.lastTransitionTime);
}

export const cronjobLastSuccess: Measurement = {
  reads: (p) => [
    { res: 'cronjobs', notify: byName([p.name!]) },
    { res: 'jobs', notify: ownedByCronJob(p.name) },
  ],
  run(v) {
    const name = v.p.name!;
    const within = durationMs(v.p.within ?? DEFAULTS.cronjobWithin);
    const label = `CronJob ${v.namespace}/${name}`;
    const cj = v.list('cronjobs').find((c) => c.metadata?.name === name);
    if (!cj) return verdict({ enforce: v.enforce, total: 0, offenders: ['not found'], label, ok: '', fields: {}, value: undefined });
    const last = ms(cj.status?.lastSuccessfulTime);
    const jobs = v.list('jobs').filter(ownedByCronJob(name));
    const latest = jobs.filter((j) => finishedAt(j) !== undefined).sort((a, b) => finishedAt(b)! - finishedAt(a)!)[0];
    const latestFailed = latest ? condition(latest, 'Failed') : undefined;
    const problems: string[] = [];
    if (last === undefined) problems.push('has never succeeded');
    else if (v.now - last > within) problems.push(`last succeeded ${ago(v.now - last)} (${cj.status?.lastSuccessfulTime}), more than ${v.p.within ?? DEFAULTS.cronjobWithin} ago`);
    if (cj.spec?.suspend) problems.push('is suspended');
    if (problems.length && latest && latestFailed) problems.push(`its latest Job ${latest.metadata?.name} failed${latestFailed.reason ? `: ${latestFailed.reason}` : ''}`);
    const ageSeconds = last === undefined ? undefined : Math.max(0, (v.now - last) / 1000);
    return verdict({
      enforce: v.enforce,
      total: 1,
      offenders: problems,
      label,
      ok: `${label} last succeeded ${ago(v.now - (last ?? v.now))}${latestFailed ? ` (its latest Job ${latest?.metadata?.name} failed since)` : ''}`,
      fields: {
        ...(ageSeconds !== undefined && { age_seconds: Math.round(ageSeconds) }),
        ...(cj.status?.lastSuccessfulTime !== undefined && { last_success: cj.status.lastSuccessfulTime }),
        suspended: cj.spec?.suspend === true,
        active: cj.status?.active?.length ?? 0,
        last_job_failed: latestFailed !== undefined,
      },
      value: ageSeconds === undefined ? undefined : Math.round(ageSeconds),
    });
  },
};

export const jobComplete: Measurement = {
  reads: (p) => [{ res: 'jobs', notify: p.name ? byName([p.name]) : p.cronjob ? ownedByCronJob(p.cronjob) : undefined }],
  run(v) {
    const p = v.p;
    const sel = p.selector ? parseSelector(p.selector) : undefined;
    const what = p.name ? `Job ${v.namespace}/${p.name}` : p.cronjob ? `Jobs of CronJob ${v.namespace}/${p.cronjob}` : `Jobs in ${v.namespace} matching ${p.selector}`;
    const candidates = v.list('jobs').filter((j) => (p.name ? j.metadata?.name === p.name : p.cronjob ? ownedByCronJob(p.cronjob)(j) : sel!(j.metadata?.labels)));
    // A named Job is measured as it is; otherwise the newest finished one (a drill running right now does not hide the last result).
    const finished = candidates.filter((j) => finishedAt(j) !== undefined).sort((a, b) => finishedAt(b)! - finishedAt(a)!);
    const job = p.name ? candidates[0] : finished[0];
    const running = candidates.filter((j) => (j.status?.active ?? 0) > 0);
    if (!job) {
      const why = running.length ? `none finished yet (${plural(running.length, 'Job')} running: ${running.map((j) => j.metadata?.name).join(', ')})` : 'none found';
      return verdict({ enforce: v.enforce, total: 0, offenders: [why], label: what, ok: '', fields: { complete: false, failed: false }, value: undefined });
    }
    const complete = condition(job, 'Complete') !== undefined;
    const failed = condition(job, 'Failed');
    const start = ms(job.status?.startTime);
    const end = finishedAt(job);
    const durationS = start !== undefined && end !== undefined ? Math.max(0, (end - start) / 1000) : undefined;
    const problems: string[] = [];
    if (failed) problems.push(`failed${failed.reason ? `: ${failed.reason}` : ''}${failed.message ? ` (${failed.message})` : ''}`);
    else if (!complete) problems.push(`not complete: ${job.status?.active ?? 0} active, started ${start !== undefined ? ago(v.now - start) : 'not yet'}`);
    if (complete && p.within !== undefined && end !== undefined && v.now - end > durationMs(p.within)) problems.push(`completed ${ago(v.now - end)}, more than ${p.within} ago`);
    if (p.maxDuration !== undefined && durationS !== undefined && durationS * 1000 > durationMs(p.maxDuration)) problems.push(`took ${formatDuration(durationS * 1000)}, more than ${p.maxDuration}`);
    return verdict({
      enforce: v.enforce,
      total: 1,
      offenders: problems,
      label: `Job ${nsName(job.metadata)}`,
      ok: `Job ${nsName(job.metadata)} complete${end !== undefined ? ` ${ago(v.now - end)}` : ''}${durationS !== undefined ? `, took ${formatDuration(durationS * 1000)}` : ''}`,
      fields: {
        job: job.metadata?.name ?? '',
        complete,
        failed: failed !== undefined,
        active: job.status?.active ?? 0,
        succeeded: job.status?.succeeded ?? 0,
        ...(durationS !== undefined && { duration_seconds: Math.round(durationS) }),
        ...(end !== undefined && { age_seconds: Math.round(Math.max(0, v.now - end) / 1000) }),
      },
      value: durationS === undefined ? undefined : Math.round(durationS),
    });
  },
};
