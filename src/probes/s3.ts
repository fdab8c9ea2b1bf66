// s3: backups in an S3 bucket (or any S3-compatible store): how old the newest object under a
// prefix is, how far back the objects reach and the largest gap between consecutive ones
// (daily backups kept 30 days with no gap over 26 h), the bucket's region against the
// primary's (off-site), and, with expectedOwner, that S3 itself confirms which account owns
// the bucket. Requests go through @aws-sdk/client-s3, which signs them (SigV4).
import type { S3Client, S3ClientConfig, _Object } from '@aws-sdk/client-s3';
import { Type, type Static } from '@sinclair/typebox';
import { reasonFromError } from '../reasons.js';
import { SafeRegex } from '../regex.js';
import { commonjs, lazy } from './lazy.js';
import { assertLease, defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';

/** The AWS SDK's S3 client, loaded by the first run that needs it (this kind's and report's). */
export const s3Sdk = lazy(() => import('@aws-sdk/client-s3').then(commonjs));

const ENV_NAME = { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', 'x-hint': 'an environment variable name' };

const params = Type.Object(
  {
    bucket: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', 'x-hint': 'an S3 bucket name', description: 'Bucket name.' }),
    prefix: Type.String({ default: '', description: 'Only objects under this key prefix (e.g. postgres/daily/).' }),
    pattern: Type.Optional(Type.String({ minLength: 1, description: 'Only keys matching this regular expression (e.g. \\.sql\\.gz$).' })),
    minSizeBytes: Type.Integer({ minimum: 0, default: 1, description: 'Ignore smaller objects (a 0-byte backup is a failed one).' }),
    windowDays: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'Retention window in days over which gaps are measured.' }),
    region: Type.String({ default: 'us-east-1', description: 'Region the client signs for (the bucket\'s region).' }),
    endpoint: Type.Optional(Type.String({ description: 'S3-compatible endpoint (MinIO, R2, a test server) instead of AWS; empty: AWS.' })),
    forcePathStyle: Type.Boolean({ default: false, description: 'Path-style URLs (endpoint/bucket/key), as most S3-compatible stores need.' }),
    credentials: Type.Union([Type.Literal('env'), Type.Literal('default')], {
      default: 'env',
      description: 'env: keys from the variables below; default: the AWS SDK chain (IRSA web identity, instance role, ~/.aws).',
    }),
    accessKeyIdEnv: Type.String({ ...ENV_NAME, default: 'AWS_ACCESS_KEY_ID', description: 'Variable holding the access key id.' }),
    secretAccessKeyEnv: Type.String({ ...ENV_NAME, default: 'AWS_SECRET_ACCESS_KEY', description: 'Variable holding the secret access key.' }),
    sessionTokenEnv: Type.String({ ...ENV_NAME, default: 'AWS_SESSION_TOKEN', description: 'Variable holding a session token (used when set).' }),
    primaryRegion: Type.Optional(Type.String({ minLength: 1, description: "The primary's region: region_differs tells whether the bucket is elsewhere." })),
    expectedOwner: Type.Optional(Type.String({ pattern: '^[0-9]{12}$', 'x-hint': 'a 12-digit AWS account id', description: 'Account that must own the bucket (S3 refuses the listing otherwise).' })),
    pageSize: Type.Integer({ minimum: 1, maximum: 1000, default: 1000, description: 'Keys per ListObjectsV2 page.' }),
    maxObjects: Type.Integer({ minimum: 1, default: 100_000, description: 'Most keys listed; beyond, the oldest part of the listing is not seen.' }),
  },
  { additionalProperties: false },
);
export type S3Params = Static<typeof params>;

const DAY_MS = 86_400_000;

type S3Credentials = Pick<S3Params, 'credentials' | 'accessKeyIdEnv' | 'secretAccessKeyEnv' | 'sessionTokenEnv'>;

/**
 * The credential values a client for these params sends (ProbeKind.secrets): the named
 * variables', and with the SDK's chain (`default`) the variables it reads itself.
 */
export function awsSecrets(p: S3Credentials, env: NodeJS.ProcessEnv): string[] {
  const names = p.credentials === 'env' ? [p.accessKeyIdEnv, p.secretAccessKeyEnv, p.sessionTokenEnv] : ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'];
  return names.map((n) => env[n] ?? '');
}

/**
 * The client for a check's params, with its credentials from the environment. With a lease
 * question (HA), every request asks it once signed, right before it is sent (lease.ts): a
 * listing of many pages stops at the page after the lease was lost.
 */
