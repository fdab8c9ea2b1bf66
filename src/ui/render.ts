// The status page's markup, rendered on the server: it reads completely without script, and
// /ui/assets/app.js only keeps it current. Every value goes through `html` (escaped) and
// every link through `safeHref`, so nothing a checklist, a probe or a person wrote can run.
import { formatDuration } from '../config/duration.js';
import { describeVariable, missingGroups } from '../config/missing.js';
import type { CheckDef } from '../config/types.js';
import type { CheckView } from '../state.js';
import { STATES, type State } from '../store/types.js';
import { Html, html, safeHref } from './html.js';
import type { PageModel, PhaseVerdict, SectionModel, SignoffItem } from './model.js';

/** Icon and label of each state: the icon is decoration, the word is what is read. */
export const STATE_ICON: Record<State, string> = {
  pass: '✓',
  warn: '!',
  fail: '✗',
  error: '⚠',
  stale: '◷',
  pending: '…',
  unconfigured: '⊘',
};

/** Where the page's assets are, with their content hash for caching. */
export interface AssetUrls {
  css: string;
  js: string;
  icon: string;
}

// ---------------------------------------------------------------------------------------
// Formatting (assets/app.js has the same rules for live updates)
// ---------------------------------------------------------------------------------------

/** The measured number, rounded for reading. */
export function formatValue(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '';
  const abs = Math.abs(v);
  const r = abs >= 100 ? Math.round(v) : abs >= 1 ? Math.round(v * 100) / 100 : Math.round(v * 1000) / 1000;
  return String(r);
}

/** `2026-11-27 04:00:05 UTC` */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** `12 s ago`, `3 min ago`, `2 h ago`, `4 d ago`. */
export function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** `1 h 48 min`, `5 min`, `40 s`. */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A state in words; its icon comes from the style sheet (`content: "✓" / ""`, not read out). */
export function badge(state: State): Html {
  return html`<span class="badge s-${state}">${state}</span>`;
}

function link(url: string | undefined, text: Html | string, cls?: string): Html {
  const href = safeHref(url);
  // A URL that may not be linked is still shown, as text, so nobody wonders where it went.
  if (!href) return url ? html`<span class="${cls ?? ''} nolink">${text} <code>${url}</code> (not linked)</span>` : html``;
  // No rel="noreferrer" needed: the page's Referrer-Policy is no-referrer.
  return html`<a href="${href}"${cls ? html` class="${cls}"` : ''}>${text}</a>`;
}

/** A time that app.js keeps relative (`class="rel"`, read from its datetime). */
function rel(ms: number | undefined, now: number | undefined): Html {
  if (ms === undefined) return html`<span class="never">never</span>`;
  return html`<time class="rel" datetime="${iso(ms)}">${now === undefined ? formatTime(ms) : ago(ms, now)}</time>`;
}

/** For an unconfigured check: the variables that would configure it, as `readiness validate` names them. */
function configureHint(v: CheckView): Html {
  const missing = v.state === 'unconfigured' ? (v.def.missing ?? []) : [];
  // "environment variable X is not set" already says it.
  if (missing.every((m) => v.message.includes(m.variable))) return html``;
  return html` <span class="hint">To configure: set ${missing.map((m, i) => html`${i ? ', ' : ''}<code>${describeVariable(m)}</code>`)}</span>`;
}

/** Each variable this environment lacks, once, with how many checks it would configure. */
function unconfiguredSummary(m: PageModel): Html {
  const groups = missingGroups(m.checklist.checks);
  const count = m.checklist.checks.filter((c) => c.unconfigured).length;
  if (groups.length === 0) return html``;
  return html`<details class="missing"><summary>${count} check${count === 1 ? ' is' : 's are'} unconfigured here: the variables that would configure ${count === 1 ? 'it' : 'them'}</summary>
<ul>${groups.map((g) => html`<li><code>${describeVariable(g)}</code>: ${g.checks.length} check${g.checks.length === 1 ? '' : 's'} (${g.checks.map((id, i) => html`${i ? ', ' : ''}<a href="#c-${id}">${id}</a>`)})</li>`)}</ul>
</details>`;
}

function reasonText(reason: string | undefined): Html {
  if (!reason) return html``;
  return html`<span class="reason">${reason}</span>`;
}


// ---------------------------------------------------------------------------------------
// Page shell
// ---------------------------------------------------------------------------------------

