// The status page's routes without a browser: content negotiation on `/` and /checks/:id
// (JSON clients keep their answers), the Content-Security-Policy and the markup it allows,
// escaping and link safety, the assets and their caching, /ui/state's panels, compression
// of the page but not of /readiness, and the shipped checklist's page under 150 KB.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import t from 'tap';
import { loadChecklistFile } from '../src/config/load.js';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import type { CheckStatus } from '../src/store/types.js';
import { escapeHtml, html, safeHref } from '../src/ui/html.js';
import { verdicts } from '../src/ui/model.js';
import { CONTENT_SECURITY_POLICY } from '../src/ui/plugin.js';
import { ago, formatValue, span } from '../src/ui/render.js';
import { waitFor } from './helpers/service.js';
import { attestationChecks, checklistOf, log, scripted } from './helpers/ui.js';

const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
const INDEX = {
  name: 'readiness-exporter',
  checklist: 'ui-inject',
  endpoints: ['/readiness', '/rollback', '/metrics', '/checks', '/checks/:id', '/attestations', '/deployments', '/healthz', '/readyz', '/docs'],
};

let flip = true;
function setup(t: { teardown(fn: () => unknown): void }) {
  const checks = [
    scripted({ id: 'api-health', title: 'API <health> & "status"', section: 'verify', phase: 'verify', fields: { ok: 'boolean' }, expect: ['ok == true'], runbook: 'javascript:alert(1)', observe: () => ({ fields: { ok: flip } }) }),
    scripted({
      id: 'db-token',
      title: 'Database reachable',
      section: 'database',
      params: { url: 'postgres://app:hunter2@db:5432/app', password: 'hunter2-secret', host: 'db' },
      secretParams: ['url', 'password'],
      secrets: ['hunter2-secret', 'hunter2'],
      observe: () => ({ fields: {}, error: { reason: 'auth', message: 'password hunter2-secret rejected' } }),
    }),
    scripted({
      id: 'needs-env',
      title: 'Needs a variable',
      section: 'configuration',
      unconfigured: 'environment variable STRIPE_SECRET_KEY is not set',
      missing: [{ variable: 'STRIPE_SECRET_KEY', message: 'environment variable STRIPE_SECRET_KEY is not set' }],
    }),
    scripted({
      id: 'needs-key',
      title: 'Google key accepted',
      section: 'configuration',
      unconfigured: 'no Google credentials found',
      missing: [{ variable: 'GOOGLE_APPLICATION_CREDENTIALS', alternative: 'the keyFile param', message: 'no Google credentials found' }],
    }),
    ...attestationChecks(`
  - id: signoff-qa
    title: "Sign-off: QA"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [qa-lead], maxAge: 14d }
`),
  ];
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf('ui-inject', checks), store, log });
  return {
    service,
    store,
    run: async () => {
      for (const c of checks) if (!c.unconfigured) await service.scheduler.runNow(c.id);
    },
    app: async () => {
      const app = await buildServer({ service, log, apiToken: 'tok' });
      t.teardown(() => app.close());
      return app;
    },
  };
}

t.test('GET / answers JSON clients as before and browsers with the page', async (t) => {
  const s = setup(t);
  const app = await s.app();
  for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html;q=0.5']) {
    const res = await app.inject({ url: '/', headers: accept ? { accept } : {} });
    t.equal(res.statusCode, 200, `Accept: ${accept}`);
    t.match(res.headers['content-type'], /^application\/json/, `Accept: ${accept} gets JSON`);
    t.match(res.json(), INDEX);
    t.equal(res.headers.vary, 'Accept', 'caches keep the two answers apart');
  }
  t.same(Object.keys((await app.inject('/')).json()), ['name', 'version', 'checklist', 'endpoints'], 'the index is unchanged');
  for (const accept of [BROWSER, 'text/html']) {
    const res = await app.inject({ url: '/', headers: { accept } });
    t.match(res.headers['content-type'], /^text\/html; charset=utf-8/, `Accept: ${accept} gets the page`);
    t.match(res.body, /^<!doctype html>\n<html lang="en">/);
  }
  t.match((await app.inject({ url: '/?format=json', headers: { accept: BROWSER } })).json(), INDEX, '?format=json wins over Accept');
  t.match((await app.inject('/?format=html')).headers['content-type'], /^text\/html/, '?format=html wins over Accept');
  t.equal((await app.inject('/?format=xml')).statusCode, 400, 'an unknown format is a 400');
});