export async function s3Client(
  p: Pick<S3Params, 'region' | 'endpoint' | 'forcePathStyle' | 'credentials' | 'accessKeyIdEnv' | 'secretAccessKeyEnv' | 'sessionTokenEnv'>,
  env: NodeJS.ProcessEnv,
  stillOwner?: () => boolean,
): Promise<S3Client> {
  const config: S3ClientConfig = {
    region: p.region,
    forcePathStyle: p.forcePathStyle,
    // One attempt per run: the next run is the retry, and a refusal is not repeated.
    maxAttempts: 1,
    ...(p.endpoint && { endpoint: p.endpoint }),
  };
  if (p.credentials === 'env') {
    const accessKeyId = env[p.accessKeyIdEnv];
    const secretAccessKey = env[p.secretAccessKeyEnv];
    if (!accessKeyId) throw new ProbeError('unconfigured', `environment variable ${p.accessKeyIdEnv} (accessKeyIdEnv) is not set`);
    if (!secretAccessKey) throw new ProbeError('unconfigured', `environment variable ${p.secretAccessKeyEnv} (secretAccessKeyEnv) is not set`);
    const sessionToken = env[p.sessionTokenEnv] || undefined;
    config.credentials = { accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) };
  }
  const { S3Client } = await s3Sdk();
  const client = new S3Client(config);
  if (stillOwner) {
    client.middlewareStack.add(
      (next) => (args) => {
        assertLease(stillOwner);
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'readinessLeaseGate' },
    );
  }
  return client;
}

/** An S3 SDK error as a ProbeError: refusals are auth, missing buckets http-status, the rest by transport. */
export function s3Error(err: unknown, what: string, ctx: ProbeContext): ProbeError {
  if (err instanceof ProbeError) return err;
  if (ctx.signal.aborted) return new ProbeError('timeout', `${what}: no answer before the check timeout (${ctx.timeoutMs} ms)`);
  const e = err as Error & { $metadata?: { httpStatusCode?: number }; Code?: string; code?: string };
  const status = e.$metadata?.httpStatusCode;
  const code = e.name && e.name !== 'Error' ? e.name : (e.Code ?? 'error');
  if (status === 403 || status === 401) return new ProbeError('auth', `${what}: ${code} (${status}): ${e.message}`);
  if (status === 404) return new ProbeError('http-status', `${what}: ${code} (404): ${e.message}`);
  if (status === 301 || code === 'PermanentRedirect') return new ProbeError('http-status', `${what}: the bucket is in another region (${code}): set region to the bucket's region`);
  if (status === 503 && /SlowDown/.test(code)) return new ProbeError('rate-limited', `${what}: ${code}`);
  if (status !== undefined && status >= 500) return new ProbeError('http-status', `${what} answered ${status} (${code})`);
  if (status !== undefined) return new ProbeError('protocol', `${what} answered ${status}: ${code}: ${e.message.slice(0, 200)}`);
  const reason = reasonFromError(e);
  return new ProbeError(reason === 'error' ? 'protocol' : reason, `${what}: ${e.message.slice(0, 200)}${e.code ? ` (${e.code})` : ''}`);
}

