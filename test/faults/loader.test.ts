// Hostile checklists: the loader never throws, whatever it is given (start, SIGHUP reload,
// validate and check all go through it), and a running service that is sent SIGHUP over
// such a file rejects it, logs why, reports readiness_exporter_config_last_reload_successful 0
// and keeps running the checklist it had. In-process for the many documents (and a
// property-based fuzz run), then a real `readiness serve` and real signals.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { loadChecklist, loadChecklistFile, MAX_ALIAS_COUNT, MAX_CHECKLIST_BYTES, MAX_CHECKS, type LoadResult } from '../../src/config/load.js';
import { runCli, startServe } from '../helpers/cli.js';
import { checklistYaml, closedPortCheck } from '../helpers/checklists.js';
import { waitFor } from '../helpers/service.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-loader-'));
const suite = faultSuite(t, 'loader');

/** A tcp check titled `Port <id>` (test/helpers/checklists.ts). */
const check = (id: string, extra = '') => closedPortCheck(id, `Port ${id}`, extra);
const GOOD = checklistYaml('good', [check('a'), check('b')]);

/** The billion laughs: nine levels of nine aliases each. */
function billionLaughs(): string {
  const lines = ['apiVersion: readiness/v1', 'checklist: lol', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 10; i++) {
    const name = String.fromCharCode(97 + i);
    lines.push(`${name}: &${name} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  }
  lines.push(`checks:\n${check('x', '    description: *j\n')}`);
  return lines.join('\n');
}

/** Hostile documents as text, each with what its diagnostic must say (undefined: may load). */
const DOCS: [name: string, text: () => string, expect: RegExp | undefined][] = [
  ['billion laughs (YAML aliases)', billionLaughs, /YAML aliases expand too much \(over 100 nodes for one alias\)/],
  ['deeply nested flow sequences', () => `apiVersion: readiness/v1\nchecklist: deep\nchecks: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, /nested too deeply/],
  ['deeply nested flow maps', () => `apiVersion: readiness/v1\nchecklist: deep\nx: ${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}\n`, /nested too deeply/],
  ['deeply nested block maps', () => `apiVersion: readiness/v1\nchecklist: deep\nx:\n${Array.from({ length: 3_000 }, (_, i) => `${' '.repeat(i + 1)}k:`).join('\n')} 1\n`, /nested too deeply|YAML/],
  ['deep params in with:', () => GOOD.replace('with: { host: 127.0.0.1, port: 1 }', `with: { host: 127.0.0.1, port: 1, x: ${'['.repeat(900)}${']'.repeat(900)} }`), /unknown key "x"|nested too deeply/],
  ['a huge scalar', () => GOOD.replace('title: Port a', `title: "${'x'.repeat(6 * 1024 * 1024)}"`), undefined],
  ['over the size limit', () => `# ${'x'.repeat(MAX_CHECKLIST_BYTES)}\n${GOOD}`, /larger than the supported 8\.0 MiB/],
  ['too many checks', () => `apiVersion: readiness/v1\nchecklist: many\nchecks:\n${Array.from({ length: MAX_CHECKS + 1 }, (_, i) => `  - {id: c${i}}\n`).join('')}`, /10001 checks: at most 10000 are supported/],
  ['several YAML documents', () => `${GOOD}\n---\n${GOOD}`, /a second YAML document starts here/],
  ['an undefined alias', () => GOOD.replace('title: Port a', 'title: *nope'), /YAML/],
  ['__proto__ keys', () => `apiVersion: readiness/v1\nchecklist: proto\n__proto__: { polluted: true }\nchecks:\n${check('a').replace('with: {', 'with: { __proto__: { x: 1 },')}`, /unknown key "__proto__"/],
  ['binary tags', () => GOOD.replace('title: Port a', 'title: !!binary aGVsbG8='), /"title" must be string/],
  ['custom and js tags', () => GOOD.replace('title: Port a', 'title: !!js/function "function () {}"').replace('title: Port b', 'title: !custom x'), /YAML: Unresolved tag: tag:yaml\.org,2002:js\/function/],
  ['non-string keys', () => `${GOOD}\n? [a, b]\n: c\n`, /unknown key/],
  ['a scalar document', () => '"just a string"', /must be object/],
  ['an empty document', () => '', /holds no YAML document/],
  ['control characters', () => GOOD.replace('title: Port a', 'title: "\u0007\u001b[31mred"'), undefined],
  ['a BOM', () => `\uFEFF${GOOD}`, undefined],
  ['CRLF line ends', () => GOOD.replace(/\n/g, '\r\n'), undefined],
  ['numbers out of range', () => GOOD.replace('port: 1 }', 'port: 1e400 }').replace('title: Port b', 'title: .nan'), /port|title/],
];

function wellFormed(t: Tap, res: LoadResult, what: string): void {
  if (res.ok) return;
  t.ok(res.diagnostics.length > 0, `${what}: at least one diagnostic`);
  for (const d of res.diagnostics) {
    if (!(Number.isInteger(d.line) && d.line >= 1 && Number.isInteger(d.col) && d.col >= 1 && typeof d.message === 'string' && d.message !== '' && !d.message.includes('\n'))) {
      t.fail(`${what}: malformed diagnostic ${JSON.stringify(d).slice(0, 300)}`);
    }
  }
}
type Tap = Parameters<Parameters<typeof suite.fault>[2]>[0];

suite.fault('hostile documents: a diagnostic each, never a throw', 120_000, async (t) => {
  for (const [name, make, expect] of DOCS) {
    const text = make();
    let res: LoadResult | undefined;
    try {
      res = loadChecklist(text, `${name}.yaml`, {});
    } catch (err) {
      t.fail(`${name}: loadChecklist threw ${String(err)}`);
      continue;
    }
    wellFormed(t, res, name);
    if (expect) {
      t.notOk(res.ok, `${name}: rejected`);
      if (!res.ok) t.match(res.diagnostics.map((d) => d.message).join('\n'), expect, name);
    }
  }
  t.equal(MAX_ALIAS_COUNT, 100);
});

suite.fault('hostile files: missing, a directory, a FIFO, a device, unreadable, binary, not UTF-8, too big', 120_000, async (t) => {
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const bin = join(dir, 'binary.yaml');
  writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0xff, 0xfe]));
  const latin1 = join(dir, 'latin1.yaml');
  writeFileSync(latin1, Buffer.concat([Buffer.from('apiVersion: readiness/v1\nchecklist: x\n# caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
  const big = join(dir, 'big.yaml');
  writeFileSync(big, `# ${'x'.repeat(MAX_CHECKLIST_BYTES)}\n`);
  const sub = join(dir, 'a-directory.yaml');
  mkdirSync(sub);
  const files: [string, RegExp][] = [
    [join(dir, 'missing.yaml'), /cannot read checklist: ENOENT/],
    [join(bin, 'below-a-file.yaml'), /cannot read checklist: ENOTDIR/],
    [sub, /it is a directory, not a file/],
    [fifo, /not a regular file/],
    ['/dev/zero', /not a regular file/],
    // Opens and stats as a regular file, then fails to read (EIO): an unreadable file even as root.
    ['/proc/self/mem', /cannot read checklist: EIO/],
    [bin, /not a text file: a NUL byte at line 1, column 8/],
    [latin1, /not valid UTF-8: byte 0xe9 at line 3, column 6/],
    [big, /larger than the supported 8\.0 MiB/],
  ];
  for (const [file, expect] of files) {
    let res: LoadResult | undefined;
    try {
      res = await loadChecklistFile(file, {});
    } catch (err) {
      t.fail(`${file}: threw ${String(err)}`);
      continue;
    }
    t.notOk(res.ok, file);
    wellFormed(t, res, file);
    if (!res.ok) t.match(res.diagnostics[0]?.message, expect, file);
  }
});

suite.fault('fuzz: mutated checklists and random input give diagnostics, never a throw', 300_000, async (t) => {
  const seeds = [GOOD, ...['invalid-many.yaml', 'invalid-condition.yaml', 'invalid-params.yaml'].map((f) => readFileSync(`test/fixtures/${f}`, 'utf8'))];
  const tokens = ['&a ', '*a', '<<: ', '!!binary ', '!!str ', '[', ']', '{', '}', '"', "'", ': ', '- ', '? ', '\n', '\t', '#', '|', '>', '%YAML 1.1\n', '---\n', '...\n', '${X}', '${', '\\', '\u0000', '\uFEFF', '__proto__', 'constructor', '1e999', '-.inf', 'null', '~'];
  const mutation = fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...tokens), fc.string({ maxLength: 8 }), fc.constant('')), fc.nat({ max: 20 }));
  const mutated = fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 12 })).map(([seed, ms]) => {
    let s = seed;
    for (const [at, insert, del] of ms) {
      const i = at % (s.length + 1);
      s = s.slice(0, i) + insert + s.slice(i + del);
    }
    return s;
  });
  const anything = fc.oneof(mutated, fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }));
  let runs = 0;
  fc.assert(
    fc.property(anything, (text) => {
      runs++;
      const res = loadChecklist(text, 'fuzz.yaml', { X: 'y' });
      if (res.ok) return true;
      return res.diagnostics.length > 0 && res.diagnostics.every((d) => d.line >= 1 && d.col >= 1 && d.message !== '' && !d.message.includes('\n'));
    }),
    { seed: 20_261_130, numRuns: 600 },
  );
  t.equal(runs, 600, 'every generated document was loaded without a throw');
});

