// report probe against real report files (test/fixtures/reports) read from disk and served
// over HTTP by a local listener.
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import reportProbe from '../../src/probes/report.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { fakeS3, runShipped, S3RVER_KEY } from '../helpers/fake-apis.js';
import { closedPort, listenHttp } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(reportProbe.params);
type Params = Static<typeof reportProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const FIXTURES = 'test/fixtures/reports';
const TOKEN = 'rep0rt-t0ken-secret';
const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'report-probe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A fixture copied to the temp dir with its timestamps filled in and its mtime set. */
function fixture(name: string, opts: { ageMs?: number; fileAgeMs?: number } = {}): string {
  const stamp = new Date(Date.now() - (opts.ageMs ?? 0)).toISOString();
  const text = readFileSync(join(FIXTURES, name), 'utf8').replace('FETCH_TIME', stamp).replace('CREATED_AT', stamp);
  const file = join(dir, `${opts.ageMs ?? 0}-${opts.fileAgeMs ?? 0}-${name}`);
  writeFileSync(file, text);
  const mtime = new Date(Date.now() - (opts.fileAgeMs ?? 0));
  utimesSync(file, mtime, mtime);
  return file;
}

const run = (p: Record<string, unknown>, c = makeCtx({ env: { REPORT_TOKEN: TOKEN } })) => reportProbe.run(params(p), c);

interface Case {
  name: string;
  file: string;
  with: Record<string, unknown>;
  value?: number;
  fields: Record<string, unknown>;
  message: RegExp;
}

const cases: Case[] = [
  {
    name: 'go tool cover -func output: the total line',
    file: 'go-cover-func.txt',
    with: { format: 'go-cover' },
    value: 72.4,
    fields: { coverage_percent: 72.4 },
    message: /^go-cover report \S+go-cover-func\.txt \(\d+ s old\): total coverage 72\.4%$/,
  },
  {
    name: 'Go coverage profile: statements covered, a block listed twice counted once',
    file: 'coverage.out',
    with: { format: 'go-cover' },
    value: 71.4,
    fields: { coverage_percent: 71.4 },
    message: /total coverage 71\.4% \(10\/14 statements\)$/,
  },
  {
    name: 'Istanbul coverage-summary.json: lines by default',
    file: 'coverage-summary.json',
    with: { format: 'istanbul' },
    value: 65.81,
    fields: { coverage_percent: 65.81, lines_percent: 65.81, statements_percent: 65.19, functions_percent: 54.97, branches_percent: 57.37 },
    message: /: lines coverage 65\.81%$/,
  },
  {
    name: 'Istanbul: another metric',
    file: 'coverage-summary.json',
    with: { format: 'istanbul', metric: 'branches' },
    value: 57.37,
    fields: { coverage_percent: 57.37 },
    message: /: branches coverage 57\.37%$/,
  },
  {
    name: 'k6 --summary-export',
    file: 'k6-summary-export.json',
    with: { format: 'k6' },
    value: 412.33,
    fields: { p95_ms: 412.33, p99_ms: 1210.8, avg_ms: 182.44, requests: 72000, requests_per_second: 1199.75, error_rate_percent: 0.1528, checks_percent: 99.8472 },
    message: /: p95 412\.33 ms, p99 1210\.8 ms, errors 0\.15%, 1199\.75 req\/s$/,
  },
  {
    name: 'k6 handleSummary JSON without p(99): the field is absent and the message says why',
    file: 'k6-handle-summary.json',
    with: { format: 'k6' },
    value: 930.5,
    fields: { p95_ms: 930.5, p99_ms: undefined, error_rate_percent: 3.2, requests_per_second: 999.76 },
    message: /p99 \?, errors 3\.2%, 999\.76 req\/s \(not in the report: p99_ms; run k6 with --summary-trend-stats including p\(99\)\)$/,
  },
  {
    name: 'Lighthouse: category scores x 100',
    file: 'lighthouse.json',
    with: { format: 'lighthouse' },
    value: 93,
    fields: { performance: 93, accessibility: 88, best_practices: 100, seo: 91, url: 'https://app.offgridflow.com/dashboard' },
    message: /: performance 93 for https:\/\/app\.offgridflow\.com\/dashboard$/,
  },
  {
    name: 'Trivy: vulnerabilities, failed misconfigurations and secrets by severity',
    file: 'trivy.json',
    with: { format: 'trivy' },
    value: 4,
    fields: { critical: 2, high: 2, medium: 1, low: 1, other: 1, total: 7, critical_high: 4, vulnerabilities: 5, misconfigurations: 1, secrets: 1, artifact: 'ghcr.io/offgridflow/api:1.4.0' },
    message: /: 7 findings: 2 critical, 2 high, 1 medium, 1 low$/,
  },
  {
    name: 'Trivy: a clean image',
    file: 'trivy-clean.json',
    with: { format: 'trivy' },
    value: 0,
    fields: { critical: 0, high: 0, total: 0, critical_high: 0 },
    message: /: 0 findings: 0 critical, 0 high, 0 medium, 0 low$/,
  },
  {
    name: 'npm audit --json (npm 7+)',
    file: 'npm-audit-v2.json',
    with: { format: 'npm-audit' },
    value: 1,
    fields: { critical: 0, high: 1, medium: 1, low: 0, other: 0, total: 2, critical_high: 1 },
    message: /: 2 vulnerable packages: 0 critical, 1 high, 1 medium, 0 low$/,
  },
  {
    name: 'npm audit --json (npm 6, pnpm)',
    file: 'npm-audit-v6.json',
    with: { format: 'npm-audit' },
    value: 1,
    fields: { critical: 1, high: 0, low: 1, other: 2, total: 4, critical_high: 1 },
    message: /: 4 vulnerable packages: 1 critical, 0 high, 0 medium, 1 low$/,
  },
  {
    name: 'any JSON: json.* fields',
    file: 'coverage-summary.json',
    with: { format: 'json' },
    fields: { json: JSON.parse(readFileSync(join(FIXTURES, 'coverage-summary.json'), 'utf8')) },
    message: /: JSON report$/,
  },
  {
    name: 'text with a pattern: the capture, as a number when it is one',
    file: 'go-cover-func.txt',
    with: { format: 'text', pattern: '^\\S+calc\\.go:\\d+:\\s+Scope1\\s+([\\d.]+)%' },
    value: 0,
    fields: { match: '0.0', match_number: 0 },
    message: /: matched "0\.0"$/,
  },
  {
    name: 'text with a pattern that does not match: no match field',
    file: 'go-cover-func.txt',
    with: { format: 'text', pattern: 'branch coverage: (\\d+)' },
    fields: { match: undefined, match_number: undefined },
    message: /: no match for branch coverage/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const obs = await run({ source: fixture(c.file), ...c.with });
    t.equal(obs.error, undefined, 'measured');
    t.equal(obs.failure, undefined, 'no failure of its own');
    t.equal(obs.value, c.value, 'value');
    for (const [k, v] of Object.entries(c.fields)) t.same(obs.fields[k], v, `fields[${k}]`);
    t.ok((obs.fields.age_seconds as number) < 60, 'fresh');
    t.match(obs.message, c.message, 'message');
  });
}