function ago(seconds: number): string {
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

export default defineProbe({
  kind: 's3',
  description: 'Backups in an S3 bucket: newest object age, retention depth and largest gap, bucket region and owner.',
  params,
  fields: {
    objects: { type: 'number', description: 'Objects counted (under the prefix, matching pattern, at least minSizeBytes).' },
    newest_age_seconds: { type: 'number', unit: 's', description: 'Age of the newest object (the value): newest_age_seconds <= 24h.' },
    newest_key: { type: 'string', description: 'Key of the newest object.' },
    newest_size_bytes: { type: 'number', description: 'Size of the newest object.' },
    retention_days: { type: 'number', unit: 'days', description: 'Age of the oldest object: how far back the backups reach.' },
    max_gap_seconds: { type: 'number', unit: 's', description: 'Largest gap between consecutive objects over the window, up to now: max_gap_seconds <= 26h.' },
    region: { type: 'string', description: 'The bucket region (with primaryRegion).' },
    region_differs: { type: 'boolean', description: 'The bucket region is not primaryRegion.' },
    truncated: { type: 'boolean', description: 'More than maxObjects keys: the listing stopped early.' },
  },

  requiredEnv: (p) => (p.credentials === 'env' ? [p.accessKeyIdEnv, p.secretAccessKeyEnv] : []),
  secrets: awsSecrets,
  validate(p) {
    const problems: string[] = [];
    if (p.pattern !== undefined) {
      try {
        SafeRegex.compile(p.pattern);
      } catch (err) {
        problems.push(`pattern is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    if (p.endpoint) {
      try {
        new URL(p.endpoint);
      } catch {
        problems.push('endpoint is not a valid URL');
      }
    }
    return problems;
  },

  load: s3Sdk,

  async run(p, ctx): Promise<Observation> {
    const where = `s3://${p.bucket}/${p.prefix}`;
    let client: S3Client;
    try {
      client = await s3Client(p, ctx.env, ctx.stillOwner);
    } catch (err) {
      const e = err as ProbeError;
      return { fields: {}, error: { reason: e.reason, message: e.message } };
    }
    const { GetBucketLocationCommand, ListObjectsV2Command } = await s3Sdk();
    try {
      // RE2, and a page of long keys is matched off the event loop: the keys are the bucket's.
      const keep = p.pattern ? SafeRegex.compile(p.pattern) : undefined;
      const found: { key: string; at: number; size: number }[] = [];
      let token: string | undefined;
      let listed = 0;
      let truncated = false;
      do {
        const page = await client
          .send(
            new ListObjectsV2Command({
              Bucket: p.bucket,
              Prefix: p.prefix || undefined,
              MaxKeys: Math.min(p.pageSize, p.maxObjects - listed),
              ContinuationToken: token,
              ...(p.expectedOwner && { ExpectedBucketOwner: p.expectedOwner }),
            }),
            { abortSignal: ctx.signal },
          )
          .catch((err: unknown) => {
            throw s3Error(err, `ListObjectsV2 ${where}`, ctx);
          });
        const candidates: { key: string; at: number; size: number }[] = [];
        for (const o of page.Contents ?? ([] as _Object[])) {
          listed++;
          if (!o.Key || !o.LastModified || o.Key.endsWith('/')) continue;
          if ((o.Size ?? 0) < p.minSizeBytes) continue;
          candidates.push({ key: o.Key, at: o.LastModified.getTime(), size: o.Size ?? 0 });
        }
        const kept = keep ? await keep.testMany(candidates.map((c) => c.key)) : undefined;
        candidates.forEach((c, i) => (kept === undefined || kept[i]) && found.push(c));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
        if (token && listed >= p.maxObjects) {
          truncated = true;
          token = undefined;
        }
      } while (token);

      const fields: Record<string, unknown> = { objects: found.length, truncated };
      let regionNote = '';
      if (p.primaryRegion) {
        const loc = await client.send(new GetBucketLocationCommand({ Bucket: p.bucket }), { abortSignal: ctx.signal }).catch((err: unknown) => {
          throw s3Error(err, `GetBucketLocation ${p.bucket}`, ctx);
        });
        // No constraint is us-east-1; "EU" is the legacy name of eu-west-1.
        const c = loc.LocationConstraint as string | undefined;
        const region = !c ? 'us-east-1' : c === 'EU' ? 'eu-west-1' : c;
        fields.region = region;
        fields.region_differs = region !== p.primaryRegion;
        regionNote = `; region ${region}${region === p.primaryRegion ? ', the same as the primary' : ` (primary ${p.primaryRegion})`}`;
      }
      const more = truncated ? ` (listing stopped at maxObjects ${p.maxObjects})` : '';
      if (found.length === 0) {
        return { fields, noData: true, message: `no objects under ${where}${p.pattern ? ` matching ${p.pattern}` : ''}${regionNote}${more}` };
      }

      const now = Date.now();
      found.sort((a, b) => a.at - b.at);
      const newest = found[found.length - 1]!;
      const oldest = found[0]!;
      // Gaps over the window, from the last object before it (the window's left edge is
      // covered only if something existed then) to now.
      const windowStart = now - p.windowDays * DAY_MS;
      let first = found.findIndex((o) => o.at >= windowStart);
      if (first < 0) first = found.length - 1;
      else if (first > 0) first--;
      let maxGap = 0;
      for (let i = first + 1; i < found.length; i++) maxGap = Math.max(maxGap, found[i]!.at - found[i - 1]!.at);
      maxGap = Math.max(maxGap, now - newest.at);

      const newestAge = Math.max(0, (now - newest.at) / 1000);
      Object.assign(fields, {
        newest_age_seconds: newestAge,
        newest_key: newest.key,
        newest_size_bytes: newest.size,
        retention_days: Math.max(0, (now - oldest.at) / DAY_MS),
        max_gap_seconds: maxGap / 1000,
      });
      return {
        value: newestAge,
        fields,
        message: `${where}: ${found.length} objects, newest ${newest.key} ${ago(newestAge)} old, oldest ${ago((now - oldest.at) / 1000)} old, largest gap ${ago(maxGap / 1000)}${regionNote}${more}`,
      };
    } catch (err) {
      const e = s3Error(err, where, ctx);
      if (e.reason === 'timeout') throw e;
      return { fields: {}, error: { reason: e.reason, message: e.message } };
    } finally {
      client.destroy();
    }
  },
});
