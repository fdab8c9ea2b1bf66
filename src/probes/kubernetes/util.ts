// Small pieces the measurements share: label selectors (the string form of a param and the
// LabelSelector of an object), resource quantities, timestamps, and offender lists.
import type { V1LabelSelector } from '@kubernetes/client-node';
import { formatDuration, parseDuration } from '../../config/duration.js';
import type { Observation } from '../types.js';
import type { Wire } from './resources.js';

type Labels = Record<string, string> | undefined;

/** One requirement of a parsed selector string. */
interface Requirement {
  key: string;
  op: 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

export type Selector = (labels: Labels) => boolean;

const KEY = '[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?';
const VALUE = '([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?';
const EQ_RE = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const SET_RE = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const EXISTS_RE = new RegExp(`^(!?)\\s*(${KEY})$`);

/** Parses a label selector string as kubectl accepts it; throws with a one-line reason. */
export function parseSelector(text: string): Selector {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  const reqs: Requirement[] = parts.map((raw) => {
    const s = raw.trim();
    let m = SET_RE.exec(s);
    if (m) {
      const values = m[4]!.split(',').map((v) => v.trim()).filter((v) => v !== '');
      if (values.length === 0) throw new Error(`"${s}": empty value set`);
      return { key: m[1]!, op: m[3] as 'in' | 'notin', values };
    }
    m = EQ_RE.exec(s);
    if (m) return { key: m[1]!, op: m[3] === '!=' ? 'notin' : 'in', values: [m[4] ?? ''] };
    m = EXISTS_RE.exec(s);
    if (m) return { key: m[2]!, op: m[1] ? '!exists' : 'exists', values: [] };
    throw new Error(`"${s}" is not a label requirement (key=value, key!=value, key in (a,b), key notin (a,b), key, !key)`);
  });
  return (labels) => reqs.every((r) => matches(r, labels));
}

function matches(r: Requirement, labels: Labels): boolean {
  const has = labels !== undefined && Object.hasOwn(labels, r.key);
  switch (r.op) {
    case 'exists':
      return has;
    case '!exists':
      return !has;
    case 'in':
      return has && r.values.includes(labels![r.key]!);
    case 'notin':
      return !has || !r.values.includes(labels![r.key]!);
  }
}

/**
 * Whether an object's LabelSelector selects these labels. An empty selector selects
 * everything; a missing one selects nothing (PodDisruptionBudget policy/v1 semantics).
 */
export function selects(sel: Wire<V1LabelSelector> | undefined, labels: Labels): boolean {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels?.[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const op = e.operator === 'In' ? 'in' : e.operator === 'NotIn' ? 'notin' : e.operator === 'Exists' ? 'exists' : e.operator === 'DoesNotExist' ? '!exists' : undefined;
    if (!op || !matches({ key: e.key, op, values: e.values ?? [] }, labels)) return false;
  }
  return true;
}

/** True for `{}` (no matchLabels, no matchExpressions): selects every pod of the namespace. */
export function isEmptySelector(sel: Wire<V1LabelSelector> | undefined): boolean {
  return sel !== undefined && Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0;
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

/** A resource quantity (`250m`, `1.5`, `512Mi`, `1e3`, `129M`) as a number (cores, bytes); undefined when malformed. */
export function parseQuantity(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === 'number') return q;
  const m = QUANTITY.exec(q.trim());
  if (!m) return undefined;
  return Number(m[1]) * 10 ** Number(m[2] ?? 0) * SUFFIX[m[3] ?? '']!;
}

/** Epoch ms of an RFC 3339 timestamp (or Date), undefined when absent or unparseable. */
export function ms(t: string | Date | undefined): number | undefined {
  if (t === undefined) return undefined;
  const n = new Date(t).getTime();
  return Number.isFinite(n) ? n : undefined;
}

/** `3h12m ago`-style ages. */
export function ago(deltaMs: number): string {
  return deltaMs < 1000 ? 'just now' : `${formatDuration(deltaMs)} ago`;
}

/** A duration param as milliseconds (validated at load, so a bad one here is a bug). */
export function durationMs(text: string): number {
  const v = parseDuration(text);
  if (v === undefined) throw new Error(`bad duration ${JSON.stringify(text)}`);
  return v;
}

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Offender lists in messages are cut here: the rest is counted. */
const SHOWN = 8;

/** `label: a (why), b (why) and 3 more`. */
export function listOffenders(label: string, offenders: readonly string[]): string {
  const shown = offenders.slice(0, SHOWN).join(', ');
  const more = offenders.length > SHOWN ? ` and ${offenders.length - SHOWN} more` : '';
  return `${label}: ${shown}${more}`;
}

/**
 * The observation of a measurement: fields (with the common total/offending/offenders), and a
 * failure naming the offenders when the rule is enforced and broken.
 */
export function verdict(opts: {
  enforce: boolean;
  total: number;
  offenders: string[];
  /** Failure message prefix, e.g. `pods not Running`. */
  label: string;
  /** Message when nothing offends. */
  ok: string;
  fields: Record<string, unknown>;
  /** The check's value (default: the number of offenders). */
  value?: number | undefined;
  notes?: string[];
}): Observation {
  const { offenders } = opts;
  const notes = opts.notes?.length ? ` (${opts.notes.join('; ')})` : '';
  const fields = { total: opts.total, offending: offenders.length, offenders, ...opts.fields };
  // An explicit `value: undefined` means there is no number to report (nothing was found).
  const value = Object.hasOwn(opts, 'value') ? opts.value : offenders.length;
  const v = value === undefined ? {} : { value };
  if (offenders.length > 0) {
    const message = listOffenders(opts.label, offenders) + notes;
    if (opts.enforce) return { ...v, fields, failure: { reason: 'condition', message } };
    return { ...v, fields, message };
  }
  return { ...v, fields, message: opts.ok + notes };
}

/** `Deployment offgridflow/api`. */
export function ref(kind: string, meta: { namespace?: string; name?: string } | undefined): string {
  return `${kind} ${meta?.namespace ? `${meta.namespace}/` : ''}${meta?.name ?? '?'}`;
}

/** `offgridflow/api`. */
export function nsName(meta: { namespace?: string; name?: string } | undefined): string {
  return `${meta?.namespace ? `${meta.namespace}/` : ''}${meta?.name ?? '?'}`;
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
