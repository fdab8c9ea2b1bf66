// Signing off from the status page in headless Chromium: with the keyboard alone, the token
// typed into the page and sent as the bearer header (never kept in a cookie, in storage or
// in the markup), the write going through POST /attestations and its checks, and the result
// seen by `readiness gate`. A wrong token is refused with a message on screen and nothing
// recorded; a revocation from the page turns the item back.
import t from 'tap';
import { axe, launchBrowser, openPage, serious } from './helpers/browser.js';
import { runCli } from './helpers/cli.js';
import { attestationChecks, scripted, startUi } from './helpers/ui.js';

// Chromium on a loaded 2-core machine: generous, still bounded.
t.setTimeout(300_000);

const TOKEN = 'ui-signoff-token-5b7e1c';

const checks = [
  scripted({ id: 'api-health', title: 'API /health answers 200', section: 'verify', phase: 'verify', fields: { status: 'number' }, expect: ['status == 200'], observe: () => ({ value: 200, fields: { status: 200 } }) }),
  ...attestationChecks(`
  - id: signoff-security
    title: "Sign-off: Security Lead"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [security-lead], maxAge: 14d, release: "1.4.2" }
  - id: signoff-qa
    title: "Sign-off: QA Lead"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [qa-lead, engineering-lead], maxAge: 14d }
`),
];

