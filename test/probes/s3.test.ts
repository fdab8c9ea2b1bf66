// s3 probe against s3rver, a real S3-compatible server, behind a proxy that verifies every
// request's SigV4 signature with the AWS SDK's signer (test/helpers/fake-apis.ts).
import { mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import s3Probe from '../../src/probes/s3.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { DAY, fakeS3, HOUR, runShipped, S3RVER_KEY } from '../helpers/fake-apis.js';
import { closedPort, listenHanging } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(s3Probe.params);
type Params = Static<typeof s3Probe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const KEY_ID = 'AKIABACKUPREADER001';
const SECRET = 'bAcKuPrEaDeRsEcReT/0000000000000000000000';
const dir = mkdtempSync(join(tmpdir(), 's3-probe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const s3 = await fakeS3(['backups', 'offsite-backups', 'empty'], { [KEY_ID]: SECRET }, dir);
t.teardown(() => s3.close());

const seeder = new S3Client({ region: 'us-east-1', endpoint: s3.direct, forcePathStyle: true, credentials: S3RVER_KEY });
t.teardown(() => seeder.destroy());

const backdate: [string, Date][] = [];
/** Puts an object, to be backdated by settle() (s3rver's LastModified is the stored file's mtime). */
async function put(bucket: string, key: string, ageMs: number, size = 64): Promise<void> {
  await seeder.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(size, 'x') }));
  backdate.push([join(dir, bucket, `${key}._S3rver_object`), new Date(Date.now() - ageMs)]);
}
/** s3rver may still be closing a file when it answers: backdate once every write has settled. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (const [file, at] of backdate) utimesSync(file, at, at);
  for (const [file, at] of backdate) if (Math.abs(statSync(file).mtimeMs - at.getTime()) > 1000) throw new Error(`${file}: mtime did not stick`);
}

const dayKey = (prefix: string, daysAgo: number) => `${prefix}/${new Date(Date.now() - daysAgo * DAY).toISOString().slice(0, 10)}-${daysAgo}.sql.gz`;

// A healthy series: 35 daily backups, the newest 3 h old.
for (let d = 0; d < 35; d++) await put('backups', dayKey('postgres/daily', d), d * DAY + 3 * HOUR);
// A series with a missing day, one that is stale, and one that is too short.
for (let d = 0; d < 32; d++) if (d !== 10) await put('backups', dayKey('gappy', d), d * DAY + HOUR);
for (let d = 0; d < 31; d++) await put('backups', dayKey('stale', d), d * DAY + 30 * HOUR);
for (let d = 0; d < 12; d++) await put('backups', dayKey('young', d), d * DAY + HOUR);
// Daily for 31 days plus this morning's pre-deploy dump, 20 minutes ago.
for (let d = 0; d < 31; d++) await put('backups', dayKey('fresh', d), d * DAY + 6 * HOUR);
await put('backups', 'fresh/predeploy.sql.gz', 20 * 60_000);
// Noise: a folder marker, an empty (failed) dump, another kind of file.
await put('backups', 'mixed/', 0, 0);
await put('backups', 'mixed/2026-11-27.sql.gz', 2 * HOUR, 0);
await put('backups', 'mixed/2026-11-26.sql.gz', 26 * HOUR);
await put('backups', 'mixed/manifest.json', HOUR);
await put('offsite-backups', 'postgres/daily/latest.sql.gz', 5 * HOUR);
await settle();

const ENV = { AWS_ACCESS_KEY_ID: KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, WRONG_SECRET: 'not-the-secret-0000000000000000000000000', OTHER_ID: 'AKIAUNKNOWN000000000' };
const base = { endpoint: s3.url, forcePathStyle: true };
const run = (p: Record<string, unknown>, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) =>
  s3Probe.run(params({ ...base, ...p }), makeCtx({ env: opts.env ?? ENV, timeoutMs: opts.timeoutMs ?? 8000 }));

const near = (actual: unknown, expected: number, tolerance: number) => typeof actual === 'number' && Math.abs(actual - expected) <= tolerance;

t.test('a healthy daily series: newest age, retention depth, largest gap', async (t) => {
  const before = s3.seen.length;
  const obs = await run({ bucket: 'backups', prefix: 'postgres/daily/' });
  t.equal(obs.error, undefined);
  t.equal(obs.fields.objects, 35);
  t.ok(near(obs.fields.newest_age_seconds, 3 * 3600, 60), 'newest 3 h old');
  t.equal(obs.value, obs.fields.newest_age_seconds);
  t.equal(obs.fields.newest_key, dayKey('postgres/daily', 0));
  t.equal(obs.fields.newest_size_bytes, 64);
  t.ok(near(obs.fields.retention_days, 34.125, 0.01), 'reaches back 34 days');
  t.ok(near(obs.fields.max_gap_seconds, 86400, 60), 'largest gap one day');
  t.equal(obs.fields.truncated, false);
  t.match(obs.message, /^s3:\/\/backups\/postgres\/daily\/: 35 objects, newest postgres\/daily\/\S+ 3\.0 h old, oldest 34\.1 days old, largest gap 24\.0 h$/);
  const sent = s3.seen.slice(before);
  t.ok(sent.length >= 1 && sent.every((s) => /^AWS4-HMAC-SHA256 Credential=AKIABACKUPREADER001\/\d{8}\/us-east-1\/s3\/aws4_request/.test(s.headers.authorization ?? '')), 'every request SigV4-signed, verified by the proxy');
});

t.test('pages are followed (ListObjectsV2 continuation)', async (t) => {
  const before = s3.seen.length;
  const obs = await run({ bucket: 'backups', prefix: 'postgres/daily/', pageSize: 10 });
  t.equal(obs.fields.objects, 35);
  t.equal(s3.seen.length - before, 4, '4 pages of 10');
  const capped = await run({ bucket: 'backups', prefix: 'postgres/daily/', pageSize: 10, maxObjects: 20 });
  t.equal(capped.fields.objects, 20);
  t.equal(capped.fields.truncated, true);
  t.match(capped.message, /\(listing stopped at maxObjects 20\)$/);
});

t.test('the failing shapes: a gap, a stale newest, a short history', async (t) => {
  const gappy = await run({ bucket: 'backups', prefix: 'gappy/' });
  t.ok(near(gappy.fields.max_gap_seconds, 2 * 86400, 60), 'a missing day is a 48 h gap');
  const stale = await run({ bucket: 'backups', prefix: 'stale/' });
  t.ok(near(stale.fields.newest_age_seconds, 30 * 3600, 60), 'newest 30 h old');
  t.ok(near(stale.fields.max_gap_seconds, 30 * 3600, 60), 'the gap up to now counts');
  const young = await run({ bucket: 'backups', prefix: 'young/' });
  t.ok(near(young.fields.retention_days, 11.04, 0.01), 'reaches back 11 days only');
  const windowed = await run({ bucket: 'backups', prefix: 'gappy/', windowDays: 7 });
  t.ok(near(windowed.fields.max_gap_seconds, 86400, 60), 'a gap older than the window does not count');
});

t.test('folder markers, empty objects and other keys are not backups', async (t) => {
  const all = await run({ bucket: 'backups', prefix: 'mixed/' });
  t.equal(all.fields.objects, 2, 'the folder marker and the 0-byte dump are skipped');
  t.equal(all.fields.newest_key, 'mixed/manifest.json');
  const dumps = await run({ bucket: 'backups', prefix: 'mixed/', pattern: '\\.sql\\.gz$' });
  t.equal(dumps.fields.objects, 1);
  t.equal(dumps.fields.newest_key, 'mixed/2026-11-26.sql.gz', 'the failed 0-byte dump does not make it fresh');
  t.ok(near(dumps.fields.newest_age_seconds, 26 * 3600, 60));
});

t.test('nothing under the prefix is no-data', async (t) => {
  t.same(await run({ bucket: 'empty', prefix: 'postgres/' }), { fields: { objects: 0, truncated: false }, noData: true, message: 'no objects under s3://empty/postgres/' });
  t.match((await run({ bucket: 'backups', prefix: 'mixed/', pattern: '\\.dump$' })).message, /^no objects under s3:\/\/backups\/mixed\/ matching \\\.dump\$$/);
});

t.test('off-site: region against the primary, expected owner sent to S3', async (t) => {
  const same = await run({ bucket: 'offsite-backups', prefix: 'postgres/', primaryRegion: 'us-east-1' });
  t.match(same.fields, { region: 'us-east-1', region_differs: false });
  t.match(same.message, /; region us-east-1, the same as the primary$/);
  const before = s3.seen.length;
  const other = await run({ bucket: 'offsite-backups', prefix: 'postgres/', primaryRegion: 'eu-central-1', expectedOwner: '210987654321' });
  t.match(other.fields, { region: 'us-east-1', region_differs: true, objects: 1 });
  t.match(other.message, /; region us-east-1 \(primary eu-central-1\)$/);
  const sent = s3.seen.slice(before);
  t.equal(sent.find((s) => s.url.includes('list-type=2'))!.headers['x-amz-expected-bucket-owner'], '210987654321');
  t.ok(sent.some((s) => /[?&]location(=|&|$)/.test(s.url)), 'GetBucketLocation asked');
});

t.test('refusals and missing buckets are errors (not measured)', async (t) => {
  const wrongSecret = await run({ bucket: 'backups', secretAccessKeyEnv: 'WRONG_SECRET' });
  t.equal(wrongSecret.error?.reason, 'auth');
  t.match(wrongSecret.error?.message, /^ListObjectsV2 s3:\/\/backups\/: SignatureDoesNotMatch \(403\)/);
  const unknownKey = await run({ bucket: 'backups', accessKeyIdEnv: 'OTHER_ID' });
  t.match(unknownKey.error, { reason: 'auth', message: /InvalidAccessKeyId \(403\): The AWS Access Key Id you provided does not exist in our records\.$/ });
  const noBucket = await run({ bucket: 'no-such-bucket' });
  t.match(noBucket.error, { reason: 'http-status', message: /^ListObjectsV2 s3:\/\/no-such-bucket\/: NoSuchBucket \(404\)/ });
  t.same((await run({ bucket: 'backups' }, { env: { AWS_ACCESS_KEY_ID: KEY_ID } })).error, {
    reason: 'unconfigured',
    message: 'environment variable AWS_SECRET_ACCESS_KEY (secretAccessKeyEnv) is not set',
  });
  t.notOk(JSON.stringify([wrongSecret, unknownKey, noBucket]).includes(SECRET), 'the secret appears nowhere');
});

t.test('unreachable and hanging endpoints', async (t) => {
  const refused = await run({ bucket: 'backups', endpoint: `http://127.0.0.1:${await closedPort()}` });
  t.equal(refused.error?.reason, 'refused');
  const hang = await listenHanging();
  t.teardown(() => hang.close());
  const started = Date.now();
  const err = await run({ bucket: 'backups', endpoint: `http://127.0.0.1:${hang.port}` }, { timeoutMs: 400 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout');
  t.match((err as Error).message, /^ListObjectsV2 s3:\/\/backups\/: no answer before the check timeout \(400 ms\)$/);
  t.ok(Date.now() - started < 3000);
});

t.test('the shipped backup rows pass on a healthy setup and fail on a broken one', async (t) => {
  const ROWS = ['backup-latest-age', 'backup-retention', 'backup-offsite-region', 'predeploy-backup-in-s3'];
  const common = {
    ...ENV,
    BACKUP_BUCKET: 'backups',
    BACKUP_S3_ENDPOINT: s3.url,
    BACKUP_S3_PATH_STYLE: 'true',
    BACKUP_OFFSITE_BUCKET: 'offsite-backups',
    BACKUP_OFFSITE_PREFIX: 'postgres/daily/',
    BACKUP_OFFSITE_REGION: 'us-east-1',
    BACKUP_OFFSITE_S3_ENDPOINT: s3.url,
    BACKUP_OFFSITE_S3_PATH_STYLE: 'true',
    BACKUP_OFFSITE_AWS_ACCESS_KEY_ID: KEY_ID,
    BACKUP_OFFSITE_AWS_SECRET_ACCESS_KEY: SECRET,
  };
  for (const broken of [false, true]) {
    // Broken: the newest dump is 30 h old (stale, and a 30 h gap), and the off-site copy sits in the primary's region.
    const env = { ...common, BACKUP_PREFIX: broken ? 'stale/' : 'fresh/', BACKUP_REGION: broken ? 'us-east-1' : 'eu-central-1' };
    const views = await runShipped(env, ROWS);
    t.same(views.map((v) => v.def.id).sort(), [...ROWS].sort());
    for (const v of views) t.equal(v.state, broken ? 'fail' : 'pass', `${broken ? 'broken' : 'healthy'} ${v.def.id}: ${v.message}`);
  }
});

t.test('validate', async (t) => {
  const v = (p: Record<string, unknown>) => s3Probe.validate?.(params(p));
  t.same(v({ bucket: 'offgridflow-backups', prefix: 'postgres/' }), []);
  t.same(v({ bucket: 'b-1', pattern: '(' }), ['pattern is not a valid regular expression: error parsing regexp: missing closing ): `(`']);
  t.same(v({ bucket: 'b-1', endpoint: 'not a url' }), ['endpoint is not a valid URL']);
  t.same(v({ bucket: 'b-1', endpoint: '' }), [], 'empty endpoint: AWS');
  t.throws(() => params({ bucket: 'Bad_Bucket' }), /pattern/);
  t.throws(() => params({ bucket: 'b-1', expectedOwner: '12' }), /pattern/);
});

t.test('HA: each request asks the lease question once signed: a listing stops at the page after the loss', async (t) => {
  let pages = 0;
  const ctx = (stillOwner: () => boolean) => ({ ...makeCtx({ env: ENV, timeoutMs: 8000 }), stillOwner });
  const p = params({ ...base, bucket: 'backups', prefix: 'postgres/daily/', pageSize: 10 });
  let before = s3.seen.length;
  const kept = await s3Probe.run(p, ctx(() => true));
  t.equal(kept.fields.objects, 35, 'with the lease kept the whole listing runs');
  t.equal(s3.seen.length - before, 4, 'in 4 pages');

  // The lease is lost once the first page was asked for: the second is never sent.
  before = s3.seen.length;
  const lost = await s3Probe.run(p, ctx(() => pages++ < 1));
  t.equal(s3.seen.length - before, 1, 'one page was asked for, then nothing');
  t.match(lost.error?.message, /lease was lost/, 'and the run says why');
});
