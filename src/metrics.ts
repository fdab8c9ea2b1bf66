// The metric families of DESIGN.md and the exporter's own readiness_exporter_* health.
//
// The per-check families are rendered from bytes kept current as checks change, not rebuilt
// per scrape. A view is replaced (ViewCache) only when its check changes; its lines for every
// family are encoded once for that view into one small Buffer (CheckText). Each family's
// lines for a block of BLOCK_CHECKS checks are kept as one Buffer, rebuilt (by copying the
// checks' byte ranges, no string work) only when a check of the block changed that family's
// bytes; a family none of whose blocks changed for two scrapes is kept whole. A scrape of
// 10,000 checks where a few hundred checks ran since the last one copies the blocks of the
// families a run changes (last run, duration, runs) and hands every other piece over as it
// is: it never sets prom-client series, never joins 100,000 strings, never encodes or copies
// 10 MB of text (the HTTP layer writes the pieces to the socket, see `scrapeParts`). Every
// readiness_* family of one scrape comes from one snapshot of the views, taken at once: they
// describe one instant even though rendering yields to the event loop (so a /readiness
// request never waits for a scrape). The exporter's own health and the process metrics stay
// on a prom-client registry (injected, no global state).
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { PHASES } from './config/schema.js';
import type { Checklist } from './config/types.js';
import type { SchedulerStats } from './scheduler.js';
import type { CheckView } from './state.js';
import { isPassing, STATES, type StoreHealth } from './store/types.js';

/** What the collectors read at scrape time. */
export interface MetricsSource {
  checklist(): Checklist;
  /** Every check's view; a view object is replaced when (and only when) the check changes. */
  views(now?: number): readonly CheckView[];
  schedulerStats(): SchedulerStats;
  storeHealth(): StoreHealth;
  rollbackRecommended(views?: readonly CheckView[]): boolean;
  deploymentWindow(now?: number): { deployment?: { at: number; version: string }; open: boolean };
  reloads(): { success: number; failure: number; lastSuccessful: boolean; lastSuccessAt: number };
  version: string;
}

/** prom-client's nodejs_active_*_total are gauges whose names end in _total: promtool rejects them. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Checks per cached block of a family's lines. */
export const BLOCK_CHECKS = 32;
/**
 * Work between two turns of the event loop while rendering, in units of one check's lines: a
 * changed view costs 4 (its lines built and encoded), a rebuilt family block one per check in it.
 */
export const WORK_PER_TURN = 1_000;

export interface ExporterMetrics {
  /** The exporter's own health and process metrics (the readiness_* families are rendered as text). */
  registry: Registry;
  contentType: string;
  /** One exposition: every readiness_* family from one snapshot of the views. */
  scrape(): Promise<string>;
  /**
   * The same exposition as bytes, in the pieces kept (no 10 MB string to encode, no 10 MB
   * buffer to copy): write them to the socket as they are (see sendParts). Never mutated.
   */
  scrapeParts(): Promise<Buffer[]>;
  /** The pieces in one Buffer. */
  scrapeBuffer(): Promise<Buffer>;
  /** Per-check line sets built so far: a test's proof that a scrape without changes builds none. */
  linesBuilt(): number;
  /** Family blocks (BLOCK_CHECKS checks' lines of one family) built so far: the same proof for the bytes. */
  blocksBuilt(): number;
  /**
   * Bytes of check series copied or encoded so far (lines, blocks, whole families): a scrape
   * without changes copies none, one that follows a few changes copies the blocks they touch.
   */
  bytesCopied(): number;
}

/** Prometheus text format escaping, as prom-client does it. */
const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string) => escapeHelp(s).replace(/"/g, '\\"');
/** A sample value as prom-client writes it. */
function num(x: number): string {
  if (Number.isNaN(x)) return 'Nan';
  if (!Number.isFinite(x)) return x < 0 ? '-Inf' : '+Inf';
  return `${x}`;
}

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
}

const header = (f: Family) => `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}`;

/** A family of one sample per check (or none), labelled by check only. */
function perCheck(name: string, help: string, read: (v: CheckView) => number | undefined) {
  return {
    name,
    help,
    type: 'gauge' as const,
    lines(v: CheckView, check: string): string {
      const x = read(v);
      return x !== undefined && Number.isFinite(x) ? `\n${name}{check="${check}"} ${num(x)}` : '';
    },
  };
}

