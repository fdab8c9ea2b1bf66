// deploy/ rendered by the machine's `kubectl kustomize` (offline, no cluster), for the tests.
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import type { K8sObject } from './k8s-schemas.js';

export function render(dir: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return YAML.parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
}

const rendered = new Map<string, K8sObject[]>();
/** render(), once per directory and test process. */
export const renderCached = (dir: string): K8sObject[] => rendered.get(dir) ?? rendered.set(dir, render(dir)).get(dir)!;

/** The one object of this kind (and name); throws when there are none or several. */
export function one(objs: K8sObject[], kind: string, name?: string): K8sObject & Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]! as K8sObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}
