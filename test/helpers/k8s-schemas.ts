// Validates Kubernetes objects offline, as `kubectl apply` against an API server would:
// - built-in kinds with kubernetes-models' validators (types, enums, required fields, formats),
//   plus unknown fields rejected (the API server's strict field validation) using the field
//   lists of @kubernetes/client-node's models;
// - custom resources (ServiceMonitor, PrometheusRule, AnalysisTemplate, Canary) against the
//   openAPIV3Schema of their upstream CRDs (test/fixtures/crd-schemas/), structural: unknown
//   fields are errors unless the schema preserves them.
import * as k8s from '@kubernetes/client-node';
import { Ajv, type AnySchema, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

type Attr = { name: string; baseName: string; type: string };
type ModelClass = { getAttributeTypeMap(): Attr[] };
const models = k8s as unknown as Record<string, ModelClass | undefined>;

/** Unknown fields under `value` for the client-node model type `type` (e.g. V1Deployment). */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined) return [];
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, arr[1]!, `${path}[${i}]`)) : [`${path}: expected a list`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return typeof value === 'object' ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : [`${path}: expected a map`];
  const model = models[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function') return []; // string, number, IntOrString, any, Date
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object (${type})`];
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => (attrs.has(k) ? unknownFields(v, attrs.get(k)!, `${path}.${k}`) : [`${path}.${k}: unknown field (not in ${type})`]));
}

/** client-node's model name for a built-in kind: apps/v1 Deployment -> V1Deployment. */
function modelName(apiVersion: string): (kind: string) => string {
  const version = apiVersion.split('/').at(-1)!;
  return (kind) => `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/** kubernetes-models' module for an apiVersion: v1 -> kubernetes-models/v1, apps/v1 -> kubernetes-models/apps/v1. */
async function kubernetesModel(o: K8sObject): Promise<{ new (d: unknown): { validate(): void } } | undefined> {
  const mod = (await import(`kubernetes-models/${o.apiVersion}`)) as Record<string, { new (d: unknown): { validate(): void } }>;
  return mod[o.kind];
}

const BUILTIN_GROUPS = new Set(['v1', 'apps/v1', 'policy/v1', 'networking.k8s.io/v1', 'rbac.authorization.k8s.io/v1', 'batch/v1', 'autoscaling/v2']);

// ---- custom resources ----------------------------------------------------------------------

const CRD_DIR = 'test/fixtures/crd-schemas';
type Vendored = { source: string; apiVersion: string; kind: string; schema: Record<string, unknown> };

/**
 * An OpenAPI v3 structural schema as the API server applies it, for ajv: objects with
 * `properties` reject other fields unless x-kubernetes-preserve-unknown-fields, int-or-string
 * accepts both, `nullable` allows null.
 */
function structural(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(structural);
  if (!s || typeof s !== 'object') return s;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-')) continue;
    o[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, structural(ps)])) : structural(v);
  }
  const src = s as Record<string, unknown>;
  if (src['x-kubernetes-int-or-string']) {
    delete o.type;
    o.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (o.properties && o.additionalProperties === undefined && !src['x-kubernetes-preserve-unknown-fields']) o.additionalProperties = false;
  if (src.nullable === true && typeof o.type === 'string') o.type = [o.type, 'null'];
  delete o.nullable;
  return o;
}

let crdValidators: Map<string, { v: ValidateFunction; source: string }> | undefined;
function crds(): Map<string, { v: ValidateFunction; source: string }> {
  if (crdValidators) return crdValidators;
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    // CRDs carry formats Kubernetes does not check either ("string"): not worth a warning each.
    logger: false,
    // CRD patterns are Go (RE2) syntax: `(?i)` is a case-insensitive flag, not a group.
    code: { regExp: Object.assign((src: string, flags: string) => (src.includes('(?i)') ? new RegExp(src.replace(/\(\?i\)/g, ''), `${flags}i`) : new RegExp(src, flags)), { code: 'RegExp' }) },
  });
  addFormats.default(ajv);
  for (const f of ['int32', 'int64', 'byte', 'duration']) ajv.addFormat(f, true);
  crdValidators = new Map();
  for (const f of readdirSync(CRD_DIR).filter((x) => x.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(join(CRD_DIR, f), 'utf8')) as Vendored;
    const schema = structural(d.schema) as Record<string, unknown>;
    // metadata is ObjectMeta: checked with the built-in rules below, not by the CRD.
    (schema.properties as Record<string, unknown>).metadata = { type: 'object' };
    crdValidators.set(`${d.apiVersion} ${d.kind}`, { v: ajv.compile(schema as AnySchema), source: d.source });
  }
  return crdValidators;
}

/** Every schema problem of one object (empty when valid); throws for a kind it has no schema for. */
export async function validateObject(o: K8sObject): Promise<string[]> {
  const id = `${o.kind}/${o.metadata?.name}`;
  const errors: string[] = [];
  if (BUILTIN_GROUPS.has(o.apiVersion)) {
    const Model = await kubernetesModel(o);
    if (!Model) throw new Error(`${id}: kubernetes-models has no ${o.apiVersion} ${o.kind}`);
    try {
      new Model(o).validate();
    } catch (err) {
      errors.push(`${id}: ${(err as Error).message}`);
    }
    const type = modelName(o.apiVersion)(o.kind);
    if (!models[type]) throw new Error(`${id}: @kubernetes/client-node has no model ${type}`);
    errors.push(...unknownFields(o, type).map((e) => `${id}: ${e}`));
    return errors;
  }
  const crd = crds().get(`${o.apiVersion} ${o.kind}`);
  if (!crd) throw new Error(`${id}: no CRD schema for ${o.apiVersion} ${o.kind} in ${CRD_DIR}`);
  if (!crd.v(o)) errors.push(...(crd.v.errors ?? []).map((e) => `${id}: ${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''} [${crd.source}]`));
  errors.push(...unknownFields(o.metadata, 'V1ObjectMeta', '.metadata').map((e) => `${id}: ${e}`));
  return errors;
}