/** Waits until the failure counter of reloads reaches `n`. */
async function reloadFailures(url: string, n: number): Promise<string> {
  return waitFor(
    `${n} failed reloads`,
    async () => {
      const m = await (await fetch(`${url}/metrics`)).text();
      const got = Number(/readiness_exporter_config_reloads_total\{result="failure"\} (\d+)/.exec(m)?.[1] ?? 0);
      return got >= n ? m : undefined;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
}

suite.fault('SIGHUP over hostile files: rejected, logged, last_reload_successful 0, the old checklist keeps running', 300_000, async (t) => {
  const file = join(dir, 'served.yaml');
  writeFileSync(file, GOOD);
  // A data directory of its own: never the working directory's ./data, shared with other runs.
  const svc = await startServe(t, ['-c', file], { READINESS_DATA_DIR: join(dir, 'sighup-data') });
  t.teardown(() => {
    if (!t.passing()) t.comment(svc.output().slice(-4000));
  });
  const hostile: [string, () => void, RegExp][] = [
    ['billion laughs', () => writeFileSync(file, billionLaughs()), /YAML aliases expand too much/],
    ['deep nesting', () => writeFileSync(file, `apiVersion: readiness/v1\nchecklist: deep\nchecks: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`), /nested too deeply/],
    ['over the size limit', () => writeFileSync(file, `# ${'x'.repeat(MAX_CHECKLIST_BYTES)}\n`), /larger than the supported/],
    ['binary garbage', () => writeFileSync(file, Buffer.from([0x00, 0xff, 0x13, 0x37])), /not a text file/],
    ['not UTF-8', () => writeFileSync(file, Buffer.from([0x61, 0x3a, 0x20, 0xc3, 0x28, 0x0a])), /not valid UTF-8/],
    [
      'a directory',
      () => {
        rmSync(file);
        mkdirSync(file);
      },
      /it is a directory/,
    ],
    [
      'a FIFO',
      () => {
        rmSync(file, { recursive: true });
        execFileSync('mkfifo', [file]);
      },
      /not a regular file/,
    ],
    ['missing', () => rmSync(file), /cannot read checklist: ENOENT/],
  ];
  let failures = 0;
  for (const [name, make, expect] of hostile) {
    make();
    svc.child.kill('SIGHUP');
    const metrics = await reloadFailures(svc.url, ++failures);
    t.equal(svc.child.exitCode, null, `${name}: the service is still running`);
    t.match(metrics, 'readiness_exporter_config_last_reload_successful 0', `${name}: last reload unsuccessful`);
    const checks = (await (await fetch(`${svc.url}/checks`)).json()) as { checks: { id: string }[] };
    t.same(checks.checks.map((c) => c.id), ['a', 'b'], `${name}: the old checklist is still served`);
    await waitFor(`${name} in the log`, async () => (expect.test(svc.output()) ? true : undefined), { timeoutMs: 10_000 });
  }
  t.match(svc.output(), 'checklist reload rejected: keeping the running checklist');
  // And a good file is taken again.
  writeFileSync(file, GOOD.replace('checklist: good', 'checklist: good-again'));
  svc.child.kill('SIGHUP');
  await waitFor('the good reload', async () => ((await (await fetch(`${svc.url}/metrics`)).text()).includes('readiness_exporter_config_last_reload_successful 1') ? true : undefined), { timeoutMs: 60_000 });
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0, 'and it stops cleanly');
});

suite.fault('validate, check and serve on a billion-laughs file: exit 2 with the diagnostic', 240_000, async (t) => {
  const file = join(dir, 'lol.yaml');
  writeFileSync(file, billionLaughs());
  for (const args of [['validate', '-c', file], ['check', '-c', file], ['serve', '-c', file, '--port', '0']]) {
    const r = await runCli(args, { timeoutMs: 90_000 });
    t.equal(r.code, 2, `${args[0]} exits 2`);
    t.match(r.stderr, /lol\.yaml:\d+:\d+: YAML aliases expand too much/, String(args[0]));
    t.notMatch(r.stderr, /ReferenceError|at .*\(.*\.js:\d+/, `${args[0]}: no stack trace`);
  }
});