/**
 * The per-check families in exposition order. Each renders one check's lines, each line
 * starting with a newline, from its view alone; label names, order and values exactly as
 * the prom-client gauges they replace wrote them (docs/metrics.md).
 */
const CHECK_FAMILIES: (Family & { lines(v: CheckView, check: string): string })[] = [
  {
    name: 'readiness_check_passing',
    help: 'Whether the check is passing (state pass or warn): 1 or 0.',
    type: 'gauge',
    lines: (v, check) =>
      `\nreadiness_check_passing{check="${check}",section="${escapeLabel(v.def.section)}",severity="${escapeLabel(v.def.severity)}",phase="${escapeLabel(v.def.phase)}"} ${isPassing(v.state) ? 1 : 0}`,
  },
  {
    name: 'readiness_check_state',
    help: 'The check state, one-hot over pass, warn, fail, error, stale, pending and unconfigured.',
    type: 'gauge',
    lines: (v, check) => STATES.map((s) => `\nreadiness_check_state{check="${check}",state="${s}"} ${v.state === s ? 1 : 0}`).join(''),
  },
  {
    name: 'readiness_check_failure_info',
    help: 'Why a non-passing check is not passing: 1 for its current reason (a fixed list, see docs/metrics.md).',
    type: 'gauge',
    lines: (v, check) => (!isPassing(v.state) && v.reason ? `\nreadiness_check_failure_info{check="${check}",reason="${escapeLabel(v.reason)}"} 1` : ''),
  },
  perCheck('readiness_check_value', 'The number the check measured (days left, percent, seconds, count), when it has one.', (v) => v.value),
  perCheck('readiness_check_last_run_timestamp_seconds', 'Unix time at which the last run of the check ended.', (v) => (v.lastRun === undefined ? undefined : v.lastRun / 1000)),
  perCheck('readiness_check_last_pass_timestamp_seconds', 'Unix time at which the last passing run of the check ended.', (v) => (v.lastPass === undefined ? undefined : v.lastPass / 1000)),
  perCheck('readiness_check_interval_seconds', 'Configured interval of the check (for a cron schedule, the gap between firings).', (v) => v.def.intervalMs / 1000),
  perCheck('readiness_check_duration_seconds', 'Duration of the last run of the check.', (v) => (v.durationMs === undefined ? undefined : v.durationMs / 1000)),
  {
    // Issue 13: what the check's failure means for a person, for the alert rules to route on,
    // with its probe kind and its expectation for the page's text. Values come from the
    // checklist (the conditions as written, before ${VAR} substitution): never a secret.
    name: 'readiness_check_info',
    help: "Always 1: the check's probe kind, what its failure means for a person (notify: rollback, page, ticket, none) and its expect conditions as written.",
    type: 'gauge',
    lines: (v, check) =>
      `\nreadiness_check_info{check="${check}",probe="${escapeLabel(v.def.kind)}",notify="${escapeLabel(v.def.notify)}",expect="${escapeLabel(v.def.expect.map((e) => e.source).join(' and '))}"} 1`,
  },
  {
    name: 'readiness_check_runs_total',
    help: 'Runs of the check made by this process, by resulting state (in HA, sum over the replicas for the total).',
    type: 'counter',
    lines: (v, check) => {
      let out = '';
      // This process's runs (CheckView.runs), not the shared total: see docs/metrics.md, "Several replicas".
      for (const [result, n] of Object.entries(v.runs ?? {})) if (n) out += `\nreadiness_check_runs_total{check="${check}",result="${escapeLabel(result)}"} ${num(n)}`;
      return out;
    },
  },
];

const READY: Family = { name: 'readiness_ready', help: 'Whether every gating check of the phase passes: 1 or 0; phase="all" covers the whole checklist.', type: 'gauge' };
const ROLLBACK: Family = {
  name: 'readiness_rollback_recommended',
  help: 'Whether a gating monitor-phase check cannot show it is healthy (fail, error, no data, stale) inside the window after the latest deployment: 1 or 0.',
  type: 'gauge',
};
const DEPLOYMENT_TS: Family = {
  name: 'readiness_deployment_timestamp_seconds',
  help: 'Unix time the latest recorded deployment went out (POST /deployments); absent before the first.',
  type: 'gauge',
};
const WINDOW_OPEN: Family = { name: 'readiness_deployment_window_open', help: 'Whether the post-deploy monitoring window of the latest deployment is open: 1 or 0.', type: 'gauge' };
const DEPLOYMENT_INFO: Family = {
  name: 'readiness_deployment_info',
  help: 'Always 1 while a deployment is recorded: the version of the latest one (absent before the first).',
  type: 'gauge',
};
const BUILD_INFO: Family = { name: 'readiness_build_info', help: 'Always 1; labels carry the exporter version and the loaded checklist name.', type: 'gauge' };

