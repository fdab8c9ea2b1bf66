// What people and probes write reaches the status page only as text: a check title with a
// <script>, markup in a message, a `javascript:` runbook, an attestation's note and evidence
// URL written straight into the store (past the API's own validation). And a checklist of
// 1,000 checks: every row rendered, the filter usable, with the time it took reported.
import t from 'tap';
import { launchBrowser, openPage } from './helpers/browser.js';
import { attestationChecks, scripted, startUi } from './helpers/ui.js';
import type { CheckDef } from '../src/config/types.js';

// Chromium on a loaded 2-core machine: generous, still bounded.
t.setTimeout(300_000);

const XSS_TITLE = '<script>window.__xss = "title"</script><img src=x onerror="window.__xss=\'img\'"> Payments live';

t.test('user-controlled text is shown as text and never runs', async (t) => {
  const checks = [
    scripted({
      id: 'hostile-title',
      title: XSS_TITLE,
      section: 'security',
      runbook: 'javascript:window.__xss="runbook"',
      observe: () => ({ fields: {}, error: { reason: 'protocol', message: 'got <b onmouseover="window.__xss=1">html</b> & "quotes"' } }),
    }),
    scripted({ id: 'data-runbook', title: 'A data: runbook', section: 'security', runbook: 'data:text/html,<script>window.__xss=1</script>' }),
    ...attestationChecks(`
  - id: signoff-product
    title: "Sign-off: Product Manager"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [product-manager], maxAge: 14d }
`),
  ];
  const ui = await startUi(t, 'hostile', checks);
  const now = Date.now();
  // Straight into the store: the page must not rely on the API having validated it.
  await ui.store.addAttestation({
    id: 'a-1',
    check: 'signoff-product',
    by: '<img src=x onerror="window.__xss=\'by\'">Eve',
    role: 'product-manager',
    note: '</td><script>window.__xss="note"</script>',
    evidenceUrl: 'javascript:window.__xss="evidence"',
    release: '"><svg onload="window.__xss=\'release\'">',
    createdAt: now,
    expiresAt: now + 86_400_000,
  });
  await ui.run();
  const ctx = await launchBrowser(t);
  const { page, log } = await openPage(ctx);
  let dialogs = 0;
  page.on('dialog', (d) => {
    dialogs++;
    void d.dismiss();
  });

  for (const path of ['/', '/checks/hostile-title', '/checks/signoff-product']) {
    await page.goto(`${ui.url}${path}`);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    // Let one live update replace the panels too.
    await page.waitForTimeout(2_500);
    t.equal(await page.evaluate(() => (window as unknown as { __xss?: string }).__xss), undefined, `${path}: nothing injected ran`);
    const links = await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
    t.same(links.filter((h) => !/^(https?:\/\/|\/|#)/.test(h)), [], `${path}: every link is http(s), this service's own path or a fragment`);
    t.equal(await page.locator('script:not([src])').count(), 0, `${path}: no inline script element`);
    t.equal(await page.locator('[onerror], [onload], [onmouseover]').count(), 0, `${path}: no event-handler attribute`);
  }

  await page.goto(ui.url);
  t.equal(await page.locator('#c-hostile-title th a').innerText(), XSS_TITLE, 'the title is shown exactly, as text');
  t.match(await page.locator('#c-hostile-title td.why').innerText(), 'got <b onmouseover="window.__xss=1">html</b> & "quotes"', 'the message too');
  t.match(await page.locator('#c-hostile-title td.rb').innerText(), /javascript:window\.__xss="runbook" \(not linked\)/, 'a javascript: runbook is shown, not linked');
  t.match(await page.locator('#c-data-runbook td.rb').innerText(), /\(not linked\)/, 'a data: runbook is shown, not linked');
  const signoff = await page.locator('#panel-signoffs').innerText();
  t.match(signoff, '<img src=x onerror="window.__xss=\'by\'">Eve');
  t.match(signoff, '</td><script>window.__xss="note"</script>');
  t.match(signoff, /javascript:window\.__xss="evidence" \(not linked\)/, 'a javascript: evidence URL is not linked');
  t.match(await page.title(), /hostile/);
  t.equal(dialogs, 0, 'no dialog was opened by injected script');
  t.same(log.errors, [], 'no script error');
  t.same(log.csp, [], 'nothing even tried to run (no CSP refusal)');
  await page.close();
});

t.test('1,000 checks: rendered, live and filterable; the time is reported', async (t) => {
  const override = new Map<number, number>();
  const sections = ['code-quality', 'configuration', 'database', 'infrastructure', 'observability', 'security', 'performance', 'disaster-recovery', 'documentation', 'compliance'];
  const checks: CheckDef[] = Array.from({ length: 1000 }, (_, i) =>
    scripted({
      id: `check-${i}`,
      title: `Checklist line ${i}: a measured property of the system stays within its bound`,
      section: sections[i % sections.length]!,
      severity: (['critical', 'high', 'medium', 'low'] as const)[i % 4],
      phase: (['pre-deploy', 'verify', 'monitor', 'post-deploy'] as const)[i % 4],
      expect: ['n < 900'],
      runbook: `https://runbooks.example.com/readiness/checks/check-${i}`,
      observe: () => {
        const n = override.get(i) ?? i;
        return { value: n, fields: { n } };
      },
    }),
  );
  const ui = await startUi(t, 'thousand', checks);
  await ui.run();
  t.equal(ui.service.views().filter((v) => v.state === 'fail').length, 100, 'precondition: 100 checks fail');
  const ctx = await launchBrowser(t);
  const { page, log } = await openPage(ctx, { width: 1440, height: 900 });
  await page.goto(ui.url);
  await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
    const ready = performance.getEntriesByName('readiness-ui-ready')[0]!;
    return { responseEnd: Math.round(nav.responseEnd), domContentLoaded: Math.round(nav.domContentLoadedEventEnd), usable: Math.round(ready.startTime), transfer: nav.transferSize, decoded: nav.decodedBodySize };
  });
  // Reported, not asserted: a timed assertion fails on a loaded machine (bench/ui-bench.ts measures it).
  t.comment(`1,000 checks: response ${timing.responseEnd} ms, DOMContentLoaded ${timing.domContentLoaded} ms, usable ${timing.usable} ms; ${timing.transfer} bytes transferred, ${timing.decoded} decoded`);
  t.equal(await page.locator('table.checks tbody tr').count(), 1000, 'every check has its row');
  t.ok(timing.transfer > 0 && timing.transfer < timing.decoded / 4, 'the page was sent compressed');

  await page.locator('#only-problems').check();
  const visible = await page.locator('table.checks tbody tr').evaluateAll((rows) => rows.filter((r) => (r as HTMLElement).offsetParent !== null || getComputedStyle(r).display !== 'none').length);
  t.equal(visible, 100, 'the filter leaves the 100 failing checks');

  // A live update reaches the last row of the long page, and the filter follows it.
  override.set(999, 1);
  await ui.run('check-999');
  t.equal(ui.service.scheduler.view('check-999')?.state, 'pass', 'precondition: check-999 passes now');
  await page.waitForFunction(() => document.querySelector('#c-check-999 .badge')?.textContent?.includes('pass'), undefined, { timeout: 60_000 });
  t.equal(await page.locator('#c-check-999').isVisible(), false, 'a check that now passes leaves the filtered view');
  // textContent: the section is off screen, and content-visibility skips rendering it.
  t.equal(await page.locator('[data-count="compliance"]').textContent(), '91 of 100 passing', 'its section count follows');
  t.same(log.errors, []);
  t.same(log.csp, []);
  await page.close();
});
