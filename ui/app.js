// @ts-check
// The status page's only script (served from /ui/assets/app.js; the page's CSP allows no
// other). The server renders the whole page; this keeps it current by polling /ui/state
// every 2 s, says when contact is lost, and signs or revokes through the API with a token
// that lives in this tab's memory only (never a cookie, never storage, never the markup).
(() => {
  'use strict';

  const POLL_MS = 2000;
  const TIMEOUT_MS = 4000;
  const STATES = ['pass', 'warn', 'fail', 'error', 'stale', 'pending', 'unconfigured'];

  const root = document.documentElement;
  root.classList.add('js');
  const body = document.body;

  /** Server time minus ours, so "12 s ago" is measured on the service's clock. */
  let skew = Number(body.dataset.now) ? Number(body.dataset.now) - Date.now() : 0;
  const now = () => Date.now() + skew;

  /** @param {string} id */
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ formatting (as render.ts)
  /** @param {number | undefined} v */
  function formatValue(v) {
    if (v === undefined || v === null || !Number.isFinite(v)) return '';
    const abs = Math.abs(v);
    const r = abs >= 100 ? Math.round(v) : abs >= 1 ? Math.round(v * 100) / 100 : Math.round(v * 1000) / 1000;
    return String(r);
  }
  /** @param {number} ms */
  function formatTime(ms) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }
  /** @param {number} ms */
  function ago(ms) {
    const s = Math.max(0, Math.round((now() - ms) / 1000));
    if (s < 90) return `${s} s ago`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
    if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }
  /** @param {number} ms */
  function span(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }
  /** @param {string} text  a checklist duration such as 14d, 1h30m */
  function durationMs(text) {
    /** @type {Record<string, number>} */
    const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };
    let total = 0;
    for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * (unit[m[2] ?? ''] ?? 0);
    return total;
  }

  /** @param {Element} el @param {string} text */
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  /** The deployment's age and its window's time left: ticks every second. @param {ParentNode} scope */
  function tick(scope) {
    for (const el of scope.querySelectorAll('[data-ago]')) setText(el, `(${ago(Number(/** @type {HTMLElement} */ (el).dataset.ago))})`);
    for (const el of scope.querySelectorAll('[data-left]')) setText(el, `${span(Number(/** @type {HTMLElement} */ (el).dataset.left) - now())} left`);
  }

  /** Relative times and countdowns, on the service's clock. @param {ParentNode} scope */
  function refreshTimes(scope) {
    for (const el of scope.querySelectorAll('time.rel')) setText(el, ago(Date.parse(/** @type {HTMLTimeElement} */ (el).dateTime)));
    tick(scope);
  }

  // ------------------------------------------------------------------ contact with the service
  const conn = $('conn');
  let lostSince = 0;
  function contactOk() {
    if (!conn) return;
    if (lostSince || !conn.classList.contains('live')) {
      lostSince = 0;
      conn.classList.remove('lost');
      conn.classList.add('live');
      conn.textContent = '● Live: updates by itself';
    }
  }
  /** @param {unknown} err */
  function contactLost(err) {
    if (!conn || lostSince) return;
    lostSince = Date.now();
    conn.classList.remove('live');
    conn.classList.add('lost');
    const why = err instanceof Error && err.message ? ` (${err.message})` : '';
    conn.textContent = `⚠ Lost contact with the service at ${formatTime(now())}${why}. Retrying; the page shows the state as of then.`;
  }

  /** @param {string} url @param {RequestInit} [init] */
  async function request(url, init = {}) {
    const res = await fetch(url, { cache: 'no-store', credentials: 'omit', signal: AbortSignal.timeout(TIMEOUT_MS), ...init });
    return res;
  }

  /** @param {string} url @param {number[]} [also] statuses that still carry the answer (503 from /readiness) */
  async function getJson(url, also = []) {
    const res = await request(url, { headers: { accept: 'application/json' } });
    if (!res.ok && !also.includes(res.status)) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status });
    return res.json();
  }

  /** Fetches a page of this service as HTML and returns its document. @param {string} url */
  async function getPage(url) {
    const res = await request(url, { headers: { accept: 'text/html' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return new DOMParser().parseFromString(await res.text(), 'text/html');
  }

  // ------------------------------------------------------------------ the overview
  /** @typedef {{ id: string, state: string, reason?: string, message: string, value?: number, lastRun?: number, gating: boolean }} CheckState */
  /** @typedef {{ fp: string, html: string }} Panel */
  /** @typedef {{ gen: string, now: number, title: string, checks: CheckState[], sections: Record<string, { pass: number, total: number, passing: boolean }>, panels: Record<string, Panel> }} State */

  /** Last state applied per check, to skip rows that did not change. @type {Map<string, string>} */
  const applied = new Map();

  /** As render.ts's badge: the word; the style sheet adds the icon. @param {string} state */
  function badge(state) {
    const b = document.createElement('span');
    b.className = `badge s-${state}`;
    b.textContent = state;
    return b;
  }

  /** Brings one row up to date, touching only what differs. @param {HTMLElement} tr @param {CheckState} c */
  function updateRow(tr, c) {
    let changed = false;
    if (!tr.classList.contains(`s-${c.state}`)) {
      for (const s of STATES) tr.classList.remove(`s-${s}`);
      tr.classList.add(`s-${c.state}`);
      tr.querySelector('td.st')?.replaceChildren(badge(c.state));
      changed = true;
    }
    const gating = c.gating ? '1' : '0';
    if (tr.dataset.gating !== gating) tr.dataset.gating = gating;
    const why = tr.querySelector('td.why');
    if (why) {
      const reasonText = c.state === 'pass' ? '' : (c.reason ?? '');
      let reason = why.querySelector('.reason');
      if (reasonText && !reason) {
        reason = document.createElement('span');
        reason.className = 'reason';
        why.prepend(reason, ' ');
      }
      if (reason) {
        if (reasonText) setText(reason, reasonText);
        else reason.remove();
      }
      const msg = why.querySelector('.msg');
      if (msg) setText(msg, c.message);
    }
    const v = tr.querySelector('td.val .v');
    if (v) setText(v, formatValue(c.value));
    const last = tr.querySelector('td.last');
    if (last && c.lastRun !== undefined) {
      let t = last.querySelector('time');
      if (!t) {
        t = document.createElement('time');
        t.className = 'rel';
        last.replaceChildren(t);
      }
      const iso = new Date(c.lastRun).toISOString();
      if (t.dateTime !== iso) t.dateTime = iso;
    }
    if (changed) {
      tr.classList.remove('changed');
      // Restart the highlight (reflow between remove and add).
      void tr.offsetWidth;
      tr.classList.add('changed');
    }
  }

  /** @param {HTMLElement} el @param {Panel} p */
  function replacePanel(el, p) {
    const active = document.activeElement;
    const keep = active && el.contains(active) ? (active.getAttribute('data-revoke') ?? active.getAttribute('data-sign')) : null;
    el.innerHTML = p.html;
    el.dataset.fp = p.fp;
    refreshTimes(el);
    if (keep) {
      // Keyboard focus was on a button that the new markup replaced: put it back, or on the panel.
      const again = el.querySelector(`[data-revoke="${CSS.escape(keep)}"], [data-sign="${CSS.escape(keep)}"]`);
      if (again instanceof HTMLElement) again.focus();
      else {
        el.tabIndex = -1;
        el.focus();
      }
    }
  }

  /** @param {State} s */
  async function applyState(s) {
    if (s.gen !== body.dataset.gen) {
      // The checklist was reloaded (or the service restarted): take the new structure.
      await reloadStructure();
      return;
    }
    skew = s.now - Date.now();
    if (document.title !== s.title) document.title = s.title;
    for (const c of s.checks) {
      const key = JSON.stringify(c);
      if (applied.get(c.id) === key) continue;
      const tr = $(`c-${c.id}`);
      if (tr) updateRow(tr, c);
      applied.set(c.id, key);
    }
    for (const [name, sec] of Object.entries(s.sections)) {
      const el = document.querySelector(`[data-count="${CSS.escape(name)}"]`);
      if (!el) continue;
      setText(el, `${sec.pass} of ${sec.total} passing`);
      el.classList.toggle('ok', sec.passing);
      el.classList.toggle('bad', !sec.passing);
    }
    for (const [name, p] of Object.entries(s.panels)) {
      const el = $(`panel-${name}`);
      if (el && el.dataset.fp !== p.fp) replacePanel(el, p);
    }
    refreshTimes(document);
  }

  async function reloadStructure() {
    const doc = await getPage('/?format=html');
    const main = document.querySelector('main');
    const next = doc.querySelector('main');
    if (!main || !next) return;
    // What the person typed survives; the token was only ever in this tab's memory.
    /** @type {Record<string, string>} */
    const typed = {};
    for (const id of ['tok', 'who']) typed[id] = /** @type {HTMLInputElement | null} */ ($(id))?.value ?? '';
    main.replaceWith(document.adoptNode(next));
    body.dataset.gen = doc.body.dataset.gen ?? '';
    body.dataset.now = doc.body.dataset.now ?? '';
    for (const id of ['tok', 'who']) {
      const input = /** @type {HTMLInputElement | null} */ ($(id));
      if (input) input.value = typed[id] ?? '';
    }
    applied.clear();
    document.title = doc.title;
    applyFilter();
    refreshTimes(document);
  }

  function stateUrl() {
    const q = new URLSearchParams();
    for (const name of ['verdict', 'deployment', 'signoffs']) q.set(name, $(`panel-${name}`)?.dataset.fp ?? '');
    return `/ui/state?${q}`;
  }

  // ------------------------------------------------------------------ one check's page
  async function refreshCheck() {
    const id = body.dataset.check ?? '';
    // /readiness is answered from memory; /checks/:id would read the history from the store.
    let r;
    try {
      r = await getJson(`/readiness?check=${encodeURIComponent(id)}&verbose=1`, [503]);
    } catch (err) {
      // 400: the check left the checklist (a reload): the page will say so.
      if (/** @type {{ status?: number }} */ (err).status === 400) return location.reload();
      throw err;
    }
    const d = r.checks?.[0];
    if (!d) return;
    const last = d.lastRun ? String(Date.parse(d.lastRun)) : '';
    if (d.state === body.dataset.state && last === (body.dataset.last ?? '')) return;
    const doc = await getPage(`/checks/${encodeURIComponent(id)}?format=html`);
    const main = document.querySelector('main');
    const next = doc.querySelector('main');
    if (main && next) main.replaceWith(document.adoptNode(next));
    Object.assign(body.dataset, { state: doc.body.dataset.state ?? '', last: doc.body.dataset.last ?? '', now: doc.body.dataset.now ?? '' });
    skew = Number(doc.body.dataset.now) - Date.now();
    document.title = doc.title;
  }

  // ------------------------------------------------------------------ polling
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let polling = false;
  async function poll() {
    clearTimeout(timer);
    if (polling) return;
    polling = true;
    try {
      if (body.dataset.page === 'overview') await applyState(await getJson(stateUrl()));
      else if (body.dataset.page === 'check') await refreshCheck();
      contactOk();
    } catch (err) {
      contactLost(err);
    } finally {
      polling = false;
      timer = setTimeout(poll, POLL_MS);
    }
  }

  // ------------------------------------------------------------------ filter
  function applyFilter() {
    const box = /** @type {HTMLInputElement | null} */ ($('only-problems'));
    $('checklist')?.classList.toggle('only-problems', Boolean(box?.checked));
  }

  // ------------------------------------------------------------------ signing and revoking
  const input = (/** @type {string} */ id) => /** @type {HTMLInputElement | null} */ ($(id));

  /** @param {string} text @param {boolean} ok */
  function say(text, ok) {
    const okEl = $('sign-ok');
    const errEl = $('sign-err');
    if (okEl) okEl.textContent = ok ? text : '';
    if (errEl) errEl.textContent = ok ? '' : text;
  }

  /** The token and name typed in this tab, or a message saying what is missing. */
  function credentials() {
    const token = input('tok')?.value.trim() ?? '';
    const by = input('who')?.value.trim() ?? '';
    if (!token) return { error: 'Enter the API token first (READINESS_API_TOKEN of this service).' };
    if (!by) return { error: 'Enter your name first: it is recorded with the sign-off.' };
    return { token, by };
  }

  /** POSTs through the API with the bearer token; answers the JSON body or throws a readable message. @param {string} url @param {string} token @param {object} payload */
  async function write(url, token, payload) {
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(payload),
      });
    } catch (err) {
      throw new Error(`Could not reach the service: ${err instanceof Error ? err.message : String(err)}. Nothing was recorded.`);
    }
    let data = {};
    try {
      data = await res.json();
    } catch {
      // a body that is not JSON: the status says enough
    }
    if (!res.ok) {
      const e = /** @type {{ error?: string, message?: string }} */ (data);
      const hint = res.status === 401 || res.status === 403 ? ' Check the API token.' : '';
      throw new Error(`Refused (${res.status}${e.error ? ` ${e.error}` : ''}): ${e.message ?? res.statusText}.${hint} Nothing was recorded.`);
    }
    return data;
  }

  function onCheckChosen() {
    const sel = /** @type {HTMLSelectElement | null} */ ($('sign-check'));
    const roleSel = /** @type {HTMLSelectElement | null} */ ($('sign-role'));
    const opt = sel?.selectedOptions[0];
    if (!sel || !roleSel) return;
    const roles = (opt?.dataset.roles ?? '').split(',').filter(Boolean);
    roleSel.replaceChildren(...roles.map((r) => new Option(r, r)));
    const release = input('sign-release');
    if (release) {
      release.value = opt?.dataset.release ?? '';
      release.readOnly = Boolean(opt?.dataset.release);
    }
    const maxAge = opt?.dataset.maxAge ?? '';
    const maxEl = $('sign-maxage');
    if (maxEl) maxEl.textContent = maxAge || '—';
    const expires = input('sign-expires');
    if (expires) {
      expires.value = '';
      expires.max = maxAge ? new Date(now() + durationMs(maxAge)).toISOString().slice(0, 10) : '';
      expires.min = new Date(now() + 86400000).toISOString().slice(0, 10);
    }
  }

  /** @param {SubmitEvent} ev */
  async function onSign(ev) {
    ev.preventDefault();
    const cred = credentials();
    if (cred.error || !cred.token || !cred.by) return say(cred.error ?? '', false);
    const check = /** @type {HTMLSelectElement} */ ($('sign-check')).value;
    const role = /** @type {HTMLSelectElement} */ ($('sign-role')).value;
    if (!check || !role) return say('Choose the item and the role you sign as.', false);
    /** @type {Record<string, string>} */
    const payload = { check, by: cred.by, role };
    const note = input('sign-note')?.value.trim();
    const evidence = input('sign-evidence')?.value.trim();
    const release = input('sign-release')?.value.trim();
    const expires = input('sign-expires')?.value;
    if (note) payload.note = note;
    if (evidence) payload.evidenceUrl = evidence;
    if (release) payload.release = release;
    // "Expires on" a day: valid until that day begins, here.
    if (expires) payload.expiresAt = new Date(`${expires}T00:00:00`).toISOString();
    say(`Signing ${check}…`, true);
    try {
      const res = /** @type {{ attestation: { by: string, role: string, expiresAt: string }, check: { id: string, state?: string } }} */ (
        await write('/attestations', cred.token, payload)
      );
      say(`Signed ${res.check.id} as ${res.attestation.role} (${res.attestation.by}), valid until ${formatTime(Date.parse(res.attestation.expiresAt))}. The item is now ${res.check.state ?? 'being re-checked'}.`, true);
      for (const id of ['sign-note', 'sign-evidence', 'sign-expires']) {
        const el = input(id);
        if (el) el.value = '';
      }
      void poll();
    } catch (err) {
      say(err instanceof Error ? err.message : String(err), false);
    }
  }

  /** @param {HTMLElement} btn */
  async function onRevoke(btn) {
    const cred = credentials();
    if (cred.error || !cred.token || !cred.by) {
      say(cred.error ?? '', false);
      input(cred.error?.includes('token') ? 'tok' : 'who')?.focus();
      return;
    }
    const id = btn.dataset.revoke ?? '';
    const check = btn.dataset.check ?? '';
    if (!window.confirm(`Revoke this sign-off of ${check}? The item is re-checked at once.`)) return;
    try {
      await write(`/attestations/${encodeURIComponent(id)}/revoke`, cred.token, { by: cred.by });
      say(`Revoked the sign-off of ${check}.`, true);
      void poll();
    } catch (err) {
      say(err instanceof Error ? err.message : String(err), false);
    }
  }

  // Delegated: panels are replaced as they change, the listeners stay.
  document.addEventListener('click', (ev) => {
    const t = ev.target instanceof Element ? ev.target.closest('button') : null;
    if (!t) return;
    if (t.dataset.revoke) void onRevoke(t);
    else if (t.dataset.sign) {
      const sel = /** @type {HTMLSelectElement | null} */ ($('sign-check'));
      if (!sel) return;
      sel.value = t.dataset.sign;
      onCheckChosen();
      $('sign-form')?.scrollIntoView({ block: 'center' });
      (input('tok')?.value ? input('who')?.value ? $('sign-role') : input('who') : input('tok'))?.focus();
    } else if (t.id === 'forget') {
      const tok = input('tok');
      if (tok) tok.value = '';
      say('The token is forgotten.', true);
    }
  });
  document.addEventListener('change', (ev) => {
    const t = /** @type {Element | null} */ (ev.target);
    if (t?.id === 'sign-check') onCheckChosen();
    else if (t?.id === 'only-problems') applyFilter();
  });
  document.addEventListener('submit', (ev) => {
    const t = /** @type {Element | null} */ (ev.target);
    // No form on this page is ever sent by the browser itself (CSP form-action 'none').
    ev.preventDefault();
    if (t?.id === 'sign-form') void onSign(/** @type {SubmitEvent} */ (ev));
  });

  // ------------------------------------------------------------------ start
  refreshTimes(document);
  const deployment = () => $('panel-deployment');
  setInterval(() => {
    const d = deployment();
    if (d) tick(d);
  }, 1000);
  // Only the overview and a check's page have anything to keep current.
  if (body.dataset.page === 'overview' || body.dataset.page === 'check') timer = setTimeout(poll, POLL_MS);
  performance.mark('readiness-ui-ready');
  root.dataset.ready = '1';
})();