function page(opts: { title: string; assets: AssetUrls; body: Html; data: Record<string, string> }): string {
  const data = Object.entries(opts.data).map(([k, v]) => html` data-${k}="${v}"`);
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${opts.title}</title>
<link rel="icon" href="${opts.assets.icon}" type="image/svg+xml">
<link rel="stylesheet" href="${opts.assets.css}">
<script src="${opts.assets.js}" defer></script>
</head>
<body${data}>
${opts.body}
</body>
</html>
`}`;
}

function header(checklist: string, version: string, current: 'overview' | 'check'): Html {
  return html`<a class="skip" href="#main">Skip to content</a>
<header class="top">
<p class="brand"><a href="/"${current === 'overview' ? html` aria-current="page"` : ''}>readiness</a> <span class="cl">${checklist}</span></p>
<nav aria-label="Service"><ul>
<li><a href="/#checklist">Checklist</a></li>
<li><a href="/#signoffs">Sign-offs</a></li>
<li><a href="/readiness">/readiness</a></li>
<li><a href="/metrics">/metrics</a></li>
<li><a href="/docs">API</a></li>
</ul></nav>
<p id="conn" class="conn" role="status"><span class="vh">readiness-exporter ${version}</span></p>
</header>`;
}

// ---------------------------------------------------------------------------------------
// Overview panels: each is replaced whole by app.js when its fingerprint changes
// ---------------------------------------------------------------------------------------

function phaseItem(p: PhaseVerdict): Html {
  const detail =
    p.total === 0
      ? 'no checks'
      : p.failing > 0
        ? `${p.failing} of ${p.total} failing${p.advisory ? `, ${p.advisory} advisory` : ''}`
        : `${p.total} check${p.total === 1 ? '' : 's'}${p.advisory ? `, ${p.advisory} advisory` : ''}`;
  return html`<li class="ph ${p.ready ? 'ok' : 'bad'}"><span class="name">${p.phase}</span> <span class="v"><span class="ic" aria-hidden="true">${p.ready ? '✓' : '✗'}</span> ${p.ready ? 'ready' : 'not ready'}</span> <span class="n">${detail}</span></li>`;
}

/** Overall verdict, each phase as the gate sees it, and the count per state. */
export function verdictPanel(m: PageModel): Html {
  const all = m.phases.find((p) => p.phase === 'all')!;
  const counts = STATES.filter((s) => m.summary[s] > 0).map((s) => html`<li class="s-${s}"><span class="ic" aria-hidden="true">${STATE_ICON[s]}</span> ${m.summary[s]} ${s}</li>`);
  return html`<section class="verdict ${all.ready ? 'ok' : 'bad'}" aria-labelledby="verdict-h">
<h1 id="verdict-h"><span class="ic" aria-hidden="true">${all.ready ? '✓' : '✗'}</span> ${all.ready ? 'Ready' : 'Not ready'}</h1>
<p class="sub">${m.checklist.name}: ${all.failing ? `${all.failing} gating check${all.failing === 1 ? '' : 's'} not passing` : 'every gating check passes'}, ${m.summary.total} checks in all</p>
<ul class="counts" aria-label="Checks by state">${counts}</ul>
<h2 class="vh">Phases</h2>
<ol class="phases">${m.phases.filter((p) => p.phase !== 'all').map(phaseItem)}</ol>
${m.store.ok ? '' : html`<p class="store-bad" role="alert"><span aria-hidden="true">⚠</span> State store degraded: ${m.store.message}</p>`}
</section>`;
}

/**
 * The latest deployment, its monitoring window and the rollback verdict. With `now`
 * undefined the countdowns are left to app.js, so the markup only changes when the data does.
 */
