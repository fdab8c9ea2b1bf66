// report: reads a report another tool wrote (coverage, load test, Lighthouse, vulnerability
// scan) from a file or a URL and extracts its numbers. The report's own age is a field, so a
// check can require a fresh one (`age_seconds < 7d`): a green report from last quarter must not
// keep a release green. Anything that is not the declared format is an error with reason
// `protocol`, never a zero that looks like a measurement.
import { stat, open } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { reasonFromError, type Reason } from '../reasons.js';
import { SafeRegex } from '../regex.js';
import { commonjs, lazy } from './lazy.js';
import { awsSecrets, s3Client, s3Error, s3Sdk } from './s3.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';

const undici = lazy(() => import('undici').then(commonjs));

export const FORMATS = ['go-cover', 'istanbul', 'k6', 'lighthouse', 'trivy', 'npm-audit', 'json', 'text'] as const;
type Format = (typeof FORMATS)[number];

const ISTANBUL_METRICS = ['lines', 'statements', 'functions', 'branches'] as const;

const params = Type.Object(
  {
    source: Type.String({ minLength: 1, description: 'Where the report is: a file path, an http(s):// URL, or s3://bucket/key.' }),
    format: Type.Unsafe<Format>({ type: 'string', enum: [...FORMATS], description: `Report format: ${FORMATS.join(' | ')}.` }),
    metric: Type.Unsafe<(typeof ISTANBUL_METRICS)[number]>({
      type: 'string',
      enum: [...ISTANBUL_METRICS],
      default: 'lines',
      description: 'istanbul: which total is coverage_percent (lines | statements | functions | branches).',
    }),
    pattern: Type.Optional(Type.String({ minLength: 1, description: 'text: regular expression with one capture group; match is what it captured.' })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'URL source: request headers.' })),
    bearerTokenEnv: Type.Optional(
      Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'URL source: environment variable holding a token sent as Authorization: Bearer.' }),
    ),
    maxBytes: Type.Integer({ minimum: 1, default: 33_554_432, description: 'Largest report read (default 32 MiB); a larger one is an error.' }),
    s3: Type.Optional(
      Type.Object(
        {
          region: Type.Optional(Type.String({ description: 'Bucket region (default us-east-1).' })),
          endpoint: Type.Optional(Type.String({ minLength: 1, description: 'S3-compatible endpoint.' })),
          forcePathStyle: Type.Optional(Type.Boolean({ description: 'Path-style URLs.' })),
          credentials: Type.Optional(Type.Union([Type.Literal('env'), Type.Literal('default')], { description: 'env (default) or the AWS SDK chain.' })),
          accessKeyIdEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' })),
          secretAccessKeyEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' })),
          sessionTokenEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' })),
        },
        { additionalProperties: false, description: 's3:// source: client settings, as for the s3 kind.' },
      ),
    ),
  },
  { additionalProperties: false },
);

/** Counts of findings by severity, the same fields for every scanner. */
const SEVERITY_FIELDS = {
  critical: { type: 'number', description: 'trivy, npm-audit: findings of severity critical.' },
  high: { type: 'number', description: 'trivy, npm-audit: findings of severity high.' },
  medium: { type: 'number', description: 'trivy, npm-audit: medium (npm: moderate).' },
  low: { type: 'number', description: 'trivy, npm-audit: low.' },
  other: { type: 'number', description: 'trivy, npm-audit: unknown (trivy) or info (npm).' },
  total: { type: 'number', description: 'trivy, npm-audit: all findings.' },
  critical_high: { type: 'number', description: 'trivy, npm-audit: critical + high (the value).' },
} as const;

interface Loaded {
  text: string;
  /** When the transport says the report was written (file mtime, Last-Modified). */
  modified?: Date;
  where: string;
}

/** What a format extracted: fields, the headline value, the report's own timestamp if it has one. */
interface Extracted {
  fields: Record<string, unknown>;
  value?: number;
  created?: Date;
  summary: string;
}

function garbage(what: string): never {
  throw new ProbeError('protocol', what);
}

