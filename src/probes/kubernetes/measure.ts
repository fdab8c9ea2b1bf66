// What a measurement is: the resources it reads (opened as shared informers, and the ones a
// change of which re-runs the check) and a function from the cache to an Observation.
import type { Observation, ProbeContext } from '../types.js';
import type { KubeParams } from './params.js';
import type { AnyObject, ObjectOf, ResourceName } from './resources.js';

/** A resource a measurement reads, in the check's namespace (or cluster-wide for cluster-scoped ones). */
export interface ReadSpec {
  res: ResourceName;
  /** Only changes of objects passing this re-run the check (default: any object of the resource). */
  notify?: (obj: AnyObject) => boolean;
}

/** The synced caches a measurement reads, and a plain GET for metrics.k8s.io. */
export interface View {
  p: KubeParams;
  namespace: string;
  /** The time of this run (epoch ms): every age is measured against it. */
  now: number;
  enforce: boolean;
  ctx: ProbeContext;
  /** The cached objects of a resource the measurement declared in reads(). */
  list<K extends ResourceName>(res: K): ObjectOf<K>[];
  /** The resource is an optional CRD the cluster does not serve. */
  absent(res: ResourceName): boolean;
  /** GET from the API server (not cached), bounded by the check's timeout. */
  getJson<T>(path: string): Promise<T>;
}

export interface Measurement {
  reads(p: KubeParams): ReadSpec[];
  run(v: View): Observation | Promise<Observation>;
}

/** A notify filter on object names (for measurements of named objects). */
export function byName(names: readonly string[] | undefined): ((obj: AnyObject) => boolean) | undefined {
  if (!names) return undefined;
  const set = new Set(names);
  return (obj) => set.has(obj.metadata?.name ?? '');
}