export function deploymentPanel(m: PageModel, now?: number): Html {
  const d = m.deployment;
  if (!d) {
    return html`<section class="deploy none" aria-labelledby="deploy-h">
<h2 id="deploy-h">Deployment</h2>
<p>No deployment recorded yet. <code>readiness deploy-mark --version V</code> (or <code>POST /deployments</code>) opens the post-deploy monitoring window; until then monitor checks only advise and no rollback can be recommended.</p>
</section>`;
  }
  const rb = m.rollback;
  const causes = rb.causes.map(
    (v) => html`<li><a href="/checks/${v.def.id}">${v.def.title}</a> <span class="id">(${v.def.id})</span>: ${badge(v.state)} ${v.message}</li>`,
  );
  const verdict = rb.recommended
    ? html`<div class="rollback" role="alert">
<p class="big"><span class="ic" aria-hidden="true">⚠</span> Roll back recommended</p>
<p>${rb.causes.length} gating monitor check${rb.causes.length === 1 ? '' : 's'} ${rb.causes.length === 1 ? 'is' : 'are'} not passing inside the monitoring window of ${d.version}:</p>
<ul>${causes}</ul>
</div>`
    : m.window.open
      ? html`<p class="no-rollback"><span class="ic" aria-hidden="true">✓</span> No rollback recommended: every gating monitor check passes.</p>`
      : html`<p class="no-rollback closed">Rollback verdict: none (the monitoring window is closed; monitor checks only advise).</p>`;
  const ends = m.window.endsAt;
  const windowText = m.window.open
    ? html`<strong class="open">open</strong>, <span data-left="${ends}">${now === undefined ? '' : `${span(ends! - now)} left`}</span> (until <time datetime="${iso(ends!)}">${formatTime(ends!)}</time>)`
    : ends !== undefined && ends <= m.now
      ? html`closed since <time datetime="${iso(ends)}">${formatTime(ends)}</time>`
      : html`not open yet`;
  return html`<section class="deploy${rb.recommended ? ' rb' : ''}" aria-labelledby="deploy-h">
<h2 id="deploy-h">Deployment</h2>
${verdict}
<dl class="facts">
<dt>Version</dt><dd class="ver">${d.version}</dd>
<dt>Deployed</dt><dd><time datetime="${iso(d.at)}">${formatTime(d.at)}</time> <span data-ago="${d.at}">${now === undefined ? '' : `(${ago(d.at, now)})`}</span></dd>
<dt>By</dt><dd>${d.by ?? 'unknown'} <span class="meta">(via ${d.source})</span></dd>
<dt>Window</dt><dd>${windowText}</dd>
</dl>
</section>`;
}

function attestationRow(a: SignoffItem['attestations'][number], item: SignoffItem): Html {
  const status = a.revokedAt !== undefined ? 'revoked' : a.active ? 'valid' : 'expired';
  return html`<tr class="att ${status}">
<td>${a.role}</td>
<td>${a.by}</td>
<td><time datetime="${iso(a.createdAt)}">${formatTime(a.createdAt)}</time></td>
<td>${status === 'revoked' ? html`<span class="st-revoked">revoked${a.revokedBy ? ` by ${a.revokedBy}` : ''}</span>` : html`<time datetime="${iso(a.expiresAt)}">${formatTime(a.expiresAt)}</time>${status === 'expired' ? html` <span class="st-expired">(expired)</span>` : ''}`}</td>
<td>${a.release ?? ''}</td>
<td class="note">${a.note ?? ''}</td>
<td>${a.evidenceUrl ? link(a.evidenceUrl, 'evidence') : ''}</td>
<td>${a.active ? html`<button type="button" class="js-only" data-revoke="${a.id}" data-check="${item.view.def.id}">Revoke<span class="vh"> the sign-off by ${a.by} of ${item.view.def.id}</span></button>` : ''}</td>
</tr>`;
}

/** The checklist's items answered by people: who signed what, and until when. */
export function signoffsPanel(m: PageModel): Html {
  if (m.signoffs.length === 0) return html`<p>This checklist has no items answered by sign-offs (probe kind <code>attestation</code>).</p>`;
  const groups = m.signoffs.map((item) => {
    const { def } = item.view;
    const head = html`<tr class="item"><th scope="rowgroup" colspan="7"><a href="/checks/${def.id}">${def.title}</a> <span class="meta">${def.id} · roles: ${item.params.roles.join(', ')}${item.params.release ? ` · release ${item.params.release}` : ''}</span></th>
<td>${badge(item.view.state)} <button type="button" class="js-only" data-sign="${def.id}">Sign<span class="vh"> ${def.id}</span></button></td></tr>`;
    const rows = item.attestations.length
      ? item.attestations.map((a) => attestationRow(a, item))
      : html`<tr class="att none"><td colspan="8">Not signed${item.view.message ? html`: <span class="msg">${item.view.message}</span>` : ''}</td></tr>`;
    const more = item.more ? html`<tr class="att more"><td colspan="8">${item.more} older, inactive: <a href="/attestations?check=${def.id}">/attestations?check=${def.id}</a></td></tr>` : '';
    return html`<tbody>${head}${rows}${more}</tbody>`;
  });
  return html`<table class="signoffs">
<caption class="vh">Sign-offs by item</caption>
<thead><tr><th scope="col">Role</th><th scope="col">Name</th><th scope="col">Signed</th><th scope="col">Expires</th><th scope="col">Release</th><th scope="col">Note</th><th scope="col">Evidence</th><th scope="col">State and actions</th></tr></thead>
${groups}
</table>`;
}