function parseJson(text: string, format: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    garbage(`not a ${format} report: not JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) garbage(`not a ${format} report: JSON ${Array.isArray(v) ? 'array' : typeof v}, expected an object`);
  return v as Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

function dateOf(v: unknown): Date | undefined {
  if (typeof v !== 'string') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `go tool cover -func` output (its `total:` line) or a raw coverage profile (`mode: set`). */
function goCover(text: string): Extracted {
  const total = /^total:\s+\(statements\)\s+(\d+(?:\.\d+)?)%\s*$/m.exec(text);
  if (total) {
    const pct = Number(total[1]);
    return { fields: { coverage_percent: pct }, value: pct, summary: `total coverage ${pct}%` };
  }
  if (/^mode: (set|count|atomic)\s*$/m.test(text.split('\n', 1)[0] ?? '')) {
    // Profile lines: file:start.col,end.col statements count. A block listed twice (tests of
    // several packages) counts once, covered if any listing covered it.
    const blocks = new Map<string, { n: number; hit: boolean }>();
    for (const line of text.split('\n').slice(1)) {
      const m = /^(.+:\d+\.\d+,\d+\.\d+) (\d+) (\d+)\s*$/.exec(line);
      if (!m) {
        if (line.trim() !== '') garbage(`not a Go coverage profile: unexpected line ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      const prev = blocks.get(m[1]!);
      blocks.set(m[1]!, { n: Number(m[2]), hit: (prev?.hit ?? false) || Number(m[3]) > 0 });
    }
    let all = 0;
    let hit = 0;
    for (const b of blocks.values()) {
      all += b.n;
      if (b.hit) hit += b.n;
    }
    if (all === 0) garbage('the Go coverage profile has no statements');
    const pct = round((hit / all) * 100, 1);
    return { fields: { coverage_percent: pct }, value: pct, summary: `total coverage ${pct}% (${hit}/${all} statements)` };
  }
  garbage('not Go coverage: no "total: (statements) N%" line (go tool cover -func) and no "mode:" line (coverage profile)');
}

/** Istanbul/nyc/c8/Jest `coverage-summary.json` (the json-summary reporter). */
function istanbul(text: string, metric: (typeof ISTANBUL_METRICS)[number]): Extracted {
  const doc = parseJson(text, 'Istanbul coverage-summary');
  const total = doc.total;
  if (!isObj(total)) garbage('not an Istanbul coverage-summary.json: no "total" object');
  const fields: Record<string, unknown> = {};
  for (const m of ISTANBUL_METRICS) {
    const entry = total[m];
    if (!isObj(entry)) continue;
    // pct is "Unknown" when nothing of that kind exists.
    const pct = num(entry.pct);
    if (pct !== undefined) fields[`${m}_percent`] = pct;
  }
  if (Object.keys(fields).length === 0) garbage('not an Istanbul coverage-summary.json: "total" has no lines/statements/functions/branches pct');
  const pct = fields[`${metric}_percent`];
  if (typeof pct !== 'number') garbage(`the coverage summary has no ${metric} percentage`);
  fields.coverage_percent = pct;
  return { fields, value: pct, summary: `${metric} coverage ${pct}%` };
}

/** k6 `--summary-export` JSON, or the `handleSummary` data (metrics with a `values` object). */
function k6(text: string): Extracted {
  const doc = parseJson(text, 'k6 summary');
  const metrics = doc.metrics;
  if (!isObj(metrics)) garbage('not a k6 summary: no "metrics" object');
  const values = (name: string): Record<string, unknown> | undefined => {
    const m = metrics[name];
    if (!isObj(m)) return undefined;
    return isObj(m.values) ? m.values : m;
  };
  const duration = values('http_req_duration');
  const reqs = values('http_reqs');
  if (!duration || !reqs) garbage('not a k6 summary of an HTTP test: no http_req_duration or http_reqs metric');
  const fields: Record<string, unknown> = {};
  const set = (name: string, v: unknown) => {
    const n = num(v);
    if (n !== undefined) fields[name] = n;
  };
  set('p95_ms', duration['p(95)']);
  set('p99_ms', duration['p(99)']);
  set('avg_ms', duration.avg);
  set('requests', reqs.count);
  set('requests_per_second', reqs.rate);
  const failed = values('http_req_failed');
  // A Rate metric: `value` (summary export) or `rate` (handleSummary) is the share of true
  // samples, and a true http_req_failed sample is a failed request.
  const rate = num(failed?.rate) ?? num(failed?.value);
  if (rate !== undefined) fields.error_rate_percent = round(rate * 100, 4);
  const checks = values('checks');
  const checksRate = num(checks?.rate) ?? num(checks?.value);
  if (checksRate !== undefined) fields.checks_percent = round(checksRate * 100, 4);
  const missing = ['p95_ms', 'p99_ms', 'requests_per_second', 'error_rate_percent'].filter((f) => !(f in fields));
  const note = missing.length > 0 ? ` (not in the report: ${missing.join(', ')}${missing.includes('p99_ms') ? '; run k6 with --summary-trend-stats including p(99)' : ''})` : '';
  const show = (f: string, unit = '') => (f in fields ? `${round(fields[f] as number)}${unit}` : '?');
  return {
    fields,
    ...(typeof fields.p95_ms === 'number' && { value: fields.p95_ms }),
    summary: `p95 ${show('p95_ms', ' ms')}, p99 ${show('p99_ms', ' ms')}, errors ${show('error_rate_percent', '%')}, ${show('requests_per_second')} req/s${note}`,
  };
}

