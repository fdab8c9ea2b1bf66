// The status page in Debian's headless Chromium: every state shown in words, the phases and
// the rollback verdict, one check's page with its history and masked parameters, a state
// change appearing without a reload, lost contact said out loud, and axe-core finding no
// serious or critical violation at desktop, phone and wall-screen widths. The screenshots
// in docs/img/ (linked from the README) are written here.
import { mkdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import type { Page } from 'playwright-core';
import { STATES } from '../src/store/types.js';
import { axe, launchBrowser, openPage, serious } from './helpers/browser.js';
import { serviceDir } from './helpers/service.js';
import { attestationChecks, scripted, startUi } from './helpers/ui.js';

// Chromium on a loaded 2-core machine: generous, still bounded.
t.setTimeout(300_000);

// The README's screenshots go to docs/img/ with READINESS_SCREENSHOTS=1 (then commit them);
// an ordinary run writes them to its temp directory, so it leaves the work tree clean.
const UPDATE = process.env.READINESS_SCREENSHOTS === '1';
const IMG = UPDATE ? 'docs/img' : serviceDir('screenshots');
mkdirSync(IMG, { recursive: true });

// Error rate over the runs of the monitor check: fine, then climbing past 1% after the deployment.
const errorRates = [0.21, 0.18, 0.3, 0.45, 0.8, 1.6, 2.4, 3.2];
let apiStatus = 200;

const checks = [
  scripted({
    id: 'tls-api-expiry',
    title: 'TLS certificate of the API valid and not expiring in < 30 days',
    section: 'configuration',
    severity: 'critical',
    fields: { days_left: 'number' },
    expect: ['days_left >= 30'],
    runbook: 'https://runbooks.example.com/readiness/checks/tls-api-expiry',
    observe: () => ({ value: 61.42, fields: { days_left: 61.42 } }),
  }),
  scripted({
    id: 'stripe-live-key',
    title: 'Stripe live-mode key accepted',
    section: 'configuration',
    severity: 'critical',
    unconfigured: 'environment variable STRIPE_SECRET_KEY is not set',
    missing: [{ variable: 'STRIPE_SECRET_KEY', message: 'environment variable STRIPE_SECRET_KEY is not set' }],
  }),
  scripted({
    id: 'db-connections',
    title: 'PostgreSQL connection usage below 80%',
    section: 'database',
    fields: { percent: 'number' },
    expect: ['percent < 95'],
    warn: ['percent < 80'],
    observe: () => ({ value: 86.5, fields: { percent: 86.5 } }),
  }),
  scripted({
    id: 'db-migrations',
    title: 'Every migration applied',
    section: 'database',
    fields: { pending: 'number' },
    expect: ['pending == 0'],
    observe: () => ({ value: 0, fields: { pending: 0 } }),
  }),
  scripted({
    id: 'port-5432-closed',
    title: 'PostgreSQL port closed to the internet',
    section: 'security',
    severity: 'critical',
    fields: { open: 'boolean' },
    expect: ['open == false'],
    observe: () => ({ fields: { open: true } }),
  }),
  scripted({
    id: 'waf-enabled',
    title: 'WAF answers in front of the API',
    section: 'security',
    observe: () => ({ fields: {}, error: { reason: 'timeout', message: 'no answer from https://waf.example.com within 5s' } }),
  }),
  // Never completes a run within three 20 ms intervals: stale.
  scripted({ id: 'alerts-routed', title: 'Critical alerts route to PagerDuty', section: 'observability', intervalMs: 20 }),
  // Never run, hourly: pending.
  scripted({ id: 'traces-flowing', title: 'Traces arrive in Jaeger', section: 'observability' }),
  scripted({
    id: 'api-health',
    title: 'API /health answers 200',
    section: 'verify',
    phase: 'verify',
    severity: 'critical',
    fields: { status: 'number' },
    expect: ['status == 200'],
    observe: () => ({ value: apiStatus, fields: { status: apiStatus } }),
  }),
  scripted({
    id: 'monitor-error-rate',
    title: 'HTTP 5xx rate below 1% after the deployment',
    section: 'monitor',
    phase: 'monitor',
    severity: 'critical',
    fields: { percent: 'number' },
    expect: ['percent < 1'],
    params: { url: 'http://prometheus:9090', query: 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100', token: 'prom-s3cret-token' },
    secretParams: ['token'],
    secrets: ['prom-s3cret-token'],
    runbook: 'https://runbooks.example.com/readiness/checks/monitor-error-rate',
    observe: (run) => {
      const p = errorRates[Math.min(run, errorRates.length) - 1]!;
      return { value: p, fields: { percent: p } };
    },
  }),
  scripted({
    id: 'monitor-p95',
    title: 'p95 latency below 500 ms',
    section: 'monitor',
    phase: 'monitor',
    fields: { p95_ms: { type: 'number', unit: 'ms' } },
    expect: ['p95_ms < 500'],
    observe: () => ({ value: 212, fields: { p95_ms: 212 } }),
  }),
  ...attestationChecks(`
  - id: dr-runbook-reviewed
    title: Disaster recovery runbook reviewed
    section: disaster-recovery
    severity: high
    phase: pre-deploy
    probe: attestation
    with: { roles: [devops-lead], maxAge: 90d }
  - id: signoff-security
    title: "Sign-off: Security Lead"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [security-lead], maxAge: 14d, release: "1.4.2" }
`),
];

async function rowState(page: Page, id: string): Promise<string> {
  return (await page.locator(`#c-${id} td.st .badge`).innerText()).trim();
}

t.test('the status page in Chromium', async (t) => {
  const ui = await startUi(t, 'offgridflow-production', checks);
  const now = Date.now();
  await ui.store.addDeployment({ id: 'd-142', version: '1.4.2', at: now - 14 * 60_000, createdAt: now - 14 * 60_000, by: 'deploy pipeline (run 5812)', source: 'api' });
  await ui.store.addAttestation({
    id: 'a-dr',
    check: 'dr-runbook-reviewed',
    by: 'Grace Hopper',
    role: 'devops-lead',
    note: 'Walked through failover with the on-call team',
    evidenceUrl: 'https://tickets.example.com/OPS-311',
    createdAt: now - 3 * 86_400_000,
    expiresAt: now + 87 * 86_400_000,
  });
  const measured = ['tls-api-expiry', 'db-connections', 'db-migrations', 'port-5432-closed', 'waf-enabled', 'api-health', 'monitor-p95', 'dr-runbook-reviewed', 'signoff-security'];
  await ui.run(...measured);
  for (let i = 0; i < errorRates.length; i++) await ui.run('monitor-error-rate');
  // Preconditions: the service itself holds every state, and recommends a rollback.
  const views = ui.service.views();
  t.same([...new Set(views.map((v) => v.state))].sort(), [...STATES].sort(), 'the service has a check in every state');
  t.same(ui.service.rollbackCauses(views).map((v) => v.def.id), ['monitor-error-rate'], 'a rollback is recommended');

  const ctx = await launchBrowser(t);

  await t.test('every state in words, the phases, the window and the rollback verdict', async (t) => {
    const { page, log } = await openPage(ctx, { width: 1280, height: 1000 });
    await page.goto(ui.url);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    const expected: Record<string, string> = {
      'tls-api-expiry': 'pass',
      'db-connections': 'warn',
      'port-5432-closed': 'fail',
      'waf-enabled': 'error',
      'alerts-routed': 'stale',
      'traces-flowing': 'pending',
      'stripe-live-key': 'unconfigured',
    };
    for (const [id, state] of Object.entries(expected)) t.match(await rowState(page, id), new RegExp(`${state}$`), `${id} reads "${state}"`);
    // Each state's word is in the text itself, not only in a colour.
    t.match(await page.locator('#c-stripe-live-key td.why').innerText(), 'STRIPE_SECRET_KEY', 'an unconfigured item names the variable that configures it');
    t.match(await page.locator('#c-tls-api-expiry td.val').innerText(), /61\.42\s+days_left >= 30/, 'value against its expectation');
    t.match(await page.locator('#c-port-5432-closed td.why').innerText(), /condition\s+open == false is false \(open = true\)/, 'reason and message');
    t.equal(await page.locator('#c-tls-api-expiry td.rb a').getAttribute('href'), 'https://runbooks.example.com/readiness/checks/tls-api-expiry');
    t.match(await page.locator('#c-tls-api-expiry td.last').innerText(), /\d+ s ago/, 'when it last ran');

    const verdict = await page.locator('#panel-verdict').innerText();
    t.match(verdict, /Not ready/);
    for (const phase of ['pre-deploy', 'deploy', 'verify', 'monitor', 'post-deploy']) t.match(verdict, phase, `the ${phase} verdict is shown`);
    t.match(await page.locator('#panel-verdict .ph', { hasText: 'monitor' }).innerText(), /not ready\s+1 of 2 failing/, 'the monitor phase as the gate sees it');
    t.match(await page.locator('#panel-verdict .ph', { hasText: 'verify' }).innerText(), /✓\s*ready/, 'the verify phase passes');

    const rb = page.locator('.rollback');
    t.ok(await rb.isVisible(), 'the rollback verdict is on screen');
    t.equal(await rb.getAttribute('role'), 'alert');
    t.match(await rb.innerText(), /Roll back recommended/i);
    t.match(await rb.innerText(), /HTTP 5xx rate below 1% after the deployment/, 'with the check that causes it');
    const box = await page.locator('#panel-deployment').boundingBox();
    t.ok(box && box.y < 150 && box.width > 1000, `the rollback panel is first and full width (${JSON.stringify(box)})`);
    const deploy = await page.locator('#panel-deployment').innerText();
    t.match(deploy, /1\.4\.2/);
    t.match(deploy, /deploy pipeline \(run 5812\)/);
    t.match(deploy, /open, 1 h 4\d min left/, 'the window is open, with its time left');
    t.match(await page.title(), /^ROLL BACK · Not ready/);

    const signoffs = await page.locator('#panel-signoffs').innerText();
    t.match(signoffs, /Grace Hopper/);
    t.match(signoffs, /Walked through failover/);
    t.equal(await page.locator('#panel-signoffs a', { hasText: 'evidence' }).getAttribute('href'), 'https://tickets.example.com/OPS-311');
    t.match(signoffs, /Not signed/, 'the security sign-off is missing');

    const violations = await axe(page);
    t.same(serious(violations), [], 'axe: no serious or critical violation (desktop)');
    await page.screenshot({ path: `${IMG}/overview-desktop.png` });
    // The dark scheme has its own colours: its contrast is checked too.
    await page.emulateMedia({ colorScheme: 'dark' });
    t.same(serious(await axe(page)), [], 'axe: no serious or critical violation (dark scheme)');
    await page.emulateMedia({ colorScheme: 'light' });

    // A phone on deployment day: nothing wider than the screen, the verdict still first.
    await page.setViewportSize({ width: 375, height: 812 });
    await page.evaluate(() => window.scrollTo(0, 0));
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'no horizontal scrolling at 375 px');
    t.same(serious(await axe(page)), [], 'axe: no serious or critical violation (375 px)');
    await page.screenshot({ path: `${IMG}/overview-phone.png` });

    // A wall screen: bigger type, still one page wide.
    await page.setViewportSize({ width: 2560, height: 1440 });
    const fontPx = await page.evaluate(() => parseFloat(getComputedStyle(document.documentElement).fontSize));
    t.ok(fontPx >= 20, `larger type on a wall screen (${fontPx}px)`);
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 2560), 'no horizontal scrolling on a wall screen');
    t.same(serious(await axe(page)), [], 'axe: no serious or critical violation (2560 px)');

    t.same(log.csp, [], 'nothing was refused by the Content-Security-Policy');
    t.same(log.errors, [], 'no script error');
    await page.close();
  });

  await t.test("one check's page: history over time and parameters masked as /checks/:id has them", async (t) => {
    const { page, log } = await openPage(ctx, { width: 1280, height: 1000 });
    const json = (await (await fetch(`${ui.url}/checks/monitor-error-rate`, { headers: { accept: 'application/json' } })).json()) as { params: Record<string, string> };
    t.equal(json.params.token, '***', 'precondition: the API masks the token');
    // From the overview, by keyboard-reachable link.
    await page.goto(ui.url);
    await page.locator('#c-monitor-error-rate th a').click();
    await page.waitForURL(/\/checks\/monitor-error-rate$/);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    t.match(await page.locator('h1').innerText(), 'HTTP 5xx rate below 1% after the deployment');
    t.equal(await page.locator('table.history tbody tr').count(), errorRates.length, 'every run is in the history');
    t.same(
      await page.locator('ol.strip li').evaluateAll((els) => els.map((e) => e.className)),
      errorRates.map((p) => (p < 1 ? 's-pass' : 's-fail')),
      'the state over time, oldest first',
    );
    const params = await page.locator('table.params tbody tr').evaluateAll((rows) => Object.fromEntries(rows.map((r) => [r.querySelector('th')!.textContent, r.querySelector('td')!.textContent])));
    t.same(params, json.params, 'the page shows the parameters exactly as GET /checks/:id does');
    t.notMatch(await page.content(), 'prom-s3cret-token', 'the secret is nowhere in the page');
    t.same(serious(await axe(page)), [], 'axe: no serious or critical violation');
    await page.screenshot({ path: `${IMG}/check-page.png` });
    t.same(log.csp, []);
    t.same(log.errors, []);
    await page.close();
  });

  await t.test('a state change appears without a reload; lost contact is said', async (t) => {
    const { page, log } = await openPage(ctx, { width: 1280, height: 900 });
    await page.goto(ui.url);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    t.match(await rowState(page, 'api-health'), /pass$/);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    const before = await page.locator('#panel-verdict .ph', { hasText: 'verify' }).innerText();
    t.match(before, /✓\s*ready/);

    apiStatus = 503;
    await ui.run('api-health');
    const changedAt = Date.now();
    t.equal(ui.service.scheduler.view('api-health')?.state, 'fail', 'precondition: the service sees the change');
    await page.waitForFunction(() => document.querySelector('#c-api-health .badge')?.textContent?.includes('fail'), undefined, { timeout: 30_000 });
    t.comment(`the change reached the page ${Date.now() - changedAt} ms after the check ran (polling every 2 s)`);
    t.match(await page.locator('#c-api-health td.why').innerText(), /status == 200 is false \(status = 503\)/);
    t.match(await page.locator('#c-api-health td.val').innerText(), /^503/);
    await page.waitForFunction(() => /not ready/.test(document.querySelector('#panel-verdict .ph:nth-child(3)')?.textContent ?? ''));
    t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the page was not reloaded');

    // The service goes away: the page says so instead of showing old news as current.
    await ui.stop();
    await page.waitForFunction(() => /Lost contact/.test(document.getElementById('conn')?.textContent ?? ''), undefined, { timeout: 30_000 });
    t.ok(await page.locator('#conn.lost').isVisible(), 'lost contact is on screen');
    await ui.restart();
    apiStatus = 200;
    await ui.run('api-health');
    await page.waitForFunction(() => /Live/.test(document.getElementById('conn')?.textContent ?? ''), undefined, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('#c-api-health .badge')?.textContent?.includes('pass'), undefined, { timeout: 30_000 });
    t.pass('contact regained and the page caught up');
    t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'still without a reload');
    t.same(log.errors, []);
    await page.close();
  });

  await t.test("one check's page follows its check without a reload", async (t) => {
    const { page, log } = await openPage(ctx, { width: 1280, height: 900 });
    await page.goto(`${ui.url}/checks/api-health`);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    t.match(await page.locator('.facts .badge').first().innerText(), /pass$/);
    const runs = await page.locator('table.history tbody tr').count();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    apiStatus = 502;
    await ui.run('api-health');
    await page.waitForFunction(() => document.querySelector('.facts .badge')?.textContent === 'fail', undefined, { timeout: 30_000 });
    t.equal(await page.locator('table.history tbody tr').count(), runs + 1, 'the new run is in the history');
    t.match(await page.locator('table.history tbody tr').first().innerText(), /status == 200 is false \(status = 502\)/);
    t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 7, 'the page was not reloaded');
    apiStatus = 200;
    await ui.run('api-health');
    t.same(log.errors, []);
    t.same(log.csp, []);
    await page.close();
  });

  await t.test('reads without JavaScript', async (t) => {
    const { page } = await openPage(ctx, { width: 1280, height: 900 });
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Emulation.setScriptExecutionDisabled', { value: true });
    await page.goto(ui.url);
    t.match(await page.locator('#panel-verdict').innerText(), /Not ready/);
    t.match(await rowState(page, 'port-5432-closed'), /fail$/);
    t.match(await page.locator('.rollback').innerText(), /Roll back recommended/i);
    t.match(await page.locator('#c-tls-api-expiry td.last').innerText(), /ago/, 'relative times are rendered by the server');
    t.notOk(await page.locator('#sign-form').isVisible(), 'the sign form (which needs script for the bearer header) is not offered');
    t.match(await page.locator('#signoffs').innerText(), /readiness attest/, 'it says how to sign without the page');
    await page.close();
  });
});

t.test('the screenshots the README links are in docs/img/', async (t) => {
  const readme = readFileSync('README.md', 'utf8');
  for (const [name, width] of [['overview-desktop', 1280], ['overview-phone', 375], ['check-page', 1280]] as const) {
    t.match(readme, `(docs/img/${name}.png)`, `the README links ${name}.png`);
    const png = readFileSync(`docs/img/${name}.png`);
    t.equal(png.subarray(1, 4).toString(), 'PNG', `${name}.png is a PNG`);
    t.equal(png.readUInt32BE(16), width, `${name}.png is ${width} px wide`);
  }
});