// ---------------------------------------------------------------------------------------
// The checklist
// ---------------------------------------------------------------------------------------

function expectText(def: CheckDef): string {
  return def.expect.map((c) => c.source).join(' and ');
}

export function checkRow(v: CheckView, now: number): Html {
  const { def } = v;
  const exp = expectText(def);
  // One line: whitespace between cells would be a thousand text nodes more to parse.
  return html`<tr id="c-${def.id}" class="s-${v.state}" data-gating="${v.gating ? '1' : '0'}"><td class="st">${badge(v.state)}</td><th scope="row"><a href="/checks/${def.id}">${def.title}</a> <span class="meta">${def.id} · ${def.severity} · ${def.phase}</span></th><td class="why">${reasonText(v.state === 'pass' ? undefined : v.reason)} <span class="msg">${v.message}</span>${configureHint(v)}</td><td class="val"><span class="v">${formatValue(v.value)}</span>${exp ? html` <span class="exp">${exp}</span>` : ''}</td><td class="last">${rel(v.lastRun, now)}</td><td class="rb">${def.runbook ? link(def.runbook, html`runbook<span class="vh"> for ${def.id}</span>`) : ''}</td></tr>`;
}

function sectionBlock(s: SectionModel, now: number): Html {
  return html`<section class="sec" id="sec-${s.name}" aria-labelledby="sec-${s.name}-h">
<h3 id="sec-${s.name}-h">${s.name} <span class="count ${s.passing ? 'ok' : 'bad'}" data-count="${s.name}">${s.pass} of ${s.total} passing</span></h3>
<table class="checks">
<thead><tr><th scope="col">State</th><th scope="col">Check</th><th scope="col">Reason and message</th><th scope="col">Value and expectation</th><th scope="col">Last run</th><th scope="col">Runbook</th></tr></thead>
<tbody>${s.checks.map((v) => checkRow(v, now))}</tbody>
</table>
</section>`;
}

/** Everything the sign form needs about the items people can sign. */
function signTools(m: PageModel): Html {
  const bySection = new Map<string, SignoffItem[]>();
  for (const s of m.signoffs) bySection.set(s.view.def.section, [...(bySection.get(s.view.def.section) ?? []), s]);
  const options = [...bySection].map(
    ([sec, items]) =>
      html`<optgroup label="${sec}">${items.map((s) => html`<option value="${s.view.def.id}" data-roles="${s.params.roles.join(',')}" data-release="${s.params.release ?? ''}" data-max-age="${s.params.maxAge}">${s.view.def.title} (${s.view.def.id})</option>`)}</optgroup>`,
  );
  return html`<div class="sign-tools js-only">
<form id="creds" class="creds" autocomplete="off">
<p class="explain">Signing and revoking go through the API with its bearer token. The token stays in this tab's memory only: it is never stored, and it is gone when you reload.</p>
<div class="row"><label for="tok">API token</label> <input id="tok" name="tok" type="password" autocomplete="off" spellcheck="false" required></div>
<div class="row"><label for="who">Your name</label> <input id="who" name="who" autocomplete="name" maxlength="200" required></div>
<button type="button" id="forget">Forget token</button>
</form>
<form id="sign-form" class="sign-form">
<fieldset><legend>Sign an item</legend>
<div class="row"><label for="sign-check">Item</label> <select id="sign-check" required><option value="">Choose…</option>${options}</select></div>
<div class="row"><label for="sign-role">Role</label> <select id="sign-role" required></select></div>
<div class="row"><label for="sign-note">Note</label> <input id="sign-note" maxlength="4000"></div>
<div class="row"><label for="sign-evidence">Evidence URL</label> <input id="sign-evidence" type="url" maxlength="2000" placeholder="https://"></div>
<div class="row"><label for="sign-release">Release</label> <input id="sign-release" maxlength="200"></div>
<div class="row"><label for="sign-expires">Expires on</label> <input id="sign-expires" type="date" aria-describedby="sign-expires-help"> <span id="sign-expires-help" class="help">optional; at most the item's maximum age (<span id="sign-maxage">—</span>), which is also the default</span></div>
<button type="submit">Sign</button>
</fieldset>
</form>
<p id="sign-ok" class="ok-msg" role="status"></p>
<p id="sign-err" class="err-msg" role="alert"></p>
</div>
<noscript><p class="explain">Signing and revoking need JavaScript here (the API token is sent as a header, never stored). Without it: <code>readiness attest CHECK --by NAME --role ROLE</code>.</p></noscript>`;
}