/** Lighthouse JSON (`--output=json`): category scores 0-1, reported x100. */
function lighthouse(text: string): Extracted {
  const doc = parseJson(text, 'Lighthouse');
  const cats = doc.categories;
  if (!isObj(cats) || typeof doc.lighthouseVersion !== 'string') garbage('not a Lighthouse report: no "lighthouseVersion" and "categories"');
  const fields: Record<string, unknown> = {};
  for (const [id, field] of [['performance', 'performance'], ['accessibility', 'accessibility'], ['best-practices', 'best_practices'], ['seo', 'seo']] as const) {
    const score = isObj(cats[id]) ? num(cats[id].score) : undefined;
    if (score !== undefined) fields[field] = round(score * 100, 1);
  }
  const url = typeof doc.finalDisplayedUrl === 'string' ? doc.finalDisplayedUrl : typeof doc.finalUrl === 'string' ? doc.finalUrl : doc.requestedUrl;
  if (typeof url === 'string') fields.url = url;
  if (typeof fields.performance !== 'number') {
    const err = isObj(doc.runtimeError) && typeof doc.runtimeError.message === 'string' ? `: ${doc.runtimeError.message}` : '';
    garbage(`the Lighthouse run has no performance score${err}`);
  }
  const created = dateOf(doc.fetchTime);
  return {
    fields,
    value: fields.performance as number,
    ...(created && { created }),
    summary: `performance ${fields.performance}${typeof url === 'string' ? ` for ${url}` : ''}`,
  };
}

type Counts = { critical: number; high: number; medium: number; low: number; other: number };

function severityFields(c: Counts): Record<string, number> {
  const total = c.critical + c.high + c.medium + c.low + c.other;
  return { ...c, total, critical_high: c.critical + c.high };
}

function countsSummary(c: Counts): string {
  return `${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low`;
}

/** Trivy JSON (`--format json`): vulnerabilities, failed misconfigurations and secrets by severity. */
function trivy(text: string): Extracted {
  const doc = parseJson(text, 'Trivy');
  if (doc.SchemaVersion === undefined || !('Results' in doc || 'ArtifactName' in doc)) garbage('not a Trivy JSON report: no "SchemaVersion" and "Results"');
  const results = doc.Results ?? [];
  if (!Array.isArray(results)) garbage('not a Trivy JSON report: "Results" is not a list');
  const c: Counts = { critical: 0, high: 0, medium: 0, low: 0, other: 0 };
  const kinds = { vulnerabilities: 0, misconfigurations: 0, secrets: 0 };
  const add = (sev: unknown) => {
    const s = typeof sev === 'string' ? sev.toLowerCase() : '';
    if (s === 'critical' || s === 'high' || s === 'medium' || s === 'low') c[s]++;
    else c.other++;
  };
  for (const r of results) {
    if (!isObj(r)) continue;
    for (const v of Array.isArray(r.Vulnerabilities) ? r.Vulnerabilities : []) {
      kinds.vulnerabilities++;
      add(isObj(v) ? v.Severity : undefined);
    }
    for (const m of Array.isArray(r.Misconfigurations) ? r.Misconfigurations : []) {
      if (isObj(m) && m.Status !== undefined && m.Status !== 'FAIL') continue;
      kinds.misconfigurations++;
      add(isObj(m) ? m.Severity : undefined);
    }
    for (const s of Array.isArray(r.Secrets) ? r.Secrets : []) {
      kinds.secrets++;
      add(isObj(s) ? s.Severity : undefined);
    }
  }
  const sev = severityFields(c);
  const fields: Record<string, unknown> = { ...sev, ...kinds };
  if (typeof doc.ArtifactName === 'string') fields.artifact = doc.ArtifactName;
  const created = dateOf(doc.CreatedAt);
  return { fields, value: sev.critical_high!, ...(created && { created }), summary: `${sev.total} findings: ${countsSummary(c)}` };
}

