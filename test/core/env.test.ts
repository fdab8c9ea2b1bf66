// ${VAR} substitution (src/config/env.ts) and what it means for a check: a variable that is
// unset OR EMPTY is missing (the check is unconfigured), a default stands in for both, `$${`
// is a literal, and a malformed reference is reported, not guessed.
import t from 'tap';
import { substituteEnv } from '../../src/config/env.js';
import { loadChecklist } from '../../src/config/load.js';
import { formatDiagnostic } from '../../src/config/types.js';

t.test('unset and empty are both missing; a default stands in for both', async (t) => {
  t.same(substituteEnv('${A}', { A: 'x' }), { value: 'x', missing: [], missingKeys: [], malformed: [] });
  t.same(substituteEnv('${A}', {}), { value: '', missing: ['A'], missingKeys: [], malformed: [] });
  t.same(substituteEnv('${A}', { A: '' }).missing, ['A'], 'VAR="" is not set');
  t.equal(substituteEnv('${A:-d}', { A: '' }).value, 'd', 'empty takes the default');
  t.equal(substituteEnv('${A:-d}', {}).value, 'd');
  t.equal(substituteEnv('${A:-d}', { A: 'v' }).value, 'v');
  t.same(substituteEnv('${A:-}', {}), { value: '', missing: [], missingKeys: [], malformed: [] }, 'an empty default is a default');
  t.equal(substituteEnv('${A}', { A: ' ' }).value, ' ', 'whitespace is a value');
});

t.test('escapes, several references, malformed references', async (t) => {
  t.equal(substituteEnv('$${A}', { A: 'x' }).value, '${A}', '$${ writes a literal ${');
  t.equal(substituteEnv('pre-${A}-${B:-b}-post', { A: 'a' }).value, 'pre-a-b-post');
  t.equal(substituteEnv('$A ${A', { A: 'a' }).value, '$A ${A');
  t.same(substituteEnv('$A ${A', { A: 'a' }).malformed, ['$A ${A'], 'an unclosed ${ is malformed');
  t.same(substituteEnv('${1A}', {}).malformed, ['${1A}'], 'a name cannot start with a digit');
  t.same(substituteEnv('${A_1}', { A_1: 'ok' }), { value: 'ok', missing: [], missingKeys: [], malformed: [] });
  t.same(substituteEnv('${A} ${A} ${B}', {}).missing, ['A', 'B'], 'each missing name once');
});

t.test('walks objects and arrays; missingKeys names the top-level keys affected', async (t) => {
  const input = { host: '${H}', port: 5432, tags: ['${T:-x}', '${U}'], nested: { deep: ['${H}'], n: null, b: true }, ok: 'plain' };
  const out = substituteEnv(input, { H: 'db' });
  t.same(out.value, { host: 'db', port: 5432, tags: ['x', ''], nested: { deep: ['db'], n: null, b: true }, ok: 'plain' });
  t.same(out.missing, ['U']);
  t.same(out.missingKeys, ['tags']);
  const none = substituteEnv({ a: '${X}', b: '${Y}', c: 'z' }, {});
  t.same(none.missingKeys, ['a', 'b']);
  t.same(substituteEnv(['${X}'], {}), { value: [''], missing: ['X'], missingKeys: [], malformed: [] }, 'an array at the top has no keys');
  t.same(substituteEnv(7, {}).value, 7);
  t.same(substituteEnv(null, {}).value, null);
});

const checklist = (withLine: string) => `apiVersion: readiness/v1
checklist: env
checks:
  - id: h
    title: H
    section: s
    severity: low
    phase: pre-deploy
    probe: http
    with: ${withLine}
`;

t.test('an empty variable leaves its check unconfigured, through the loader', async (t) => {
  for (const env of [{}, { API_URL: '' }]) {
    const res = loadChecklist(checklist('{ url: "${API_URL}" }'), 'c.yaml', env);
    if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
    t.equal(res.checklist.checks[0]!.unconfigured, 'environment variable API_URL is not set', `API_URL=${JSON.stringify(env.API_URL)}`);
  }
  const set = loadChecklist(checklist('{ url: "${API_URL}" }'), 'c.yaml', { API_URL: 'https://api.example.com' });
  if (!set.ok) return t.fail(set.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(set.checklist.checks[0]!.unconfigured, undefined);
  t.equal(set.checklist.checks[0]!.params.url, 'https://api.example.com');

  // The same for a variable a param names (bearerTokenEnv).
  const named = checklist('{ url: "https://api.example.com", bearerTokenEnv: API_TOKEN }');
  const empty = loadChecklist(named, 'c.yaml', { API_TOKEN: '' });
  if (!empty.ok) return t.fail(empty.diagnostics.map(formatDiagnostic).join('\n'));
  t.equal(empty.checklist.checks[0]!.unconfigured, 'environment variable API_TOKEN is not set');
});