/** Fingerprints let app.js ask for a panel only when it changed. */
export interface Panels {
  verdict: Html;
  deployment: Html;
  signoffs: Html;
}

export function panels(m: PageModel): Panels {
  return { verdict: verdictPanel(m), deployment: deploymentPanel(m), signoffs: signoffsPanel(m) };
}

export function overviewPage(m: PageModel, opts: { assets: AssetUrls; gen: string; fingerprints: Record<keyof Panels, string> }): string {
  const all = m.phases.find((p) => p.phase === 'all')!;
  const title = `${m.rollback.recommended ? 'ROLL BACK · ' : ''}${all.ready ? 'Ready' : 'Not ready'} · ${m.checklist.name}`;
  const toc = m.sections.map((s) => html`<li><a href="#sec-${s.name}">${s.name}</a></li>`);
  const body = html`${header(m.checklist.name, m.version, 'overview')}
<main id="main">
<div class="overview">
<div id="panel-verdict" class="panel" data-fp="${opts.fingerprints.verdict}">${verdictPanel(m)}</div>
<div id="panel-deployment" class="panel" data-fp="${opts.fingerprints.deployment}">${deploymentPanel(m, m.now)}</div>
</div>
<section id="checklist" aria-labelledby="checklist-h">
<h2 id="checklist-h">Checklist</h2>
<div class="tools js-only"><label><input type="checkbox" id="only-problems"> Show only items that are not passing</label></div>
<nav aria-label="Sections" class="toc"><ul>${toc}</ul></nav>
${unconfiguredSummary(m)}
${m.sections.map((s) => sectionBlock(s, m.now))}
</section>
<section id="signoffs" aria-labelledby="signoffs-h">
<h2 id="signoffs-h">Sign-offs</h2>
${signTools(m)}
<div id="panel-signoffs" class="panel" data-fp="${opts.fingerprints.signoffs}">${signoffsPanel(m)}</div>
</section>
</main>`;
  return page({ title, assets: opts.assets, body, data: { page: 'overview', gen: opts.gen, now: String(m.now) } });
}

// ---------------------------------------------------------------------------------------
// One check
// ---------------------------------------------------------------------------------------

/** What GET /checks/:id answers (JSON): the page shows exactly that, secrets already masked. */
export interface CheckDetailJson {
  id: string;
  title: string;
  section: string;
  severity: string;
  phase: string;
  state: State;
  reason?: string;
  message: string;
  value?: number;
  expect: string[];
  lastRun?: string;
  runbook?: string;
  probe: string;
  gate: boolean;
  interval: number;
  schedule?: string;
  timeout: number;
  warn: string[];
  dependsOn: readonly string[];
  params: Record<string, unknown>;
  lastPass?: string;
  durationMs?: number;
  conditions?: { source: string; ok: boolean; text: string }[];
  history: { state: string; reason?: string; message: string; value?: number; startedAt: string; durationMs: number }[];
}

function paramValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function checkPage(d: CheckDetailJson, opts: { assets: AssetUrls; checklist: string; version: string; gating: boolean; now: number }): string {
  const now = opts.now;
  const lastRun = d.lastRun ? Date.parse(d.lastRun) : undefined;
  const oldestFirst = [...d.history].reverse();
  const strip = oldestFirst.map((h) => html`<li class="s-${h.state}" title="${formatTime(Date.parse(h.startedAt))}: ${h.state}"><span aria-hidden="true">${STATE_ICON[h.state as State] ?? '?'}</span><span class="vh">${h.state}</span></li>`);
  const facts: [string, Html | string][] = [
    ['State', html`${badge(d.state)} ${reasonText(d.state === 'pass' ? undefined : d.reason)}`],
    ['Message', d.message],
    ['Value', formatValue(d.value) || 'none'],
    ['Expectation', d.expect.length ? html`${d.expect.map((e, i) => html`${i ? ' and ' : ''}<code>${e}</code>`)}` : 'none'],
    ...(d.warn.length ? ([['Warns unless', html`${d.warn.map((e, i) => html`${i ? ' and ' : ''}<code>${e}</code>`)}`]] as [string, Html][]) : []),
    ['Last run', lastRun === undefined ? 'never' : html`${rel(lastRun, now)} (<time datetime="${d.lastRun}">${formatTime(lastRun)}</time>)`],
    ['Last pass', d.lastPass ? html`<time datetime="${d.lastPass}">${formatTime(Date.parse(d.lastPass))}</time>` : 'never'],
    ...(d.durationMs !== undefined ? ([['Duration', `${d.durationMs} ms`]] as [string, string][]) : []),
    ['Runs', d.schedule ? html`on the schedule <code>${d.schedule}</code>` : `every ${formatDuration(d.interval * 1000)}`],
    ['Timeout', formatDuration(d.timeout * 1000)],
    ['Counts for readiness', d.gate ? (opts.gating ? 'yes' : 'not now (a monitor check gates only inside the window after a deployment)') : 'no (advisory: gate: false)'],
    ['Runbook', d.runbook ? link(d.runbook, d.runbook) : 'none'],
    ...(d.dependsOn.length ? ([['Depends on', html`${d.dependsOn.map((id, i) => html`${i ? ', ' : ''}<a href="/checks/${id}">${id}</a>`)}`]] as [string, Html][]) : []),
  ];
  const body = html`${header(opts.checklist, opts.version, 'check')}
<main id="main" class="check">
<p class="back"><a href="/#c-${d.id}">← Back to the checklist</a></p>
<h1>${d.title}</h1>
<p class="meta">${d.id} · section ${d.section} · ${d.severity} · ${d.phase} · probe <code>${d.probe}</code></p>
<dl class="facts">${facts.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
${d.conditions?.length ? html`<h2>Conditions at the last run</h2><ul class="conds">${d.conditions.map((c) => html`<li class="${c.ok ? 'ok' : 'bad'}"><span class="ic" aria-hidden="true">${c.ok ? '✓' : '✗'}</span> <span class="vh">${c.ok ? 'holds:' : 'does not hold:'}</span> <code>${c.source}</code>: ${c.text}</li>`)}</ul>` : ''}
<h2 id="history-h">Recent history</h2>
${d.history.length
  ? html`<p class="strip-label" id="strip-label">State over the last ${d.history.length} runs, oldest first:</p>
<ol class="strip" aria-labelledby="strip-label">${strip}</ol>
<table class="history" aria-labelledby="history-h">
<thead><tr><th scope="col">Started</th><th scope="col">State</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Value</th><th scope="col">Duration</th></tr></thead>
<tbody>${d.history.map((h) => html`<tr class="s-${h.state}"><td><time datetime="${h.startedAt}">${formatTime(Date.parse(h.startedAt))}</time></td><td>${badge(h.state as State)}</td><td>${h.reason ?? ''}</td><td class="msg">${h.message}</td><td>${formatValue(h.value)}</td><td>${h.durationMs} ms</td></tr>`)}</tbody>
</table>`
  : html`<p>No run recorded yet.</p>`}
<h2 id="params-h">Parameters</h2>
${Object.keys(d.params).length
  ? html`<table class="params" aria-labelledby="params-h"><thead><tr><th scope="col">Parameter</th><th scope="col">Value</th></tr></thead>
<tbody>${Object.entries(d.params).map(([k, v]) => html`<tr><th scope="row"><code>${k}</code></th><td><code>${paramValue(v)}</code></td></tr>`)}</tbody></table>
<p class="help">Secrets are shown as <code>***</code>, exactly as <a href="/checks/${d.id}?format=json">GET /checks/${d.id}</a> shows them.</p>`
  : html`<p>None.</p>`}
</main>`;
  return page({
    title: `${d.state} · ${d.title} · ${opts.checklist}`,
    assets: opts.assets,
    body,
    data: { page: 'check', check: d.id, now: String(now), last: lastRun === undefined ? '' : String(lastRun), state: d.state },
  });
}

/** A browser asking for a check that does not exist (a stale bookmark after a reload). */
export function notFoundPage(id: string, opts: { assets: AssetUrls; checklist: string; version: string }): string {
  const body = html`${header(opts.checklist, opts.version, 'check')}
<main id="main" class="check">
<h1>No check with id <code>${id}</code></h1>
<p>The checklist <strong>${opts.checklist}</strong> has no such check (it may have been renamed or removed when the checklist was reloaded).</p>
<p><a href="/">Back to the checklist</a></p>
</main>`;
  return page({ title: `No such check · ${opts.checklist}`, assets: opts.assets, body, data: { page: 'missing' } });
}