/** `npm audit --json` (npm 7+ and npm 6; pnpm's is npm 6's). */
function npmAudit(text: string): Extracted {
  const doc = parseJson(text, 'npm audit');
  if (isObj(doc.error)) {
    const e = doc.error;
    garbage(`npm audit reported an error: ${String(e.code ?? '')}${typeof e.summary === 'string' ? ` ${e.summary}` : ''}`.trim());
  }
  const v = isObj(doc.metadata) ? doc.metadata.vulnerabilities : undefined;
  if (!isObj(v)) garbage('not an npm audit --json report: no metadata.vulnerabilities');
  const n = (k: string) => num(v[k]) ?? 0;
  const c: Counts = { critical: n('critical'), high: n('high'), medium: n('moderate'), low: n('low'), other: n('info') };
  const fields = severityFields(c);
  return { fields, value: fields.critical_high, summary: `${fields.total} vulnerable packages: ${countsSummary(c)}` };
}

/** The pattern is RE2 (linear time) and a long body is matched off the event loop: the report's text is the target's. */
async function text(body: string, pattern: string | undefined): Promise<Extracted> {
  if (pattern === undefined) return { fields: { body }, summary: `${body.length} characters` };
  const m = await SafeRegex.compile(pattern, { multiline: true }).exec(body);
  if (!m) return { fields: { body }, summary: `no match for ${pattern}` };
  const match = m[1] ?? m[0] ?? '';
  const n = Number(match);
  const fields: Record<string, unknown> = { body, match };
  if (match.trim() !== '' && Number.isFinite(n)) fields.match_number = n;
  return { fields, ...(typeof fields.match_number === 'number' && { value: n }), summary: `matched ${JSON.stringify(match.slice(0, 80))}` };
}

