// Every shipped title is the checklist line it covers (issue 11, item 5). scripts/seed-lines.ts
// names, for each check, a line of docs/seed/production-deployment-checklist.md (a byte-for-byte
// copy of the seed checklist); the title must contain that line's text, docs/coverage.md must
// name the same line, and every checkbox of the seed must be covered by some check (or be a
// header whose sub-items are).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { DEFAULT_CONFIG } from '../src/cli.js';
import { loadChecklistFile } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { isCheckbox, readSeed, SEED_FILE, SEED_HEADER_LINES, SEED_LINES, seedLineText, unMojibake } from '../scripts/seed-lines.js';

const norm = (s: string) => unMojibake(s).replace(/\*\*|`/g, '').replace(/\s+/g, ' ').trim();

t.test('each shipped check names a seed line, its title contains it, docs/coverage.md shows it', async (t) => {
  const res = await loadChecklistFile(DEFAULT_CONFIG, {});
  if (!res.ok) return t.fail(res.diagnostics.map(formatDiagnostic).join('\n'));
  const seed = readSeed();
  t.ok(seed.length > 400 && seed.filter(isCheckbox).length > 90, `${SEED_FILE} is the seed checklist`);
  const coverage = readFileSync('docs/coverage.md', 'utf8');
  const rows = new Map<string, string>();
  for (const m of coverage.matchAll(/^\| `([^`]+)` \| (.*) \| (L\d+): /gm)) rows.set(m[1]!, m[3]!);
  t.equal(res.checklist.checks.length, 131, 'the shipped checklist has its 131 checks');
  const problems: string[] = [];
  for (const c of res.checklist.checks) {
    const n = SEED_LINES[c.id];
    if (n === undefined) { problems.push(`${c.id}: no seed line in scripts/seed-lines.ts`); continue; }
    const raw = seed[n - 1];
    if (raw === undefined || seedLineText(raw) === '') { problems.push(`${c.id}: L${n} is not a line of ${SEED_FILE} with text`); continue; }
    const want = seedLineText(raw);
    if (!norm(c.title).includes(want)) problems.push(`${c.id}: title ${JSON.stringify(c.title)} does not contain L${n} ${JSON.stringify(want)}`);
    if (rows.get(c.id) !== `L${n}`) problems.push(`${c.id}: docs/coverage.md names ${rows.get(c.id) ?? 'no line'}, the map says L${n}`);
  }
  t.same(problems, [], 'every title is its seed line and docs/coverage.md agrees');
  const stale = Object.keys(SEED_LINES).filter((id) => !res.checklist.byId.has(id));
  t.same(stale, [], 'the map names only shipped checks');
});

t.test('every checkbox of the seed is covered by a check or is a header of covered sub-items', async (t) => {
  const seed = readSeed();
  const covered = new Set(Object.values(SEED_LINES));
  const uncovered: string[] = [];
  seed.forEach((line, i) => {
    const n = i + 1;
    if (isCheckbox(line) && !covered.has(n) && SEED_HEADER_LINES[n] === undefined) uncovered.push(`L${n}: ${line.trim()}`);
  });
  t.same(uncovered, [], 'no checkbox is left without a check');
  for (const [n, why] of Object.entries(SEED_HEADER_LINES)) {
    const i = Number(n);
    t.ok(isCheckbox(seed[i - 1] ?? ''), `L${n} is a checkbox (${why})`);
    const sub = seed[i] ?? '';
    t.ok(/^\s+- \[[ x]\]/.test(sub) && covered.has(i + 1), `L${n} heads sub-items, and its first (L${i + 1}) is covered`);
    t.notOk(covered.has(i), `L${n} is a header: its checks name the sub-items instead`);
  }
});

t.test('the copy of the seed is byte for byte the shared seed, when that is present', async (t) => {
  let shared: Buffer;
  try {
    shared = readFileSync('/work/shared/seed/production-deployment-checklist.md');
  } catch {
    // CI machines do not always mount /work/shared; the copy in the repo is then the reference.
    t.pass('no /work/shared here: the repo copy stands');
    return;
  }
  t.ok(readFileSync(SEED_FILE).equals(shared), `${SEED_FILE} equals the shared seed`);
});

t.test('seedLineText strips the checkbox, step numbers, table cells, markdown and the mojibake', async (t) => {
  t.equal(seedLineText('  - [ ] Backend tests: `go test ./... -race -cover`'), 'Backend tests: go test ./... -race -cover');
  t.equal(seedLineText('- [ ] RTO (Recovery Time Objective) defined: **4 hours**'), 'RTO (Recovery Time Objective) defined: 4 hours');
  t.equal(seedLineText('# 3. Create database backup'), 'Create database backup');
  t.equal(seedLineText('# - User login'), 'User login');
  t.equal(seedLineText('| **QA Lead** | | | |'), 'QA Lead');
  t.equal(seedLineText('  - [ ] `max_connections` in PostgreSQL \u201a\u00e2\u2022 (a \u221a\u00f3 b) + 20'), 'max_connections in PostgreSQL \u2265 (a \u00d7 b) + 20');
});
