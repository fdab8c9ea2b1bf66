// ${VAR} and ${VAR:-default} substitution in target and `with:` values. `$${` writes a
// literal `${`. An unset variable without a default is recorded, not an error: the check
// that needs it is `unconfigured` (never `pass`), and the rest of the checklist runs.

export interface Substituted {
  value: unknown;
  /** Names of unset variables that had no default. */
  missing: string[];
  /** Top-level keys whose value referenced a missing variable. */
  missingKeys: string[];
  /** Strings with a `${` that is not a well-formed reference. */
  malformed: string[];
}

const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{/g;

function substituteString(s: string, env: NodeJS.ProcessEnv, missing: string[], malformed: string[]): string {
  return s.replace(REF, (m, name: string | undefined, def: string | undefined) => {
    if (m === '$${') return '${';
    if (name === undefined) {
      malformed.push(s);
      return m;
    }
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    missing.push(name);
    return '';
  });
}

export function substituteEnv(input: unknown, env: NodeJS.ProcessEnv): Substituted {
  const out: Substituted = { value: undefined, missing: [], missingKeys: [], malformed: [] };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return substituteString(v, env, out.missing, out.malformed);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    const obj: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(input)) {
      const before = out.missing.length;
      obj[k] = walk(x);
      if (out.missing.length > before) out.missingKeys.push(k);
    }
    out.value = obj;
  } else {
    out.value = walk(input);
  }
  out.missing = [...new Set(out.missing)];
  return out;
}
