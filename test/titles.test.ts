// A title is the checklist line as a person reads it (issue 11, item 5): an unquoted " #" in
// YAML starts a comment, which cut the shipped `alertmanager-receiver-slack` to "Slack" and
// `maintenance-announced` at "(#engineering,". The loader now rejects a title with a comment
// on its line (file:line:col, and the quoted title to write instead), and no shipped title
// is cut: each equals the text written after `title:` in probes/offgridflow.yaml, and
// docs/coverage.md shows it whole.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { isScalar, parseDocument } from 'yaml';
import { DEFAULT_CONFIG } from '../src/cli.js';
import { loadChecklist, loadChecklistFile } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';

t.test('every shipped title is its whole line: nothing is cut at "#"', async (t) => {
  const res = await loadChecklistFile(DEFAULT_CONFIG, {});
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  const text = readFileSync(DEFAULT_CONFIG, 'utf8');
  const doc = parseDocument(text);
  const cut: string[] = [];
  for (const [i, c] of res.checklist.checks.entries()) {
    const node = doc.getIn(['checks', i, 'title'], true);
    if (!isScalar(node) || !node.range) return t.fail(`${c.id}: no title node`);
    // The source from the title's first character to the end of its line, unquoted.
    const end = text.indexOf('\n', node.range[0]);
    let written = text.slice(node.range[0], end < 0 ? undefined : end).trimEnd();
    if (/^["']/.test(written)) written = JSON.parse(written.startsWith("'") ? `"${written.slice(1, -1).replaceAll("''", "'").replaceAll('"', '\\"')}"` : written) as string;
    if (c.title !== written) cut.push(`${c.id}: ${JSON.stringify(c.title)} but the line says ${JSON.stringify(written)}`);
  }
  t.same(cut, [], 'each title equals what its line says');
  t.equal(res.checklist.byId.get('alertmanager-receiver-slack')!.title, 'Slack #alerts channel - configured as a notification channel');
  t.equal(res.checklist.byId.get('maintenance-announced')!.title, 'Announce maintenance window (if required) - posted in #engineering, #customer-success');
  const coverage = readFileSync('docs/coverage.md', 'utf8');
  t.match(coverage, '| `alertmanager-receiver-slack` | Slack #alerts channel - configured as a notification channel |');
  t.match(coverage, '| `maintenance-announced` | Announce maintenance window (if required) - posted in #engineering, #customer-success |');
});

t.test('the loader rejects a title cut by a comment, and says how to write it', async (t) => {
  const check = (id: string, title: string) => `  - id: ${id}
    title: ${title}
    section: observability
    severity: high
    phase: pre-deploy
    probe: tcp
    with: { host: 127.0.0.1, port: 1 }
`;
  const text = `apiVersion: readiness/v1\nchecklist: titles\nchecks:\n${check('slack', 'Slack #alerts channel')}${check('quoted', '"Slack #alerts channel"')}${check('hash-inside', 'C# and F#')}${check('noted', 'Backups   # see the runbook')}`;
  const res = loadChecklist(text, 'titles.yaml', {});
  t.same(res.ok ? [] : res.diagnostics.map(formatDiagnostic), [
    'titles.yaml:5:12: title is cut at " #": YAML reads the rest of the line as a comment; quote the title: "Slack #alerts channel"',
    'titles.yaml:26:12: title is cut at " #": YAML reads the rest of the line as a comment; quote the title: "Backups # see the runbook"',
  ]);
  const ok = loadChecklist(text.split('  - id: noted')[0]!.replace('title: Slack #alerts channel', 'title: "Slack #alerts channel"'), 'titles.yaml', {});
  t.ok(ok.ok, 'quoted, and "#" inside a word, load');
  if (ok.ok) t.same(ok.checklist.checks.map((c) => c.title), ['Slack #alerts channel', 'Slack #alerts channel', 'C# and F#']);
});
