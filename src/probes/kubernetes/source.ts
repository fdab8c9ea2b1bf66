// Whether this environment has a Kubernetes configuration at all, decided from the
// environment and the file system only (no client loaded): the loader asks it so a check
// without one is `unconfigured` at load, and clusterSource() follows the same order.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Where a check's cluster configuration comes from, in kubectl's order; undefined: nowhere. */
export type KubeconfigOrigin = { kind: 'param'; files: string[] } | { kind: 'env'; files: string[] } | { kind: 'in-cluster' } | { kind: 'home'; files: string[] };

export function kubeconfigOrigin(p: { kubeconfig?: string }, env: NodeJS.ProcessEnv): KubeconfigOrigin | undefined {
  if (p.kubeconfig) return { kind: 'param', files: [p.kubeconfig] };
  const envFiles = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  if (envFiles.length > 0) return { kind: 'env', files: envFiles };
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) return { kind: 'in-cluster' };
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return { kind: 'home', files: [home] };
  return undefined;
}

/** The message of a check with no Kubernetes configuration. */
export const NO_KUBECONFIG =
  'no Kubernetes configuration: not running in a pod, KUBECONFIG is not set, the check has no kubeconfig param and ~/.kube/config does not exist';
