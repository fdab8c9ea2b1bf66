// Connection to one Kubernetes API server: which kubeconfig (explicit file, $KUBECONFIG, the
// pod's service account, ~/.kube/config), plain GETs for lists and metrics.k8s.io, and how
// API and network errors become a reason and a one-line message.
import http from 'node:http';
import https from 'node:https';
import { delimiter, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { reasonFromError, type Reason } from '../../reasons.js';
import { assertLease, ProbeError } from '../types.js';
import { kubeconfigOrigin, NO_KUBECONFIG } from './source.js';


/** Where a check's cluster comes from: its identity is the key informers are shared under. */
export interface ClusterSource {
  /** Stable identity: file path(s) + context, or `in-cluster`. */
  key: string;
  /** How it was found, for messages. */
  label: string;
  load(): KubeConfig;
}

/**
 * The kubeconfig a check uses, in this order: its `kubeconfig` param, $KUBECONFIG (files
 * joined with ':' are merged, as kubectl does), the pod's service account when running in a
 * cluster, ~/.kube/config. `context` picks a context other than the current one.
 */
export function clusterSource(p: { kubeconfig?: string; context?: string }, env: NodeJS.ProcessEnv): ClusterSource {
  const ctxSuffix = p.context ? `#${p.context}` : '';
  const fromFiles = (files: string[], label: string): ClusterSource => ({
    key: `files:${files.map((f) => resolve(f)).join(delimiter)}${ctxSuffix}`,
    label,
    load: () => {
      const kc = new KubeConfig();
      kc.loadFromFile(files[0]!);
      for (const f of files.slice(1)) {
        const more = new KubeConfig();
        more.loadFromFile(f);
        kc.mergeConfig(more, true);
      }
      return withContext(kc, p.context, label);
    },
  });
  const origin = kubeconfigOrigin(p, env);
  // The loader made a check without any configuration `unconfigured`; this is the same verdict at run time.
  if (!origin) throw new ProbeError('unconfigured', NO_KUBECONFIG);
  if (origin.kind === 'param') return fromFiles(origin.files, `kubeconfig ${p.kubeconfig}`);
  if (origin.kind === 'env') return fromFiles(origin.files, `KUBECONFIG ${env.KUBECONFIG}`);
  if (origin.kind === 'in-cluster') {
    return {
      key: `in-cluster${ctxSuffix}`,
      label: 'the pod service account',
      load: () => {
        const kc = new KubeConfig();
        kc.loadFromCluster();
        return kc;
      },
    };
  }
  return fromFiles(origin.files, `kubeconfig ${origin.files[0]}`);
}

function withContext(kc: KubeConfig, context: string | undefined, label: string): KubeConfig {
  if (context) {
    if (!kc.getContextObject(context)) throw new ProbeError('unconfigured', `${label} has no context "${context}"`);
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw new ProbeError('unconfigured', `${label}: the current context names no cluster`);
  return kc;
}

/** An API answer that is not 2xx: the status and the Status object's message. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Most bytes read from one response (lists of a big namespace fit; a runaway answer does not). */
const MAX_BODY = 256 * 1024 * 1024;

/**
 * GET `path` from the current cluster of `kc`, parsed as JSON. Credentials, CA and client
 * certificates come from the kubeconfig through client-node (token files, exec plugins and
 * OIDC included); every call gets fresh headers, so a rotated token is picked up.
 */
export async function getJson<T>(kc: KubeConfig, path: string, opts: { accept?: string; signal: AbortSignal; stillOwner?: () => boolean }): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ProbeError('unconfigured', 'the kubeconfig has no current cluster');
  const init = await kc.applyToFetchOptions({});
  const headers: Record<string, string> = {};
  for (const [k, v] of init.headers as unknown as Iterable<[string, string]>) headers[k] = v;
  headers.accept = opts.accept ?? 'application/json';
  headers['user-agent'] = 'readiness-exporter';
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  const agent = init.agent as http.Agent | undefined;
  const mod = url.protocol === 'http:' ? http : https;
  // HA: the credentials may have taken a while (an exec plugin, a token refresh), or the
  // process was stopped meanwhile: ask the lease question right before the request (lease.ts).
  assertLease(opts.stillOwner);
  try {
    return await new Promise<T>((resolvePromise, reject) => {
      const req = mod.get(url, { headers, agent, signal: opts.signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            req.destroy(new ApiError(res.statusCode ?? 0, `GET ${path}: answer larger than ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            if (status >= 200 && status < 300) {
              reject(new ProbeError('protocol', `GET ${path}: the answer is not JSON (${res.headers['content-type'] ?? 'no content-type'})`));
              return;
            }
          }
          if (status >= 200 && status < 300) resolvePromise(body as T);
          else reject(new ApiError(status, statusMessage(status, body, text)));
        });
      });
      req.on('error', reject);
    });
  } finally {
    agent?.destroy();
  }
}

/** `403 Forbidden: pods is forbidden: User "..." cannot list ...` from a Status body. */
function statusMessage(status: number, body: unknown, text: string): string {
  const msg = body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : text.slice(0, 200);
  const name = http.STATUS_CODES[status] ?? 'error';
  return msg ? `${status} ${name}: ${msg}` : `${status} ${name}`;
}

export function reasonForStatus(status: number): Reason {
  if (status === 401 || status === 403) return 'auth';
  if (status === 429) return 'rate-limited';
  if (status === 404 || status === 406 || status === 415) return 'protocol';
  return 'http-status';
}

/** Reason and message for anything a list, watch or GET threw. */
export function classifyError(err: unknown): { reason: Reason; message: string } {
  if (err instanceof ProbeError) return { reason: err.reason, message: err.message };
  if (err instanceof ApiError) return { reason: reasonForStatus(err.statusCode), message: err.message };
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown; type?: unknown } | undefined;
  // client-node's Watch throws a plain Error with statusCode for a non-200 answer.
  if (typeof e?.statusCode === 'number') {
    const name = http.STATUS_CODES[e.statusCode] ?? 'error';
    return { reason: reasonForStatus(e.statusCode), message: `${e.statusCode} ${name}` };
  }
  const text = typeof e?.message === 'string' ? e.message.replace(/\s+/g, ' ').trim() : String(err);
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || /premature close/i.test(text)) return { reason: 'refused', message: 'the connection closed in the middle of an answer' };
  if (err instanceof SyntaxError || e?.type === 'invalid-json') return { reason: 'protocol', message: `the answer is not JSON: ${text}` };
  let reason = reasonFromError(err);
  if (reason === 'error' && /socket hang up/i.test(text)) reason = 'refused';
  return { reason, message: code && !text.includes(code) ? `${text} (${code})` : text };
}
