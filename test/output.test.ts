// The commands write their lines straight to descriptors 1 and 2 (src/cli/output.ts), not
// through process.stdout and process.stderr, whose streams cost start-up to create. Pinned here:
// a reader that goes away ends the command quietly with its exit code, as the streams' handler
// did; a full pipe left non-blocking is written through the stream, whole and in order; and
// the streams, when something does use them, still get that handler (src/run.ts).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import t from 'tap';
import { CLI } from './helpers/cli.js';

const OUTPUT = resolve('dist/cli/output.js');
const RUN = resolve('dist/run.js');

/** Runs `code` (an ES module) in a child with piped stdio; `slow` waits that long before reading stdout. */
function child(code: string, slow = 0): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.stdout.pause();
    setTimeout(() => c.stdout.on('data', (b: Buffer) => out.push(b)).resume(), slow);
    c.on('close', (code) => done({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

t.test('a reader gone before the output ends the command with its exit code, no stack trace', async (t) => {
  for (const args of [['validate'], ['--help'], ['validate', '-c', '/nonexistent/checklist.yaml']]) {
    const c = spawn(CLI[0], [CLI[1], ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    // `readiness validate | head -0`: the pipe is closed before anything is written.
    c.stdout.destroy();
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((r) => c.on('close', r));
    const expected = args.includes('/nonexistent/checklist.yaml') ? 2 : 0;
    t.equal(code, expected, `${args.join(' ')}: exit ${expected}: ${err}`);
    t.notMatch(err, /EPIPE|at .*\.js:\d+/, `${args.join(' ')}: no stack trace`);
  }
});

t.test('a full pipe that is non-blocking is written through the stream, whole and in order', async (t) => {
  // Creating process.stdout makes libuv set the pipe non-blocking: writeSync then meets EAGAIN
  // once the reader (paused below) lets the pipe fill up.
  const lines = 20_000;
  const r = await child(
    `import { writeFd } from ${JSON.stringify(OUTPUT)};
     process.stdout;
     for (let i = 0; i < ${lines}; i++) writeFd(1, 'line ' + i + ' ' + 'x'.repeat(80) + '\\n');
     writeFd(2, 'done\\n');`,
    300,
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, 'done\n');
  const got = r.stdout.toString().split('\n');
  t.equal(got.length, lines + 1, 'every line arrived');
  const bad = got.slice(0, lines).findIndex((l, i) => l !== `line ${i} ${'x'.repeat(80)}`);
  t.equal(bad, -1, `every line whole and in order (first bad: ${bad} ${JSON.stringify(got[bad])})`);
});

t.test('a blocking pipe is written synchronously, without creating the streams', async (t) => {
  const r = await child(
    `import { writeFd } from ${JSON.stringify(OUTPUT)};
     const before = process.moduleLoadList.length;
     writeFd(1, 'x'.repeat(1 << 20));
     const loaded = process.moduleLoadList.slice(before).filter((m) => /stream|net|tty/.test(m));
     writeFd(2, JSON.stringify(loaded));`,
    300,
  );
  t.equal(r.code, 0);
  t.equal(r.stdout.length, 1 << 20, 'a MiB written whole while the reader waited');
  t.same(JSON.parse(r.stderr), [], 'no stream module was loaded for it');
});

t.test('the streams get the quiet EPIPE handler when something first uses them', async (t) => {
  // run() installs it on first use; after the command, its process writes through
  // process.stdout to a closed pipe. Unhandled, that error would end it with exit 1 and a trace.
  const c = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { run } from ${JSON.stringify(RUN)};
       await run([process.argv0, 'readiness', 'validate', '-c', '/nonexistent/checklist.yaml']);
       process.stdout.write('y'.repeat(1 << 20));`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  c.stdout.destroy();
  let err = '';
  c.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => c.on('close', r));
  t.equal(code, 2, `the exit code of the command (validate of a missing file): ${err}`);
  t.notMatch(err, /EPIPE|Unhandled 'error' event/, 'the stream error was handled');
  t.match(err, /cannot read checklist/, 'the command itself wrote to stderr as usual');
});
