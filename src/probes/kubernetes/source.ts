// Whether this environment has a Kubernetes configuration at all, decided from the
// environment and the file system only (no client loaded): the loader asks it so a check
// without one is `unconfigured` at load, and clusterSource() follows the same order.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import jsyaml from 'js-yaml';

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

/**
 * The credentials the check's configuration sends to the API server (ProbeKind.secrets): each
 * kubeconfig user's token, tokenFile's contents, password (and its Basic user:password),
 * auth-provider tokens and secrets; in a pod, the service account's token. Read at load: a
 * token rotated later (a projected service-account token) is masked from the next reload on.
 */
export function kubeconfigSecrets(p: { kubeconfig?: string }, env: NodeJS.ProcessEnv): string[] {
  const origin = kubeconfigOrigin(p, env);
  if (!origin) return [];
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      return '';
    }
  };
  if (origin.kind === 'in-cluster') return [read(SERVICE_ACCOUNT_TOKEN)];
  const out: string[] = [];
  for (const file of origin.files) {
    let doc: unknown;
    try {
      doc = jsyaml.load(read(file), { schema: jsyaml.JSON_SCHEMA });
    } catch {
      continue; // the probe reports a kubeconfig it cannot read
    }
    const users = (doc as { users?: unknown } | null)?.users;
    for (const u of Array.isArray(users) ? users : []) {
      const user = (u as { user?: Record<string, unknown> } | null)?.user;
      if (user === null || typeof user !== 'object') continue;
      const str = (v: unknown) => (typeof v === 'string' ? v : '');
      out.push(str(user.token), str(user.tokenFile) && read(str(user.tokenFile)));
      if (str(user.password)) out.push(str(user.password), `${str(user.username)}:${str(user.password)}`);
      const config = (user['auth-provider'] as { config?: Record<string, unknown> } | undefined)?.config ?? {};
      for (const [k, v] of Object.entries(config)) if (/token|secret/i.test(k)) out.push(str(v));
    }
  }
  return out.filter((s) => s !== '');
}