t.test('the page: strict CSP, nothing inline, every value escaped, no unsafe link', async (t) => {
  const s = setup(t);
  await s.run();
  const att = { id: 'a1', check: 'signoff-qa', by: 'Eve <script>alert(1)</script>', role: 'qa-lead', note: '" onmouseover="alert(1)', evidenceUrl: 'javascript:alert(1)', createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 };
  await s.store.addAttestation(att);
  const app = await s.app();
  for (const url of ['/', '/checks/api-health', '/checks/db-token']) {
    const res = await app.inject({ url, headers: { accept: BROWSER } });
    t.equal(res.statusCode, 200, url);
    t.equal(res.headers['content-security-policy'], CONTENT_SECURITY_POLICY, `${url}: CSP`);
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.equal(res.headers['x-frame-options'], 'DENY');
    t.equal(res.headers['referrer-policy'], 'no-referrer');
    t.equal(res.headers['cache-control'], 'no-store');
    const body = res.body;
    t.notMatch(body, /<script(?![^>]*\bsrc=)[^>]*>/, `${url}: no inline script`);
    t.notMatch(body, /<style/, `${url}: no style element`);
    // Inside a tag: text is escaped, so every `<` in the body starts real markup.
    t.notMatch(body, /<[a-z][^>]*\son[a-z]+\s*=/i, `${url}: no event-handler attribute`);
    t.notMatch(body, /<[a-z][^>]*\sstyle\s*=/i, `${url}: no style attribute`);
    t.notMatch(body, /href="(?!https?:\/\/|\/|#)/, `${url}: every href is http(s), own path or fragment`);
    t.notMatch(body, /https?:\/\/(?!runbooks|tickets)[^"]*\.(js|css|woff2?)/, `${url}: no asset from elsewhere`);
    t.notMatch(body, /hunter2/, `${url}: no secret`);
  }
  t.equal(
    CONTENT_SECURITY_POLICY,
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  const page = (await app.inject({ url: '/', headers: { accept: BROWSER } })).body;
  t.match(page, 'API &lt;health&gt; &amp; &quot;status&quot;', 'the title is escaped');
  t.match(page, 'Eve &lt;script&gt;alert(1)&lt;/script&gt;');
  t.match(page, '&quot; onmouseover=&quot;alert(1)');
  t.match(page, '<code>javascript:alert(1)</code> (not linked)', 'a javascript: URL is shown as text');
  t.match(page, 'environment variable STRIPE_SECRET_KEY is not set</span></td>', 'an unconfigured item names its variable (its message says it: no hint repeats it)');
  t.match(page, '<span class="msg">no Google credentials found</span> <span class="hint">To configure: set <code>GOOGLE_APPLICATION_CREDENTIALS (or the keyFile param)</code></span>', 'a message that does not name it gets the variable');
  t.match(page, /<details class="missing"><summary>2 checks are unconfigured here: the variables that would configure them<\/summary>/, 'the variables this environment lacks, listed once');
  t.match(page, '<li><code>GOOGLE_APPLICATION_CREDENTIALS (or the keyFile param)</code>: 1 check (<a href="#c-needs-key">needs-key</a>)</li>');
  t.match(page, /<form id="sign-form" class="sign-form">/, 'the sign form has no action: script sends it with the bearer header');
  t.notMatch(page, /\btok\b[^>]*value=/, 'the token field never carries a value');
});

t.test('escaping and URL rules', async (t) => {
  t.equal(escapeHtml(`<a href="x" title='y'>&amp;</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  const title = '<script>x</script>';
  t.equal(html`<p title="${title}">${title}</p>`.value, '<p title="&lt;script&gt;x&lt;/script&gt;">&lt;script&gt;x&lt;/script&gt;</p>');
  t.equal(html`<ul>${['<a>', html`<li>b</li>`]}</ul>`.value, '<ul>&lt;a&gt;<li>b</li></ul>', 'arrays: strings escaped, Html kept');
  t.equal(html`${undefined}${null}${false}${0}`.value, '0');
  const cases: [string | undefined, string | undefined][] = [
    ['https://runbooks.example.com/x?a=1&b=2', 'https://runbooks.example.com/x?a=1&b=2'],
    ['http://wiki/x', 'http://wiki/x'],
    ['/checks/a', '/checks/a'],
    ['javascript:alert(1)', undefined],
    ['JavaScript:alert(1)', undefined],
    [' javascript:alert(1)', undefined],
    ['java\tscript:alert(1)', undefined],
    ['data:text/html,<script>alert(1)</script>', undefined],
    ['vbscript:msgbox(1)', undefined],
    ['//evil.example.com/x', undefined],
    ['/\\evil.example.com', undefined],
    ['/\t/evil.example.com', undefined],
    ['file:///etc/passwd', undefined],
    ['not a url', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [url, want] of cases) t.equal(safeHref(url), want, JSON.stringify(url));
  t.equal(formatValue(9.6123), '9.61');
  t.equal(formatValue(1234.5), '1235');
  t.equal(formatValue(0.01234), '0.012');
  t.equal(formatValue(undefined), '');
  t.equal(ago(0, 12_000), '12 s ago');
  t.equal(ago(0, 45 * 60_000), '45 min ago');
  t.equal(span(106 * 60_000), '1 h 46 min');
});

t.test('assets: served by the service, named by hash, cached, and nothing else', async (t) => {
  const s = setup(t);
  const app = await s.app();
  const page = (await app.inject({ url: '/', headers: { accept: BROWSER } })).body;
  const urls = [...page.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
  t.same(urls.map((u) => u.split('?')[0]).sort(), ['/ui/assets/app.css', '/ui/assets/app.js', '/ui/assets/icon.svg']);
  const types: Record<string, RegExp> = { 'app.css': /^text\/css/, 'app.js': /^text\/javascript/, 'icon.svg': /^image\/svg\+xml/ };
  for (const url of urls) {
    const name = url.split('?')[0]!.split('/').pop()!;
    const res = await app.inject(url);
    t.equal(res.statusCode, 200, url);
    t.match(res.headers['content-type'], types[name]!, `${name} type`);
    t.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable', `${name}: its hashed URL may be cached`);
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    const etag = res.headers.etag as string;
    t.equal((await app.inject({ url, headers: { 'if-none-match': etag } })).statusCode, 304, `${name}: 304 when unchanged`);
    t.equal((await app.inject(url.split('?')[0]!)).headers['cache-control'], 'no-cache', `${name}: without its hash, revalidated`);
  }
  for (const bad of ['/ui/assets/nope.js', '/ui/assets/..%2Fpackage.json', '/ui/assets/%2e%2e%2fpackage.json', '/ui/assets/']) {
    const res = await app.inject(bad);
    t.equal(res.statusCode, 404, bad);
    t.equal(res.json().error, 'RDY_NOT_FOUND', bad);
  }
  const js = (await app.inject('/ui/assets/app.js')).body;
  t.notMatch(js, /localStorage\.setItem|sessionStorage\.setItem|document\.cookie\s*=/, 'the script never stores anything');
  t.notMatch(js, /\beval\(|new Function\(/, 'nor evaluates strings');
});

t.test('/ui/state: every check in checklist order, and only the panels that changed', async (t) => {
  const s = setup(t);
  await s.run();
  const app = await s.app();
  const res = await app.inject('/ui/state');
  t.equal(res.statusCode, 200);
  let st = res.json();
  t.same(
    st.checks.map((c: { id: string }) => c.id),
    ['api-health', 'db-token', 'needs-env', 'needs-key', 'signoff-qa'],
  );
  t.match(st.checks[0], { id: 'api-health', state: 'pass', gating: true });
  t.type(st.checks[0].lastRun, 'number');
  t.match(st.checks[1], { id: 'db-token', state: 'error', reason: 'auth', message: 'password *** rejected' }, 'messages are the redacted ones');
  t.notMatch(res.body, /hunter2/);
  t.same(Object.keys(st.panels).sort(), ['deployment', 'signoffs', 'verdict'], 'a page that sent no fingerprints gets every panel');
  const fps = Object.fromEntries(Object.entries(st.panels as Record<string, { fp: string }>).map(([k, v]) => [k, v.fp]));
  const q = new URLSearchParams(fps).toString();
  st = (await app.inject(`/ui/state?${q}`)).json();
  t.same(st.panels, {}, 'nothing changed: no panel is sent again');
  t.same(st.sections.verify, { pass: 1, total: 1, passing: true });

  flip = false;
  await s.service.scheduler.runNow('api-health');
  // Open pages share one snapshot for up to a second: the change shows within it.
  const changedAt = Date.now();
  st = await waitFor('the failing check in /ui/state', async () => {
    const x = (await app.inject(`/ui/state?${q}`)).json();
    return x.checks[0].state === 'fail' ? x : undefined;
  }, { timeoutMs: 10_000, everyMs: 100 });
  t.comment(`the change reached /ui/state after ${Date.now() - changedAt} ms`);
  t.match(st.checks[0], { state: 'fail', reason: 'condition' });
  t.same(Object.keys(st.panels), ['verdict'], 'the verdict changed, so its panel is sent');
  t.same(st.sections.verify, { pass: 0, total: 1, passing: false });
  flip = true;

  await s.store.addDeployment({ id: 'd1', version: '2.0.0', at: Date.now() - 60_000, createdAt: Date.now(), source: 'api' });
  st = (await app.inject(`/ui/state?${q}`)).json();
  // No waiting here: a deployment (like a sign-off) makes a new snapshot at once.
  t.ok(st.panels.deployment, 'a deployment changes the deployment panel');
  t.match(st.panels.deployment.html, /2\.0\.0/);
  t.notMatch(st.panels.deployment.html, /min left|ago\)/, 'countdowns are left to the page, so the panel only changes with the data');
  const d2 = (await app.inject(`/ui/state?${new URLSearchParams({ ...fps, deployment: st.panels.deployment.fp })}`)).json();
  t.notOk(d2.panels.deployment, 'and is not sent again while it stays the same');
  t.match((await app.inject('/ui/state?verdict=' + 'x'.repeat(65))).statusCode, 400, 'fingerprints are bounded');
});

t.test('/checks/:id: JSON as before, the page for browsers, secrets masked by the same code', async (t) => {
  const s = setup(t);
  await s.run();
  const app = await s.app();
  const json = await app.inject('/checks/db-token');
  t.match(json.headers['content-type'], /^application\/json/);
  t.equal(json.json().history.length, 1, 'JSON default limit applies');
  t.same(json.json().params, { url: 'postgres://db:5432/app', password: '***', host: 'db' });
  const page = await app.inject({ url: '/checks/db-token', headers: { accept: BROWSER } });
  t.match(page.headers['content-type'], /^text\/html/);
  t.equal(page.headers.vary, 'Accept');
  t.notMatch(page.body, /hunter2/, 'no secret on the page');
  t.match(page.body, '<th scope="row"><code>password</code></th><td><code>***</code></td>');
  t.match(page.body, '<th scope="row"><code>url</code></th><td><code>postgres://db:5432/app</code></td>');
  t.match(page.body, 'password *** rejected');
  t.equal((await app.inject({ url: '/checks/db-token?format=json', headers: { accept: BROWSER } })).json().id, 'db-token');
  const missing = await app.inject({ url: '/checks/%3Cb%3Enope', headers: { accept: BROWSER } });
  t.equal(missing.statusCode, 404);
  t.match(missing.headers['content-type'], /^text\/html/, 'a browser gets a page for a missing check');
  t.equal(missing.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  t.match(missing.body, 'No check with id <code>&lt;b&gt;nope</code>');
  t.same((await app.inject('/checks/nope')).json(), { error: 'RDY_CHECK_NOT_FOUND', message: 'no check with id "nope"' }, 'an API client still gets the error');
});

t.test('compressed page and assets; /readiness and /metrics untouched', async (t) => {
  const s = setup(t);
  await s.run();
  const app = await s.app();
  const plain = await app.inject({ url: '/', headers: { accept: BROWSER } });
  const gz = await app.inject({ url: '/', headers: { accept: BROWSER, 'accept-encoding': 'gzip' } });
  t.equal(gz.headers['content-encoding'], 'gzip');
  const unzipped = gunzipSync(gz.rawPayload).toString();
  t.match(unzipped, /^<!doctype html>/);
  t.equal(unzipped.length, plain.body.length, 'the same page, compressed');
  t.ok(gz.rawPayload.length < plain.body.length / 3, 'to a fraction of its size');
  const br = await app.inject({ url: '/', headers: { accept: BROWSER, 'accept-encoding': 'br, gzip' } });
  t.equal(br.headers['content-encoding'], 'br');
  t.match(brotliDecompressSync(br.rawPayload).toString(), /^<!doctype html>/);
  t.equal((await app.inject({ url: '/ui/assets/app.js', headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'gzip', 'the script is compressed');
  t.equal((await app.inject({ url: '/checks/api-health', headers: { accept: BROWSER, 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'gzip', "a check's page is compressed");
  for (const url of ['/readiness', '/readiness?verbose=1', '/metrics', '/checks']) {
    const res = await app.inject({ url, headers: { 'accept-encoding': 'gzip, br' } });
    t.equal(res.headers['content-encoding'], undefined, `${url} is not compressed (its cost and answer are unchanged)`);
  }
});

t.test('the shipped checklist: the page transfers well under 150 KB', async (t) => {
  const res = await loadChecklistFile('probes/offgridflow.yaml', {});
  if (!res.ok) throw new Error('the shipped checklist does not load');
  const store = new MemoryStore();
  const service = new Service({ file: 'probes/offgridflow.yaml', checklist: res.checklist, store, log });
  // Worst case: every check has run, failing with a long message and a value.
  const now = Date.now();
  for (const c of res.checklist.checks) {
    const last = { check: c.id, state: 'fail' as const, reason: 'condition' as const, message: `${c.expect.map((e) => e.source).join(' and ') || 'the check'} is false (measured value = 123456.789) `.repeat(2).trim(), value: 123456.789, startedAt: now - 1000, finishedAt: now, durationMs: 1000, conditions: [] };
    const status: CheckStatus = { check: c.id, state: 'fail', reason: 'condition', message: last.message, value: 123456.789, last, streak: 1, runs: { fail: 1 } };
    await store.put(status);
  }
  const app = await buildServer({ service, log });
  t.teardown(() => app.close());
  const page = await app.inject({ url: '/', headers: { accept: BROWSER, 'accept-encoding': 'gzip, deflate, br' } });
  t.equal(page.statusCode, 200);
  t.equal(page.headers['content-encoding'], 'br');
  const decoded = brotliDecompressSync(page.rawPayload).toString();
  t.equal((decoded.match(/<tr id="c-/g) ?? []).length, res.checklist.checks.length, `every one of the ${res.checklist.checks.length} checks has a row`);
  let total = page.rawPayload.length;
  for (const asset of ['/ui/assets/app.js', '/ui/assets/app.css', '/ui/assets/icon.svg']) {
    total += (await app.inject({ url: asset, headers: { 'accept-encoding': 'gzip, deflate, br' } })).rawPayload.length;
  }
  t.comment(`shipped checklist page: ${decoded.length} bytes of HTML, ${total} bytes transferred with its assets`);
  t.ok(total < 150 * 1024, `the page and its assets transfer ${total} bytes compressed (< 150 KB)`);
});

t.test("each phase's verdict is the gate's: the page agrees with /readiness?phase=P", async (t) => {
  const phases = ['pre-deploy', 'deploy', 'verify', 'monitor', 'post-deploy'] as const;
  const outcomes = [{ n: 1 }, { n: 50 }, { n: 99 }, undefined];
  const checks = Array.from({ length: 40 }, (_, i) =>
    scripted({
      id: `c-${i}`,
      section: `s${i % 3}`,
      phase: phases[i % phases.length]!,
      gate: i % 7 !== 0,
      expect: ['n < 90'],
      warn: ['n < 40'],
      ...(i % 11 === 5 && { unconfigured: 'environment variable X is not set' }),
      observe: () => {
        const o = outcomes[(i * 7) % outcomes.length];
        return o ? { value: o.n, fields: o } : { fields: {}, error: { reason: 'timeout', message: 'slow' } };
      },
    }),
  );
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf('phases', checks), store, log });
  for (const c of checks.slice(0, 30)) if (!c.unconfigured) await service.scheduler.runNow(c.id);
  await store.addDeployment({ id: 'd', version: '1', at: Date.now() - 1000, createdAt: Date.now(), source: 'api' });
  const app = await buildServer({ service, log });
  t.teardown(() => app.close());
  const views = service.views();
  t.ok(new Set(views.map((v) => v.state)).size >= 5, 'preconditions: a mix of states');
  const { phases: verdict, summary } = verdicts(views);
  for (const p of verdict) {
    const res = await app.inject(p.phase === 'all' ? '/readiness' : `/readiness?phase=${p.phase}`);
    const body = res.json();
    t.same(
      { ready: p.ready, failing: p.failing, advisory: p.advisory, total: p.total },
      { ready: res.statusCode === 200, failing: body.failing.length, advisory: body.advisory.length, total: body.summary.total },
      `${p.phase}: as /readiness answers it`,
    );
    if (p.phase === 'all') t.same(summary, body.summary, 'the counts by state too');
  }
});