t.test('age: the report timestamp wins over the file time; else the file time', async (t) => {
  const lh = await run({ source: fixture('lighthouse.json', { ageMs: 9 * DAY, fileAgeMs: 0 }), format: 'lighthouse' });
  t.ok(Math.abs((lh.fields.age_seconds as number) - 9 * 86400) < 60, 'Lighthouse fetchTime');
  t.match(lh.message, /\(9\.0 days old\)/);
  const trivy = await run({ source: fixture('trivy.json', { ageMs: 3 * 3_600_000, fileAgeMs: 0 }), format: 'trivy' });
  t.ok(Math.abs((trivy.fields.age_seconds as number) - 3 * 3600) < 60, 'Trivy CreatedAt');
  const cover = await run({ source: fixture('coverage-summary.json', { fileAgeMs: 40 * DAY }), format: 'istanbul' });
  t.ok(Math.abs((cover.fields.age_seconds as number) - 40 * 86400) < 60, 'file mtime');
  t.match(cover.message, /\(40\.0 days old\)/);
});

t.test('not the declared format: error protocol, never a number', async (t) => {
  const table: [string, string, RegExp][] = [
    ['garbage.html', 'go-cover', /not Go coverage: no "total: \(statements\) N%" line/],
    ['garbage.html', 'istanbul', /not a Istanbul coverage-summary report: not JSON/],
    ['garbage.html', 'k6', /not a k6 summary report: not JSON/],
    ['lighthouse.json', 'k6', /not a k6 summary: no "metrics" object/],
    ['lighthouse.json', 'istanbul', /no "total" object/],
    ['k6-summary-export.json', 'lighthouse', /not a Lighthouse report/],
    ['lighthouse-error.json', 'lighthouse', /no performance score: Lighthouse was unable to reliably load the page you requested\. \(Status code: 502\)$/],
    ['npm-audit-v2.json', 'trivy', /not a Trivy JSON report/],
    ['trivy.json', 'npm-audit', /no metadata\.vulnerabilities/],
    ['npm-audit-error.json', 'npm-audit', /npm audit reported an error: ENOLOCK This command requires an existing lockfile\.$/],
    ['garbage.html', 'json', /not a JSON report: not JSON/],
  ];
  for (const [file, format, message] of table) {
    const obs = await run({ source: fixture(file), format });
    t.equal(obs.error?.reason, 'protocol', `${file} as ${format}: reason`);
    t.match(obs.error?.message, message, `${file} as ${format}: message`);
    t.equal(obs.value, undefined);
  }
  const profile = join(dir, 'bad.out');
  writeFileSync(profile, 'mode: set\nthis is not a profile line\n');
  t.match((await run({ source: profile, format: 'go-cover' })).error?.message, /not a Go coverage profile: unexpected line "this is not a profile line"/);
  const array = join(dir, 'array.json');
  writeFileSync(array, '[1,2]');
  t.match((await run({ source: array, format: 'json' })).error?.message, /JSON array, expected an object/);
});