function extract(format: Format, body: string, p: { metric: (typeof ISTANBUL_METRICS)[number]; pattern?: string }): Extracted | Promise<Extracted> {
  switch (format) {
    case 'go-cover':
      return goCover(body);
    case 'istanbul':
      return istanbul(body, p.metric);
    case 'k6':
      return k6(body);
    case 'lighthouse':
      return lighthouse(body);
    case 'trivy':
      return trivy(body);
    case 'npm-audit':
      return npmAudit(body);
    case 'json':
      return { fields: { json: parseJson(body, 'JSON') }, summary: 'JSON report' };
    case 'text':
      return text(body, p.pattern);
  }
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

function safeUrl(s: string): string {
  try {
    const u = new URL(s);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.href;
  } catch {
    return '(invalid URL)';
  }
}

async function readFileCapped(path: string, cap: number, signal: AbortSignal): Promise<Loaded> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ProbeError('error', `report file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
  if (!st.isFile()) throw new ProbeError('error', `report ${path} is not a file`);
  if (st.size > cap) throw new ProbeError('protocol', `report file ${path} is ${st.size} bytes, more than maxBytes ${cap}`);
  const fh = await open(path, 'r');
  try {
    signal.throwIfAborted();
    const { buffer, bytesRead } = await fh.read({ buffer: Buffer.alloc(st.size), position: 0 });
    return { text: buffer.subarray(0, bytesRead).toString('utf8'), modified: st.mtime, where: path };
  } finally {
    await fh.close();
  }
}

async function fetchUrl(url: string, headers: Record<string, string>, cap: number, signal: AbortSignal, timeoutMs: number, ctx: { stillOwner?: () => boolean }): Promise<Loaded> {
  const where = safeUrl(url);
  const { Agent, request } = await undici();
  const agent = new Agent({ connect: await agentConnect({ timeout: timeoutMs * 2 }, ctx), headersTimeout: timeoutMs * 2, bodyTimeout: timeoutMs * 2 });
  try {
    const res = await request(url, { headers, signal, dispatcher: agent });
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump();
      const reason: Reason = res.statusCode === 401 || res.statusCode === 403 ? 'auth' : res.statusCode === 429 ? 'rate-limited' : 'http-status';
      throw new ProbeError(reason, `GET ${where} answered ${res.statusCode}${reason === 'auth' ? ' (credentials rejected)' : ''}`);
    }
    const length = Number(res.headers['content-length'] ?? NaN);
    if (length > cap) {
      await res.body.dump();
      throw new ProbeError('protocol', `report at ${where} is ${length} bytes, more than maxBytes ${cap}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > cap) throw new ProbeError('protocol', `report at ${where} is more than maxBytes ${cap}`);
      chunks.push(chunk);
    }
    const lm = res.headers['last-modified'];
    const modified = typeof lm === 'string' ? dateOf(lm) : undefined;
    return { text: Buffer.concat(chunks).toString('utf8'), ...(modified && { modified }), where };
  } catch (err) {
    if (err instanceof ProbeError) throw err;
    if (signal.aborted) throw new ProbeError('timeout', `GET ${where}: no complete answer before the check timeout (${timeoutMs} ms)`);
    const e = err as Error & { code?: string };
    throw new ProbeError(reasonFromError(e), `GET ${where}: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
  } finally {
    await agent.destroy();
  }
}

type S3Settings = NonNullable<Static<typeof params>['s3']>;

/** The s3 client settings of an s3:// source, defaults filled in. */
function s3Settings(o: S3Settings = {}) {
  return {
    region: o.region ?? 'us-east-1',
    endpoint: o.endpoint,
    forcePathStyle: o.forcePathStyle ?? false,
    credentials: o.credentials ?? 'env',
    accessKeyIdEnv: o.accessKeyIdEnv ?? 'AWS_ACCESS_KEY_ID',
    secretAccessKeyEnv: o.secretAccessKeyEnv ?? 'AWS_SECRET_ACCESS_KEY',
    sessionTokenEnv: o.sessionTokenEnv ?? 'AWS_SESSION_TOKEN',
  };
}

async function fetchS3(source: string, o: S3Settings, cap: number, ctx: ProbeContext): Promise<Loaded> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
  if (!m) throw new ProbeError('error', `${source} is not s3://bucket/key`);
  const { GetObjectCommand } = await s3Sdk();
  const client = await s3Client(s3Settings(o), ctx.env, ctx.stillOwner);
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: m[1], Key: m[2] }), { abortSignal: ctx.signal });
    if ((out.ContentLength ?? 0) > cap) {
      out.Body?.transformToWebStream().cancel().catch(() => {});
      throw new ProbeError('protocol', `report ${source} is ${out.ContentLength} bytes, more than maxBytes ${cap}`);
    }
    const text = (await out.Body?.transformToString('utf8')) ?? '';
    return { text, ...(out.LastModified && { modified: out.LastModified }), where: source };
  } catch (err) {
    throw s3Error(err, `GetObject ${source}`, ctx);
  } finally {
    client.destroy();
  }
}