/** Every readiness_* family name this module renders as text (the registry holds the rest). */
export const RENDERED_FAMILIES = [...CHECK_FAMILIES, READY, ROLLBACK, DEPLOYMENT_TS, WINDOW_OPEN, DEPLOYMENT_INFO, BUILD_INFO].map((f) => f.name);

/** A release version as a label value: the characters versions and image tags use, at most 128 of them. */
export function versionLabel(version: string): string {
  return version.replace(/[^\w.+:@/-]/g, '_').slice(0, 128);
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One check's lines of every family, built once per view, with their lengths in bytes. */
interface CheckText {
  view: CheckView;
  lines: string[];
  bytes: number[];
  /** Every line is ASCII: bytes are characters, and a block of them is written as latin1 (a copy, no encoding). */
  ascii: boolean;
}

/** A block of BLOCK_CHECKS consecutive checks: the texts it was built from and, per family, their lines. */
interface Block {
  texts: CheckText[];
  bytes: Buffer[];
}

export function createMetrics(source: MetricsSource): ExporterMetrics {
  const src = source;
  const reg = new Registry();
  const registers = [reg];
  const FAMILIES = CHECK_FAMILIES.length;
  let built = 0;
  let blocksBuilt = 0;
  let copied = 0;
  /** Families joined into one Buffer so far. */
  let joined = 0;

  /** Per slot of the checklist, the text of the view last rendered there. */
  let texts: (CheckText | undefined)[] = [];
  const textOf = (i: number, v: CheckView): CheckText => {
    const kept = texts[i];
    if (kept !== undefined && kept.view === v) return kept;
    const check = escapeLabel(v.def.id);
    const lines = CHECK_FAMILIES.map((f) => f.lines(v, check));
    // A line is ASCII when its UTF-8 length is its length (no regular expression over each line).
    const bytes = lines.map((l) => Buffer.byteLength(l));
    const ascii = lines.every((l, f) => l.length === bytes[f]);
    const text = { view: v, lines, bytes, ascii };
    texts[i] = text;
    built++;
    return text;
  };

  /**
   * Each block of BLOCK_CHECKS consecutive views. Replaced (never mutated) when rebuilt, so a
   * scrape that yielded keeps the blocks it took; two scrapes of different snapshots each use
   * the blocks of their own.
   */
  let cache: Block[] = [];
  const headers = CHECK_FAMILIES.map((f) => Buffer.from(header(f)));
  const SEP = Buffer.from('\n\n');

  /** The block of views [from, to) of `views`, reusing the cached bytes of every family whose lines did not change. */
  function block(b: number, views: readonly CheckView[], from: number, to: number): { bytes: Buffer[]; work: number } {
    const old = cache[b];
    const n = to - from;
    let work = 0;
    const mine: CheckText[] = new Array<CheckText>(n);
    const changed: number[] = [];
    for (let i = 0; i < n; i++) {
      const kept = texts[from + i];
      if (kept === undefined || kept.view !== views[from + i]) work += 4;
      const t = (mine[i] = textOf(from + i, views[from + i]!));
      if (old?.texts[i] !== t) changed.push(i);
    }
    if (old !== undefined && old.texts.length === n && changed.length === 0) return { bytes: old.bytes, work };
    // A different check in a slot (a reload) changes every family.
    const same = old !== undefined && old.texts.length === n && changed.every((i) => old.texts[i]!.view.def.id === mine[i]!.view.def.id);
    const bytes: Buffer[] = new Array<Buffer>(FAMILIES);
    for (let f = 0; f < FAMILIES; f++) {
      if (same && changed.every((i) => old.texts[i]!.lines[f] === mine[i]!.lines[f])) {
        bytes[f] = old.bytes[f]!;
        continue;
      }
      let length = 0;
      for (const t of mine) length += t.bytes[f]!;
      // Its own memory, not a slice of the shared pool: a kept block must not pin 8 KiB of others.
      // Each line written where it goes: no block-long string to concatenate and flatten (garbage
      // the young generation would scavenge on every scrape).
      const out = Buffer.allocUnsafeSlow(length);
      let at = 0;
      for (const t of mine) {
        const l = t.lines[f]!;
        if (l.length > 0) at += out.write(l, at, t.bytes[f]!, t.ascii ? 'latin1' : 'utf8');
      }
      bytes[f] = out;
      blocksBuilt++;
      copied += length;
      work += n;
    }
    cache[b] = { texts: mine, bytes };
    return { bytes, work };
  }

  /**
   * Per family, the blocks of the last scrape and, once a family came out of two scrapes in a
   * row with the same blocks, those blocks in one Buffer: a family that does not change (the
   * state, info and interval of checks that keep passing) is one piece, not hundreds.
   */
  const whole: { blocks: Buffer[]; joined?: Buffer }[] = CHECK_FAMILIES.map(() => ({ blocks: [] }));
  function family(f: number, blocks: Buffer[]): Buffer[] {
    const w = whole[f]!;
    const same = w.blocks.length === blocks.length && w.blocks.every((x, i) => x === blocks[i]);
    if (!same) {
      whole[f] = { blocks };
      return blocks;
    }
    if (!w.joined) {
      w.joined = Buffer.concat(blocks);
      copied += w.joined.length;
      joined++;
    }
    return [w.joined];
  }

  /** The tail families (readiness_ready and the deployment's), kept per snapshot of views. */
  let tailOf: { views: readonly CheckView[]; key: string; bytes: Buffer } | undefined;
  function tail(views: readonly CheckView[], window: ReturnType<MetricsSource['deploymentWindow']>, checklist: string): Buffer {
    const key = `${window.open}|${window.deployment?.at}|${window.deployment?.version}|${checklist}|${src.version}`;
    if (tailOf?.views === views && tailOf.key === key) return tailOf.bytes;
    const rollback = src.rollbackRecommended(views);
    // isReady per phase, in one pass: ready while every gating check of the phase passes.
    const notReady = new Set<string>();
    for (const v of views) if (v.gating && !isPassing(v.state)) notReady.add(v.def.phase);
    const parts: string[] = [];
    const ready = PHASES.map((phase) => `\nreadiness_ready{phase="${phase}"} ${notReady.has(phase) ? 0 : 1}`).join('');
    parts.push(`${header(READY)}${ready}\nreadiness_ready{phase="all"} ${notReady.size === 0 ? 1 : 0}`);
    parts.push(`${header(ROLLBACK)}\nreadiness_rollback_recommended ${rollback ? 1 : 0}`);
    // Absent before the first deployment: a 0 would read as a deployment at the epoch.
    parts.push(`${header(DEPLOYMENT_TS)}${window.deployment ? `\nreadiness_deployment_timestamp_seconds ${num(window.deployment.at / 1000)}` : ''}`);
    parts.push(`${header(WINDOW_OPEN)}\nreadiness_deployment_window_open ${window.open ? 1 : 0}`);
    // The version the rollback page names (issue 13); absent before the first deployment.
    parts.push(`${header(DEPLOYMENT_INFO)}${window.deployment ? `\nreadiness_deployment_info{version="${escapeLabel(versionLabel(window.deployment.version))}"} 1` : ''}`);
    parts.push(`${header(BUILD_INFO)}\nreadiness_build_info{version="${escapeLabel(src.version)}",checklist="${escapeLabel(checklist)}"} 1`);
    tailOf = { views, key, bytes: Buffer.from(parts.join('\n\n')) };
    return tailOf.bytes;
  }

  /** The readiness_* families of one instant; yields to the event loop between slices. */
  async function render(): Promise<Buffer[]> {
    const now = Date.now();
    // The one instant every family describes: the views of now, taken at once.
    const views = src.views(now);
    const window = src.deploymentWindow(now);
    const checklist = src.checklist().name;
    const blocks = Math.ceil(views.length / BLOCK_CHECKS);
    if (cache.length > blocks) cache = cache.slice(0, blocks);
    if (texts.length > views.length) texts = texts.slice(0, views.length);
    const perFamily: Buffer[][] = CHECK_FAMILIES.map(() => []);
    let work = 0;
    for (let b = 0; b < blocks; b++) {
      const done = block(b, views, b * BLOCK_CHECKS, Math.min(views.length, (b + 1) * BLOCK_CHECKS));
      for (let f = 0; f < FAMILIES; f++) perFamily[f]!.push(done.bytes[f]!);
      work += done.work;
      if (work >= WORK_PER_TURN) {
        work = 0;
        await turn();
      }
    }
    // The tail (readiness_ready over every view, the rollback verdict, the deployment) in a turn
    // of its own, from what was read at that instant.
    await turn();
    const end = tail(views, window, checklist);
    const out: Buffer[] = [];
    for (let f = 0; f < FAMILIES; f++) {
      out.push(headers[f]!);
      const joins = joined;
      for (const part of family(f, perFamily[f]!)) if (part.length > 0) out.push(part);
      out.push(SEP);
      // Joining a family copies up to a few MB: one join per turn.
      if (joined !== joins) await turn();
    }
    out.push(end);
    return out;
  }

  // The exporter's own health.
  new Counter({
    name: 'readiness_exporter_config_reloads_total',
    help: 'Checklist reloads (SIGHUP) by result: success or failure (the old checklist keeps running).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const r = src.reloads();
      this.inc({ result: 'success' }, r.success);
      this.inc({ result: 'failure' }, r.failure);
    },
  });
  new Gauge({
    name: 'readiness_exporter_config_last_reload_successful',
    help: 'Whether the last checklist load succeeded: 1 or 0.',
    registers,
    collect() {
      this.set(src.reloads().lastSuccessful ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_exporter_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful checklist load.',
    registers,
    collect() {
      this.set(src.reloads().lastSuccessAt / 1000);
    },
  });
  new Gauge({
    name: 'readiness_exporter_checks',
    help: 'Checks in the loaded checklist.',
    registers,
    collect() {
      this.set(src.checklist().checks.length);
    },
  });
  new Gauge({
    name: 'readiness_exporter_scheduler_lag_seconds',
    help: 'Largest delay between a run being due and starting, since the previous scrape.',
    registers,
    collect() {
      const s = src.schedulerStats();
      this.set(s.maxLagSeconds);
      s.maxLagSeconds = s.lagSeconds;
    },
  });
  new Gauge({
    name: 'readiness_exporter_runs_in_flight',
    help: 'Check runs executing now.',
    registers,
    collect() {
      this.set(src.schedulerStats().running);
    },
  });
  new Gauge({
    name: 'readiness_exporter_runs_queued',
    help: 'Check runs due but waiting for the concurrency cap.',
    registers,
    collect() {
      this.set(src.schedulerStats().queued);
    },
  });
  new Counter({
    name: 'readiness_exporter_scheduler_skipped_runs_total',
    help: 'Scheduled runs skipped because the previous run of the same check was still in progress, or started so late that the slot would come within half an interval of it.',
    registers,
    collect() {
      this.reset();
      this.inc(src.schedulerStats().skipped);
    },
  });
  new Gauge({
    name: 'readiness_exporter_store_up',
    help: 'Whether the state store accepts writes: 1 or 0 (degraded).',
    registers,
    collect() {
      this.set(src.storeHealth().ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'readiness_exporter_store_queued_results',
    help: 'Check results held in memory while the store is unavailable (drained when it returns).',
    registers,
    collect() {
      this.set(src.storeHealth().queued ?? 0);
    },
  });
  new Counter({
    name: 'readiness_exporter_results_discarded_total',
    help: 'Results not published: fenced (HA: this replica no longer held the check\'s lease) or superseded (a result computed from newer records, or a later run, is stored).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const d = src.storeHealth().discarded ?? { fenced: 0, superseded: 0 };
      this.inc({ reason: 'fenced' }, d.fenced);
      this.inc({ reason: 'superseded' }, d.superseded);
    },
  });
  new Counter({
    name: 'readiness_exporter_store_errors_total',
    help: 'Failed writes to the state store.',
    registers,
    collect() {
      this.reset();
      this.inc(src.schedulerStats().storeErrors + (src.storeHealth().errors ?? 0));
    },
  });

  collectDefaultMetrics({ register: reg });
  for (const name of LINT_FAILING_DEFAULTS) reg.removeSingleMetric(name);
  return {
    registry: reg,
    contentType: reg.contentType,
    async scrape() {
      return (await this.scrapeBuffer()).toString();
    },
    async scrapeParts() {
      const parts = await render();
      // The process metrics in a later turn than the last block: a request that came in meanwhile goes first.
      await turn();
      const own = await reg.metrics();
      parts.push(SEP, Buffer.from(own));
      return parts;
    },
    async scrapeBuffer() {
      return Buffer.concat(await this.scrapeParts());
    },
    linesBuilt: () => built,
    blocksBuilt: () => blocksBuilt,
    bytesCopied: () => copied,
  };
}