t.test('file problems: missing, a directory, too large', async (t) => {
  t.same((await run({ source: join(dir, 'none.json'), format: 'json' })).error, { reason: 'error', message: `report file ${join(dir, 'none.json')} does not exist` });
  t.same((await run({ source: dir, format: 'json' })).error, { reason: 'error', message: `report ${dir} is not a file` });
  const big = await run({ source: fixture('lighthouse.json'), format: 'lighthouse', maxBytes: 100 });
  t.equal(big.error?.reason, 'protocol');
  t.match(big.error?.message, /is \d+ bytes, more than maxBytes 100$/);
});

t.test('URL sources', async (t) => {
  const lastModified = new Date(Date.now() - 2 * DAY).toUTCString();
  const seen: (string | undefined)[] = [];
  const server = await listenHttp((req, res) => {
    seen.push(req.headers.authorization);
    const url = new URL(req.url ?? '/', 'http://x');
    const file = url.pathname.slice(1);
    switch (file) {
      case 'private/coverage-summary.json':
        if (req.headers.authorization !== `Bearer ${TOKEN}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          return void res.end('{"message":"Bad credentials"}');
        }
        res.writeHead(200, { 'last-modified': lastModified });
        return void res.end(readFileSync(join(FIXTURES, 'coverage-summary.json')));
      case 'error':
        res.writeHead(502);
        return void res.end('bad gateway');
      case 'hang':
        return; // never answers
      case 'chunked-big':
        res.writeHead(200);
        res.write(Buffer.alloc(4096, 'x'));
        return void res.end(Buffer.alloc(4096, 'x'));
      default:
        try {
          const body = readFileSync(join(FIXTURES, file));
          res.writeHead(200, { 'last-modified': lastModified, 'content-type': 'application/json', 'content-length': body.length });
          return void res.end(body);
        } catch {
          res.writeHead(404);
          return void res.end('not found');
        }
    }
  });
  t.teardown(() => server.close());

  const k6 = await run({ source: `${server.url}/k6-summary-export.json?sig=abc`, format: 'k6' });
  t.equal(k6.value, 412.33);
  t.ok(Math.abs((k6.fields.age_seconds as number) - 2 * 86400) < 60, 'age from Last-Modified');
  t.match(k6.message, new RegExp(`^k6 report ${server.url}/k6-summary-export\\.json \\(2\\.0 days old\\)`), 'the query string (a signature) is not shown');

  const ok = await run({ source: `${server.url}/private/coverage-summary.json`, format: 'istanbul', bearerTokenEnv: 'REPORT_TOKEN' });
  t.equal(ok.value, 65.81, 'bearer token accepted');
  const rejected = await run({ source: `${server.url}/private/coverage-summary.json`, format: 'istanbul', bearerTokenEnv: 'REPORT_TOKEN' }, makeCtx({ env: { REPORT_TOKEN: 'wrong-token' } }));
  t.same(rejected.error, { reason: 'auth', message: `GET ${server.url}/private/coverage-summary.json answered 401 (credentials rejected)` });
  const unset = await run({ source: `${server.url}/private/coverage-summary.json`, format: 'istanbul', bearerTokenEnv: 'REPORT_TOKEN' }, makeCtx({ env: {} }));
  t.same(unset.error, { reason: 'unconfigured', message: 'environment variable REPORT_TOKEN (bearerTokenEnv) is not set' });

  t.same((await run({ source: `${server.url}/missing.json`, format: 'json' })).error, { reason: 'http-status', message: `GET ${server.url}/missing.json answered 404` });
  t.same((await run({ source: `${server.url}/error`, format: 'json' })).error, { reason: 'http-status', message: `GET ${server.url}/error answered 502` });
  const garbage = await run({ source: `${server.url}/garbage.html`, format: 'lighthouse' });
  t.equal(garbage.error?.reason, 'protocol');
  t.match(garbage.error?.message, new RegExp(`^${server.url}/garbage\\.html: not a Lighthouse report: not JSON`));
  const big = await run({ source: `${server.url}/chunked-big`, format: 'text', maxBytes: 5000 });
  t.same(big.error, { reason: 'protocol', message: `report at ${server.url}/chunked-big is more than maxBytes 5000` });
  const big2 = await run({ source: `${server.url}/lighthouse.json`, format: 'lighthouse', maxBytes: 100 });
  t.match(big2.error?.message, /is \d+ bytes, more than maxBytes 100$/, 'Content-Length checked before reading');

  const refused = await run({ source: `http://127.0.0.1:${await closedPort()}/r.json`, format: 'json' });
  t.equal(refused.error?.reason, 'refused');

  const started = Date.now();
  const err = await run({ source: `${server.url}/hang`, format: 'json' }, makeCtx({ timeoutMs: 300 })).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout', 'timeout');
  t.match((err as Error).message, /no complete answer before the check timeout \(300 ms\)$/);
  t.ok(Date.now() - started < 3000, 'settles promptly');

  t.notOk(JSON.stringify([ok, rejected, unset]).includes(TOKEN), 'the token appears in no observation');
  t.ok(seen.includes(`Bearer ${TOKEN}`), 'the token was sent');
});

t.test('S3 sources: read through the AWS SDK (SigV4), age from LastModified', async (t) => {
  const store = mkdtempSync(join(tmpdir(), 'report-s3-'));
  const s3 = await fakeS3(['offgridflow-reports'], { AKIAREPORTS00000001: 'reports-secret-key-0000000000000000000000' }, store);
  t.teardown(async () => {
    await s3.close();
    rmSync(store, { recursive: true, force: true });
  });
  const seeder = new S3Client({ region: 'us-east-1', endpoint: s3.direct, forcePathStyle: true, credentials: S3RVER_KEY });
  await seeder.send(new PutObjectCommand({ Bucket: 'offgridflow-reports', Key: 'k6/summary.json', Body: readFileSync(join(FIXTURES, 'k6-summary-export.json')) }));
  seeder.destroy();
  // s3rver may still be closing the file when it answers: backdate it once that settled.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const at = new Date(Date.now() - 3 * DAY);
  utimesSync(join(store, 'offgridflow-reports', 'k6', 'summary.json._S3rver_object'), at, at);

  const s3Settings = { endpoint: s3.url, forcePathStyle: true, accessKeyIdEnv: 'REPORTS_KEY_ID', secretAccessKeyEnv: 'REPORTS_SECRET' };
  const env = { REPORTS_KEY_ID: 'AKIAREPORTS00000001', REPORTS_SECRET: 'reports-secret-key-0000000000000000000000' };
  const obs = await run({ source: 's3://offgridflow-reports/k6/summary.json', format: 'k6', s3: s3Settings }, makeCtx({ env }));
  t.equal(obs.error, undefined);
  t.equal(obs.value, 412.33);
  t.ok(Math.abs((obs.fields.age_seconds as number) - 3 * 86400) < 60, 'age from LastModified');
  t.match(obs.message, /^k6 report s3:\/\/offgridflow-reports\/k6\/summary\.json \(3\.0 days old\): p95 412\.33 ms/);
  t.match(s3.seen.at(-1)!.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIAREPORTS00000001\//);

  const missing = await run({ source: 's3://offgridflow-reports/k6/none.json', format: 'k6', s3: s3Settings }, makeCtx({ env }));
  t.match(missing.error, { reason: 'http-status', message: /^GetObject s3:\/\/offgridflow-reports\/k6\/none\.json: NoSuchKey \(404\)/ });
  const refused = await run({ source: 's3://offgridflow-reports/k6/summary.json', format: 'k6', s3: s3Settings }, makeCtx({ env: { ...env, REPORTS_SECRET: 'wrong-secret-000000000000000000000000000' } }));
  t.match(refused.error, { reason: 'auth', message: /SignatureDoesNotMatch \(403\)/ });
  const big = await run({ source: 's3://offgridflow-reports/k6/summary.json', format: 'k6', s3: s3Settings, maxBytes: 100 }, makeCtx({ env }));
  t.match(big.error, { reason: 'protocol', message: /is \d+ bytes, more than maxBytes 100$/ });
  t.same((await run({ source: 's3://offgridflow-reports/k6/summary.json', format: 'k6' }, makeCtx({ env: {} }))).error, {
    reason: 'unconfigured',
    message: 'environment variable AWS_ACCESS_KEY_ID (accessKeyIdEnv) is not set',
  });
});

t.test('the shipped checklist: every report row passes on good reports and fails on bad or stale ones', async (t) => {
  const ROWS = ['coverage-backend', 'coverage-frontend', 'loadtest-p95', 'loadtest-p99', 'loadtest-errors', 'loadtest-throughput', 'lighthouse-performance'];
  const lowCover = join(dir, 'low-cover.txt');
  writeFileSync(lowCover, 'github.com/offgridflow/api/main.go:10:\tmain\t\t0.0%\ntotal:\t\t\t(statements)\t\t41.7%\n');
  const envs = {
    good: {
      COVERAGE_BACKEND_REPORT: fixture('go-cover-func.txt'),
      COVERAGE_FRONTEND_REPORT: fixture('coverage-summary.json', { fileAgeMs: 2 * DAY }),
      LOADTEST_REPORT: fixture('k6-summary-export.json'),
      LIGHTHOUSE_REPORT: fixture('lighthouse.json', { ageMs: DAY }),
    },
    bad: {
      COVERAGE_BACKEND_REPORT: lowCover,
      COVERAGE_FRONTEND_REPORT: fixture('coverage-summary.json', { fileAgeMs: 10 * DAY }),
      LOADTEST_REPORT: fixture('k6-handle-summary.json'),
      LIGHTHOUSE_REPORT: fixture('lighthouse.json', { ageMs: 30 * DAY }),
    },
  };
  for (const [name, env] of Object.entries(envs)) {
    const views = await runShipped(env, ROWS);
    t.same(views.map((v) => v.def.id).sort(), [...ROWS].sort(), 'the shipped report rows');
    for (const v of views) t.equal(v.state, name === 'good' ? 'pass' : 'fail', `${name} ${v.def.id}: ${v.message}`);
    if (name === 'good') t.same(views.map((v) => v.value), [72.4, 65.81, 412.33, 1210.8, 0.1528, 1199.75, 93], 'each row reports its own value');
  }
});

t.test('validate: problems caught at load', async (t) => {
  const v = (p: Record<string, unknown>) => reportProbe.validate?.(params(p));
  t.same(v({ source: 'reports/coverage.out', format: 'go-cover' }), []);
  t.same(v({ source: 'https://ci.example.com/k6.json', format: 'k6', bearerTokenEnv: 'T' }), []);
  t.same(v({ source: 'ftp://x/y', format: 'json' }), ['source must be a file path, an http(s):// URL or s3://bucket/key']);
  t.same(v({ source: 's3://offgridflow-reports/k6/summary.json', format: 'k6', s3: { region: 'eu-central-1' } }), []);
  t.same(v({ source: 's3://bucket-only', format: 'k6' }), ['source is not s3://bucket/key']);
  t.same(v({ source: 'r.json', format: 'json', s3: { region: 'eu-central-1' } }), ['s3 settings apply to s3:// sources only']);
  t.same(v({ source: 's3://b-1/k.json', format: 'json', bearerTokenEnv: 'T' }), ['headers and bearerTokenEnv apply to URL sources only']);
  t.same(v({ source: 'r.json', format: 'json', bearerTokenEnv: 'T' }), ['headers and bearerTokenEnv apply to URL sources only']);
  t.same(v({ source: 'r.txt', format: 'json', pattern: '(' }), ['pattern applies to format: text only', 'pattern is not a valid regular expression: error parsing regexp: missing closing ): `(`']);
  t.throws(() => params({ source: 'r.json', format: 'junit' }), /enum/);
  t.same(params({ source: 'r.json', format: 'json' }), { source: 'r.json', format: 'json', metric: 'lines', maxBytes: 33554432 });
});
