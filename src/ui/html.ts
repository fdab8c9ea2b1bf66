// HTML built by a tagged template that escapes every interpolated value unless it is
// already Html. Escaping is the default, so forgetting it is impossible: a check title,
// message, note or URL can only reach the page as text.

/** A fragment of markup that is already safe (built by `html` or from a constant). */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const SPECIAL = /[&<>"']/;

/** Text to put in an element or a double-quoted attribute. */
export function escapeHtml(s: string): string {
  // Most values (ids, states, numbers) need nothing: skip the replace for them.
  return SPECIAL.test(s) ? s.replace(/[&<>"']/g, (c) => ESCAPES[c]!) : s;
}

function part(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (v === undefined || v === null || v === false) return '';
  if (Array.isArray(v)) return v.map(part).join('');
  return escapeHtml(String(v));
}

/** `html\`<b>${title}</b>\``: values are escaped; Html values and arrays of them are kept. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/**
 * A URL that may become an href: absolute http(s) URLs and this service's own paths only.
 * `javascript:`, `data:`, protocol-relative `//host` and anything unparsable are refused, so
 * a runbook or evidence link from the checklist or an attestation can never run script.
 */
export function safeHref(url: string | undefined): string | undefined {
  if (!url) return undefined;
  // Whitespace and control characters are refused too: browsers strip them, so `/\t/host` would become `//host`.
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/^\/(?![/\\])[^\s\x00-\x1f\x7f]*$/.test(url)) return url;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}