function ago(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

export default defineProbe({
  kind: 'report',
  description: 'Reads a coverage, load-test, Lighthouse or vulnerability report from a file or URL and extracts its numbers and age.',
  params,
  secretParams: ['headers'],
  fields: {
    age_seconds: { type: 'number', unit: 's', description: "Age of the report: its own timestamp (Lighthouse fetchTime, Trivy CreatedAt), else Last-Modified or the file's mtime." },
    bytes: { type: 'number', description: 'Size of the report.' },
    coverage_percent: { type: 'number', description: 'go-cover, istanbul: total coverage in percent (the value).' },
    lines_percent: { type: 'number', description: 'istanbul: line coverage.' },
    statements_percent: { type: 'number', description: 'istanbul: statement coverage.' },
    functions_percent: { type: 'number', description: 'istanbul: function coverage.' },
    branches_percent: { type: 'number', description: 'istanbul: branch coverage.' },
    p95_ms: { type: 'number', unit: 'ms', description: 'k6: 95th percentile of http_req_duration (the value).' },
    p99_ms: { type: 'number', unit: 'ms', description: 'k6: 99th percentile (only when the summary has p(99)).' },
    avg_ms: { type: 'number', unit: 'ms', description: 'k6: mean http_req_duration.' },
    error_rate_percent: { type: 'number', description: 'k6: failed requests (http_req_failed) in percent.' },
    requests_per_second: { type: 'number', description: 'k6: http_reqs rate.' },
    requests: { type: 'number', description: 'k6: http_reqs count.' },
    checks_percent: { type: 'number', description: 'k6: passed checks in percent.' },
    performance: { type: 'number', description: 'lighthouse: performance score x 100 (the value).' },
    accessibility: { type: 'number', description: 'lighthouse: accessibility score x 100.' },
    best_practices: { type: 'number', description: 'lighthouse: best-practices score x 100.' },
    seo: { type: 'number', description: 'lighthouse: SEO score x 100.' },
    url: { type: 'string', description: 'lighthouse: the audited URL.' },
    ...SEVERITY_FIELDS,
    vulnerabilities: { type: 'number', description: 'trivy: vulnerabilities found.' },
    misconfigurations: { type: 'number', description: 'trivy: failed misconfiguration checks.' },
    secrets: { type: 'number', description: 'trivy: secrets found.' },
    artifact: { type: 'string', description: 'trivy: the scanned artifact (image name).' },
    'json.*': { type: 'any', description: 'json: the report itself: json.summary.passed, ...' },
    body: { type: 'string', description: 'text: the report text.' },
    match: { type: 'string', description: 'text: what the pattern captured.' },
    match_number: { type: 'number', description: 'text: the capture as a number, when it is one (the value).' },
  },

  requiredEnv: (p) => (p.bearerTokenEnv ? [p.bearerTokenEnv] : []),
  // An s3:// source sends the AWS credentials, named or the SDK's defaults.
  secrets: (p, env) => (p.source.startsWith('s3://') ? awsSecrets(s3Settings(p.s3), env) : []),
  validate(p) {
    const problems: string[] = [];
    if (isUrl(p.source)) {
      try {
        new URL(p.source);
      } catch {
        problems.push('source is not a valid URL');
      }
    } else if (p.source.startsWith('s3://')) {
      if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+$/.test(p.source)) problems.push('source is not s3://bucket/key');
    } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p.source)) {
      problems.push('source must be a file path, an http(s):// URL or s3://bucket/key');
    } else if (p.headers || p.bearerTokenEnv) {
      problems.push('headers and bearerTokenEnv apply to URL sources only');
    }
    if (p.s3 && !p.source.startsWith('s3://')) problems.push('s3 settings apply to s3:// sources only');
    if ((p.headers || p.bearerTokenEnv) && p.source.startsWith('s3://')) problems.push('headers and bearerTokenEnv apply to URL sources only');
    if (p.pattern !== undefined) {
      if (p.format !== 'text') problems.push('pattern applies to format: text only');
      try {
        SafeRegex.compile(p.pattern, { multiline: true });
      } catch (err) {
        problems.push(`pattern is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    return problems;
  },

  load: (p) => (isUrl(p.source) ? undici() : p.source.startsWith('s3://') ? s3Sdk() : Promise.resolve()),

  async run(p, ctx): Promise<Observation> {
    let loaded: Loaded;
    try {
      if (isUrl(p.source)) {
        const headers: Record<string, string> = { 'user-agent': 'readiness-exporter', accept: 'application/json, text/plain, */*' };
        for (const [k, v] of Object.entries(p.headers ?? {})) headers[k.toLowerCase()] = v;
        if (p.bearerTokenEnv) {
          const token = ctx.env[p.bearerTokenEnv];
          if (!token) return { fields: {}, error: { reason: 'unconfigured', message: `environment variable ${p.bearerTokenEnv} (bearerTokenEnv) is not set` } };
          headers.authorization = `Bearer ${token}`;
        }
        loaded = await fetchUrl(p.source, headers, p.maxBytes, ctx.signal, ctx.timeoutMs, ctx);
      } else if (p.source.startsWith('s3://')) {
        loaded = await fetchS3(p.source, p.s3 ?? {}, p.maxBytes, ctx);
      } else {
        loaded = await readFileCapped(p.source, p.maxBytes, ctx.signal);
      }
    } catch (err) {
      if (err instanceof ProbeError && err.reason !== 'timeout') return { fields: {}, error: { reason: err.reason, message: err.message } };
      throw err;
    }

    let x: Extracted;
    try {
      x = await extract(p.format, loaded.text, p);
    } catch (err) {
      if (err instanceof ProbeError) return { fields: {}, error: { reason: err.reason, message: `${loaded.where}: ${err.message}` } };
      throw err;
    }
    const fields: Record<string, unknown> = { ...x.fields, bytes: Buffer.byteLength(loaded.text) };
    const at = x.created ?? loaded.modified;
    let age = 'age unknown';
    if (at) {
      const seconds = Math.max(0, (Date.now() - at.getTime()) / 1000);
      fields.age_seconds = seconds;
      age = `${ago(seconds)} old`;
    }
    return { ...(x.value !== undefined && { value: x.value }), fields, message: `${p.format} report ${loaded.where} (${age}): ${x.summary}` };
  },
});
