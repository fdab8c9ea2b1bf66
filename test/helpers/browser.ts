/// <reference lib="dom" />
// (The DOM types are for the callbacks that run inside the page: page.evaluate, waitForFunction.)
// Debian's Chromium, headless, driven by playwright-core (its own browser downloads cannot
// work here), with a fresh profile under the test run's temp directory; and axe-core
// injected into a page to audit it. scripts/test.sh installs the `chromium` package.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { removeDir, serviceDir, type Teardown } from './service.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The flags the project runs Chromium with: headless, no sandbox (root in CI), nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One browser per test file: launched on first use, closed (and its profile removed) in teardown. */
export async function launchBrowser(t: Teardown): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does)`);
  const profile = serviceDir('chromium-profile');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    // A loaded 2-core machine starts Chromium slowly; still bounded.
    timeout: 60_000,
  });
  t.teardown(async () => {
    await ctx.close().catch(() => {});
    removeDir(profile);
  });
  return ctx;
}

/** What a page reported while it ran: CSP refusals, script errors, failed requests. */
export interface PageLog {
  console: string[];
  errors: string[];
  csp: string[];
}

export async function openPage(ctx: BrowserContext, opts: { width?: number; height?: number } = {}): Promise<{ page: Page; log: PageLog }> {
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  if (opts.width) await page.setViewportSize({ width: opts.width, height: opts.height ?? 900 });
  const log: PageLog = { console: [], errors: [], csp: [] };
  page.on('console', (m) => {
    const text = `${m.type()}: ${m.text()}`;
    log.console.push(text);
    if (/Content.Security.Policy|Refused to/i.test(m.text())) log.csp.push(text);
  });
  page.on('pageerror', (e) => log.errors.push(e.message));
  return { page, log };
}

const require = createRequire(import.meta.url);
let axeSource: string | undefined;

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/**
 * Runs axe-core in the page. It is evaluated through the DevTools protocol, which the
 * page's CSP does not govern; the page itself still runs under its strict policy.
 */
export async function axe(page: Page): Promise<AxeViolation[]> {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(`${axeSource}\n;0`);
  return page.evaluate(async () => {
    const w = window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeViolation[] }> } };
    const r = await w.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
}

/** Serious and critical violations, one line each, for an assertion message. */
export function serious(violations: AxeViolation[]): string[] {
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}
