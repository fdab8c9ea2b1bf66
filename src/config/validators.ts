// JSON Schema validators for the checklist document and each probe kind's params. Compiling
// them with ajv costs more than the rest of `readiness validate` together, so `npm run build`
// compiles them once into dist/config/validators.cjs (src/build/validators.ts). A validator
// whose schema no longer matches the fingerprint it was precompiled from (a build that skipped
// that step, or running from src/ under tsx) is compiled here on first use, with the same
// options: the two paths accept and report exactly the same things.
import { createRequire } from 'node:module';
import type { TSchema } from '@sinclair/typebox';
import type { Ajv, ValidateFunction } from 'ajv';
import { PRECOMPILED, requirePrecompiled } from '../deferred.js';
import { packagePath } from '../paths.js';

/** The checklist document: every error at once, with the failing schema and data for the message. */
export const DOCUMENT_OPTIONS = { allErrors: true, strict: false, verbose: true } as const;
/** A probe kind's params: also coerces scalars ("443" -> 443) and fills defaults in place. */
export const PARAM_OPTIONS = { ...DOCUMENT_OPTIONS, coerceTypes: true, useDefaults: true } as const;

export type Flavour = 'document' | 'params';

/** What src/build/validators.ts writes: per flavour, validators and the fingerprints of their schemas. */
export interface Precompiled {
  fingerprints: Record<Flavour, Record<string, string>>;
  validators: Record<Flavour, Record<string, ValidateFunction>>;
}

const require = createRequire(packagePath('package.json'));
export { PRECOMPILED };

/** FNV-1a of the schema's JSON: tells a precompiled validator from a stale one. */
export function fingerprint(schema: TSchema): string {
  const s = JSON.stringify(schema);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return `${(h >>> 0).toString(16)}-${s.length}`;
}

let precompiled: Precompiled | null | undefined;
function loadPrecompiled(): Precompiled | null {
  if (precompiled === undefined) {
    try {
      precompiled = requirePrecompiled() as Precompiled;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      precompiled = null;
    }
  }
  return precompiled;
}

const compilers: Partial<Record<Flavour, Ajv>> = {};
/** ajv itself, loaded only when a validator was not precompiled. */
export function compiler(flavour: Flavour, extra: Record<string, unknown> = {}): Ajv {
  let ajv = Object.keys(extra).length === 0 ? compilers[flavour] : undefined;
  if (!ajv) {
    const { Ajv } = require('ajv') as typeof import('ajv');
    const addFormats = (require('ajv-formats') as { default: (a: Ajv) => Ajv }).default;
    ajv = addFormats(new Ajv({ ...(flavour === 'document' ? DOCUMENT_OPTIONS : PARAM_OPTIONS), ...extra }));
    if (Object.keys(extra).length === 0) compilers[flavour] = ajv;
  }
  return ajv;
}

/** Per schema object: a schema changed at run time (a test, a plugin) never gets another's validator. */
const cache: Record<Flavour, WeakMap<TSchema, ValidateFunction>> = { document: new WeakMap(), params: new WeakMap() };

/** The validator for `schema` under `name` (`checklist`, `check`, or a probe kind): precompiled when current. */
export function validatorFor<T = unknown>(flavour: Flavour, name: string, schema: TSchema): ValidateFunction<T> {
  let v = cache[flavour].get(schema);
  if (!v) {
    const pre = loadPrecompiled();
    const fn = pre?.validators[flavour][name];
    v = fn && pre.fingerprints[flavour][name] === fingerprint(schema) ? fn : compiler(flavour).compile(schema);
    cache[flavour].set(schema, v);
  }
  return v as ValidateFunction<T>;
}

/**
 * A validator looked up on its first call: the loader declares its validators at module
 * level without compiling (or loading) any until a file is validated. `errors` is the
 * last call's, as on an ajv validator.
 */
export function lazyValidator<T>(flavour: Flavour, name: string, schema: TSchema): Validator<T> {
  const f = ((data: unknown): data is T => {
    const v = validatorFor<T>(flavour, name, schema);
    const ok = v(data);
    f.errors = v.errors;
    return ok;
  }) as Validator<T>;
  return f;
}

/** What the loader needs of a validator: a type guard with the last call's errors. */
export type Validator<T> = ((data: unknown) => data is T) & { errors?: ValidateFunction['errors'] };