t.test('signing off from the page', async (t) => {
  const ui = await startUi(t, 'signoff-page', checks, TOKEN);
  await ui.run();
  t.equal(ui.service.scheduler.view('signoff-security')?.state, 'fail', 'precondition: the security sign-off is missing');
  const gate = (timeout: string) => runCli(['gate', '--url', ui.url, '--check', 'signoff-security', '--timeout', timeout, '--interval', '200ms'], { timeoutMs: 60_000 });
  const before = await gate('1s');
  t.equal(before.code, 1, `precondition: readiness gate says not ready before the sign-off\n${before.stdout}${before.stderr}`);
  t.match(before.stdout, 'signoff-security');

  const ctx = await launchBrowser(t);

  await t.test('a wrong token is refused with a visible message and nothing is recorded', async (t) => {
    const { page, log } = await openPage(ctx);
    await page.goto(ui.url);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    await page.locator('#tok').fill('not-the-token');
    await page.locator('#who').fill('Mallory');
    await page.locator('#sign-check').selectOption('signoff-security');
    await page.locator('#sign-form button[type=submit]').click();
    const err = page.locator('#sign-err');
    await err.filter({ hasText: /Refused/ }).waitFor();
    t.ok(await err.isVisible(), 'the refusal is on screen');
    t.match(await err.innerText(), /Refused \(403 RDY_FORBIDDEN\): the bearer token is not valid\. Check the API token\. Nothing was recorded\./);
    t.equal(await err.getAttribute('role'), 'alert', 'and announced');
    const list = (await (await fetch(`${ui.url}/attestations`)).json()) as { attestations: unknown[] };
    t.same(list.attestations, [], 'nothing was recorded');

    // No token at all: the page says so before sending anything.
    await page.locator('#tok').fill('');
    await page.locator('#sign-form button[type=submit]').click();
    await err.filter({ hasText: /Enter the API token/ }).waitFor();
    t.pass('a missing token is asked for');
    t.same(log.errors, []);
    t.same(log.csp, []);
    await page.close();
  });

  await t.test('signed with the keyboard alone, then seen by readiness gate', async (t) => {
    const { page, log } = await openPage(ctx);
    const sent: { auth?: string; cookie?: string }[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') sent.push({ auth: r.headers().authorization, cookie: r.headers().cookie });
    });
    await page.goto(ui.url);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    // The first Tab reaches the skip link.
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    // Tab on to the item's "Sign" button (bounded: the page is small).
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.sign === 'signoff-security');
    }
    t.ok(found, 'the Sign button of the item is reachable with Tab');
    await page.keyboard.press('Enter');
    t.equal(await page.evaluate(() => document.activeElement?.id), 'tok', 'Sign moves focus to the token field');
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate(() => document.activeElement?.id), 'who');
    await page.keyboard.type('Ada Lovelace');
    // Forget-token button, then the item (already chosen), the role, the note.
    for (const id of ['forget', 'sign-check', 'sign-role', 'sign-note']) {
      await page.keyboard.press('Tab');
      t.equal(await page.evaluate(() => document.activeElement?.id), id, `Tab reaches ${id}`);
    }
    t.equal(await page.locator('#sign-check').inputValue(), 'signoff-security', 'the item was chosen by its Sign button');
    t.equal(await page.locator('#sign-role').inputValue(), 'security-lead', 'with its only role');
    t.equal(await page.locator('#sign-release').inputValue(), '1.4.2', 'and its release');
    await page.keyboard.type('Pen test findings closed');
    await page.keyboard.press('Enter');
    const ok = page.locator('#sign-ok');
    await ok.filter({ hasText: /Signed signoff-security/ }).waitFor();
    t.match(await ok.innerText(), /Signed signoff-security as security-lead \(Ada Lovelace\), valid until .*\. The item is now pass\./);
    t.equal(await page.locator('#sign-err').innerText(), '', 'no error shown');

    // The write went through the API with the bearer header, and nothing kept the token.
    t.same(sent, [{ auth: `Bearer ${TOKEN}`, cookie: undefined }], 'one POST, with the bearer header and no cookie');
    const kept = await page.evaluate(() => ({ cookie: document.cookie, local: localStorage.length, session: sessionStorage.length, html: document.documentElement.outerHTML }));
    t.equal(kept.cookie, '', 'no cookie');
    t.equal(kept.local, 0, 'nothing in localStorage');
    t.equal(kept.session, 0, 'nothing in sessionStorage');
    t.notMatch(kept.html, TOKEN, 'the token is not in the page markup');
    t.notMatch(await (await fetch(ui.url, { headers: { accept: 'text/html' } })).text(), TOKEN, 'nor in what the server renders');

    // The sign-off table shows it without a reload.
    await page.locator('#panel-signoffs', { hasText: 'Ada Lovelace' }).waitFor();
    const row = await page.locator('#panel-signoffs tr.att.valid').innerText();
    t.match(row, /security-lead\s+Ada Lovelace/);
    t.match(row, /1\.4\.2\s+Pen test findings closed/);
    await page.waitForFunction(() => document.querySelector('#c-signoff-security .badge')?.textContent?.includes('pass'));

    const after = await gate('30s');
    t.equal(after.code, 0, `readiness gate sees the sign-off\n${after.stdout}${after.stderr}`);
    t.match(after.stdout, 'ready');
    t.same(serious(await axe(page)), [], 'axe: no serious or critical violation with the sign-off table filled');
    t.same(log.errors, []);
    t.same(log.csp, []);
    await page.close();
  });

  await t.test('a refusal by the API is shown with its reason; a revocation turns the item back', async (t) => {
    const { page, log } = await openPage(ctx);
    page.on('dialog', (d) => void d.accept());
    await page.goto(ui.url);
    await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
    await page.locator('#tok').fill(TOKEN);
    await page.locator('#who').fill('Ada Lovelace');
    // A release that is not the item's: the API's own check refuses it.
    await page.locator('#sign-check').selectOption('signoff-qa');
    await page.locator('#sign-release').fill('9.9.9');
    await page.locator('#sign-evidence').fill('https://tickets.example.com/QA-7');
    await page.locator('#sign-form button[type=submit]').click();
    await page.locator('#sign-ok', { hasText: 'Signed signoff-qa' }).waitFor();
    t.pass('an item without a fixed release accepts the release typed');
    await page.locator('#sign-check').selectOption('signoff-security');
    t.equal(await page.locator('#sign-release').getAttribute('readonly'), '', 'a per-release item fixes its release');
    await page.evaluate(() => {
      const r = document.getElementById('sign-release') as HTMLInputElement;
      r.readOnly = false;
      r.value = '1.4.1';
    });
    await page.locator('#sign-form button[type=submit]').click();
    await page.locator('#sign-err', { hasText: 'Refused' }).waitFor();
    t.match(await page.locator('#sign-err').innerText(), /Refused \(400 RDY_BAD_ATTESTATION\): attestation rejected: check signoff-security is signed per release: this is release "1\.4\.2", not "1\.4\.1"/);

    // Revoke Ada's security sign-off from its row.
    const revoke = page.locator('#panel-signoffs button[data-check="signoff-security"][data-revoke]');
    t.equal(await revoke.count(), 1, 'the valid sign-off has a Revoke button');
    await revoke.click();
    await page.locator('#sign-ok', { hasText: 'Revoked the sign-off of signoff-security' }).waitFor();
    await page.locator('#panel-signoffs tr.att.revoked', { hasText: 'revoked by Ada Lovelace' }).waitFor();
    await page.waitForFunction(() => document.querySelector('#c-signoff-security .badge')?.textContent?.includes('fail'));
    t.equal(ui.service.scheduler.view('signoff-security')?.state, 'fail', 'the service agrees');
    t.same(log.errors, []);
    t.same(log.csp, []);
    await page.close();
  });
});
