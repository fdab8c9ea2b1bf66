// Safe by default (issue 11, item 4): with no environment the shipped checklist sends nothing
// beyond loopback. `readiness check` and `readiness serve` run it in a network namespace whose
// only way out is a veth pair with the default route: every packet that tries to leave
// loopback (a DNS query included: resolv.conf points through it) is counted on that
// interface, and the count must not move. Every check is then `unconfigured`, naming the
// variables that would configure it, or needs no network at all (attestations). Intrusive
// checks run only on the operator's explicit opt-in, and `readiness validate` lists each
// missing variable once, most checks first, and the intrusive checks.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { DEFAULT_CONFIG, main } from '../src/cli.js';
import { loadChecklistFile } from '../src/config/load.js';
import { missingGroups } from '../src/config/missing.js';
import type { CheckDef } from '../src/config/types.js';
import type { FailingCheck, ReadinessBody } from '../src/state.js';
import { runShipped } from './helpers/fake-apis.js';
import { listenHttp } from './helpers/listeners.js';
import { ROOT } from './helpers/prometheus.js';
import { freePort } from './helpers/service.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'safe-default-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const noEnv = await loadChecklistFile(DEFAULT_CONFIG, {});
if (!noEnv.ok) throw new Error('the shipped checklist does not load');
const shipped = noEnv.checklist;
/** Kinds that talk to nothing but the exporter's own store. */
const OFFLINE_KINDS = new Set(['attestation']);

/** The namespace's script: loopback, a counted way out, then the commands; counters and outputs in `out`. */
function namespaceScript(out: string, port: number): string {
  const node = process.execPath;
  const env = `env -i PATH=${process.env.PATH ?? '/usr/bin:/bin'} HOME=${out}/home`;
  return `set -eu
ip link set lo up
ip link add rdy-out type veth peer name rdy-peer
echo 1 > /proc/sys/net/ipv6/conf/rdy-out/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/rdy-peer/disable_ipv6
ip addr add 198.18.0.1/30 dev rdy-out
ip link set rdy-peer up
ip link set rdy-out up
ip route add default via 198.18.0.2 dev rdy-out
mount --bind ${out}/resolv.conf /etc/resolv.conf
# /proc/net/dev is this namespace's (sysfs would show the host's): rdy-out's transmitted packets.
tx() { awk '$1 == "rdy-out:" { print $11 }' /proc/net/dev; }
mkdir -p ${out}/home
tx > ${out}/tx-before
rc=0; ${env} READINESS_DATA_DIR=${out}/data-check ${node} bin/readiness.js check --format json > ${out}/check.json 2> ${out}/check.err || rc=$?
echo $rc > ${out}/check.rc
${env} ${node} bin/readiness.js serve --host 127.0.0.1 --port ${port} --data-dir ${out}/data-serve > ${out}/serve.log 2>&1 &
serve=$!
${node} -e '
  const url = process.argv[1];
  const deadline = Date.now() + 60000;
  (async () => {
    for (;;) {
      try {
        const b = await (await fetch(url)).json();
        if (b.summary.pending === 0) { require("fs").writeFileSync(process.argv[2], JSON.stringify(b)); return; }
      } catch {}
      if (Date.now() > deadline) { console.error("serve: checks still pending after 60 s"); process.exit(1); }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
' http://127.0.0.1:${port}/readiness?verbose=1 ${out}/readiness.json || true
kill -TERM $serve; wait $serve || true
tx > ${out}/tx-after
# The tripwire itself: a TCP connect and a DNS query beyond loopback must be counted.
timeout 2 bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>/dev/null || true
${node} -e 'const r = new (require("dns").Resolver)({ timeout: 200, tries: 1 }); r.resolve4("api.offgridflow.com", () => {});' || true
tx > ${out}/tx-tripped
`;
}

/** Every unconfigured check names the variables that would configure it, and its message says each. */
function assertExplained(t: Test, checks: readonly FailingCheck[], where: string): void {
  const byId = new Map(checks.map((c) => [c.id, c]));
  t.equal(byId.size, shipped.checks.length, `${where}: every shipped check is listed`);
  const talking = checks.filter((c) => c.state !== 'unconfigured' && !OFFLINE_KINDS.has(shipped.byId.get(c.id)!.kind));
  t.same(
    talking.map((c) => `${c.id}: ${c.state} ${c.message}`),
    [],
    `${where}: every check that would use the network is unconfigured`,
  );
  for (const c of checks.filter((x) => x.state === 'unconfigured')) {
    if (!c.missing?.length) {
      t.fail(`${where}: ${c.id} is unconfigured without naming what would configure it`);
      continue;
    }
    for (const v of c.missing) if (!c.message.includes(v) && !/KUBECONFIG|GOOGLE_APPLICATION_CREDENTIALS/.test(v)) t.fail(`${where}: ${c.id}'s message does not name ${v}: ${c.message}`);
  }
  for (const id of ['waf-blocks-attack', 'api-rate-limited']) {
    t.match(byId.get(id), { state: 'unconfigured', missing: ['API_URL', 'READINESS_ALLOW_INTRUSIVE'] }, `${where}: ${id} needs its target and the opt-in`);
  }
  t.match(byId.get('postgres-not-public'), { state: 'unconfigured', missing: ['PUBLIC_HOST'] }, `${where}: the port checks name the host variable`);
  t.match(byId.get('tls-api-expiry'), { state: 'unconfigured', missing: ['API_HOST'] });
  t.match(byId.get('monitor-error-rate'), { state: 'unconfigured', missing: ['PROMETHEUS_URL'] });
}

t.test('no environment, loopback-only network: every check is unconfigured or offline, and not one packet leaves loopback', async (t) => {
  const out = join(dir, 'ns');
  rmSync(out, { recursive: true, force: true });
  await run('mkdir', ['-p', out]);
  // TEST-NET-2: a DNS query has to go out through the counted interface.
  writeFileSync(join(out, 'resolv.conf'), 'nameserver 198.51.100.53\n');
  const port = await freePort();
  const r = await run('unshare', ['--net', '--mount', 'bash', '-c', namespaceScript(out, port)], { cwd: ROOT, env: { PATH: process.env.PATH }, timeout: 150_000 }).catch(
    (err: Error & { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: `${err.message}\n${err.stderr ?? ''}` }),
  );
  const read = (f: string) => {
    try {
      return readFileSync(join(out, f), 'utf8');
    } catch {
      return '';
    }
  };
  const before = Number(read('tx-before'));
  const after = Number(read('tx-after'));
  const tripped = Number(read('tx-tripped'));
  t.ok(read('tx-before').trim() !== '' && read('tx-after').trim() !== '', `the counters were read (${r.stderr.slice(-2000)})`);
  t.ok(tripped > after, `the tripwire counts a packet that tries to leave loopback (${after} -> ${tripped})`);
  t.equal(after - before, 0, 'no packet tried to leave loopback during `readiness check` and `readiness serve`');

  // readiness check: ran every check once, not ready (unconfigured checks keep the gate red).
  t.equal(read('check.rc').trim(), '1', `check exits 1, not ready (stderr: ${read('check.err').slice(-2000)})`);
  const checked = JSON.parse(read('check.json') || '{}') as ReadinessBody;
  t.ok(checked.checks, 'check printed every check');
  assertExplained(t, checked.checks ?? [], 'readiness check');
  t.equal(checked.summary?.error, 0, 'nothing is an error');

  // readiness serve: /readiness explains, per unconfigured check, what would configure it.
  const served = JSON.parse(read('readiness.json') || '{}') as ReadinessBody;
  t.ok(served.checks, `serve answered /readiness with no check pending (${read('serve.log').slice(-2000)})`);
  assertExplained(t, served.checks ?? [], '/readiness');
  t.equal(served.summary?.unconfigured, checked.summary?.unconfigured, 'serve and check agree on what is unconfigured');
  t.notMatch(read('serve.log'), /"level":(50|60)/, 'serve logged no errors');
});

t.test('every host the shipped checklist reaches comes from the environment', async (t) => {
  // Name every variable validate asks for (and the endpoint overrides) as loopback: then no
  // parameter of any check may point anywhere else: nothing is hard-coded.
  const vars = missingGroups(shipped.checks).map((g) => g.variable);
  t.ok(vars.length > 30, `validate names ${vars.length} variables`);
  const ENDPOINTS = ['GITHUB_API_URL', 'PAGERDUTY_API_URL', 'STRIPE_API_URL', 'OPENAI_API_URL', 'AWS_STS_ENDPOINT', 'AZURE_AUTHORITY_URL', 'GCP_TOKEN_URL', 'BACKUP_S3_ENDPOINT', 'BACKUP_OFFSITE_S3_ENDPOINT'];
  const env: NodeJS.ProcessEnv = {};
  for (const v of [...vars, ...ENDPOINTS]) env[v] = /_URL$|_ENDPOINT$/.test(v) ? 'http://127.0.0.1:9' : /HOST$/.test(v) ? '127.0.0.1' : `x-${v.toLowerCase()}`;
  Object.assign(env, { APP_MAX_REPLICAS: '4', DB_MAX_OPEN_CONNS: '10', DATABASE_URL: 'postgres://u:p@127.0.0.1:9/db', STAGING_DATABASE_URL: 'postgres://u:p@127.0.0.1:9/db', GITHUB_REPO: 'o/r', SMOKE_TEST_SCRIPT: '/bin/true' });
  Object.assign(env, { BACKUP_BUCKET: 'backups', BACKUP_OFFSITE_BUCKET: 'offsite', PAGERDUTY_SCHEDULE_ID: 'P1AB2CD' });
  const res = await loadChecklistFile(DEFAULT_CONFIG, env);
  if (!res.ok) return t.fail(res.diagnostics.map((d) => d.message).join('\n'));
  const hosts = (v: unknown, key = ''): string[] => {
    if (typeof v === 'string') {
      if (key === 'host') return [v];
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return [new URL(v).hostname];
      return [];
    }
    if (Array.isArray(v)) return v.flatMap((x) => hosts(x));
    if (v !== null && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => hosts(x, k));
    return [];
  };
  const elsewhere = (c: CheckDef) => hosts(c.params).filter((h) => h !== '127.0.0.1');
  t.same(
    res.checklist.checks.filter((c) => elsewhere(c).length > 0).map((c) => `${c.id}: ${elsewhere(c).join(', ')}`),
    [],
    'no parameter names a host the environment did not',
  );
  t.equal(res.checklist.byId.get('tls-api-expiry')!.params.port, 443, 'the TLS port defaults to 443');
  const ports = await loadChecklistFile(DEFAULT_CONFIG, { ...env, API_TLS_PORT: '8443', APP_TLS_PORT: '9443' });
  t.match(ports.ok && ports.checklist.byId.get('tls-api-expiry')!.params, { host: '127.0.0.1', port: 8443 }, 'API_TLS_PORT sets the API TLS port');
  t.match(ports.ok && ports.checklist.byId.get('tls-app-expiry')!.params, { port: 9443 }, 'APP_TLS_PORT sets the app TLS port');
  const ns = await loadChecklistFile(DEFAULT_CONFIG, { ...env, K8S_NAMESPACE: 'shop' });
  const queries = ns.ok ? ns.checklist.checks.filter((c) => c.kind === 'prometheus' || c.kind === 'loki').map((c) => String(c.params.query ?? '')).filter((q) => q.includes('namespace=')) : [];
  t.ok(queries.length >= 9, `${queries.length} queries select the app by namespace`);
  t.same(queries.filter((q) => /namespace="(?!shop")/.test(q)), [], 'K8S_NAMESPACE sets the namespace in every PromQL and LogQL query');
  const credentials = res.checklist.checks.filter((c) => c.kind === 'credential');
  t.equal(credentials.length, 5);
  for (const c of credentials) t.equal(c.params.baseUrl, 'http://127.0.0.1:9', `${c.id}: its provider endpoint comes from the environment`);
});

t.test('waf-blocks-attack sends its attack payload only on the opt-in', async (t) => {
  const seen: string[] = [];
  const waf = await listenHttp((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(/script|OR%201/i.test(req.url ?? '') ? 403 : 200).end();
  });
  t.teardown(() => waf.close());
  const [off] = await runShipped({ API_URL: waf.url }, ['waf-blocks-attack']);
  t.match(off, { state: 'unconfigured', def: { intrusive: 'marked intrusive in the checklist', missing: [{ variable: 'READINESS_ALLOW_INTRUSIVE' }] } });
  t.match(off!.message, /set READINESS_ALLOW_INTRUSIVE=waf-blocks-attack \(or true for every intrusive check\), or pass --allow-intrusive/);
  t.same(seen, [], 'without the opt-in, not one request');
  const [on] = await runShipped({ API_URL: waf.url, READINESS_ALLOW_INTRUSIVE: 'waf-blocks-attack' }, ['waf-blocks-attack']);
  t.equal(on!.state, 'pass', on!.message);
  t.equal(seen.length, 1, 'with it, the one request');
});

/** `readiness validate ...args` in this process, with exactly `env` (the compiled command is run by test/cli.test.ts). */
async function validate(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'readiness', 'validate', ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env });
  return { code, stdout: `${out.join('\n')}\n`, stderr: err.join('\n') };
}

t.test('readiness validate: each missing variable once, most checks first, and the intrusive checks', async (t) => {
  const env = { HOME: dir };
  const plain = await validate([], env);
  t.equal(plain.code, 0, plain.stderr);
  const lines = plain.stdout.split('\n');
  const groups = lines.filter((l) => /^ {2}[A-Z_]+( \(or [^)]*\))?: \d+ checks?: /.test(l));
  const names = groups.map((l) => l.trim().split(/[ :]/)[0]);
  t.equal(new Set(names).size, names.length, 'each variable once');
  const counts = groups.map((l) => Number(/: (\d+) checks?: /.exec(l)![1]));
  t.same(counts, [...counts].sort((a, b) => b - a), 'most checks first');
  t.match(groups[0], /^ {2}KUBECONFIG .*: 24 checks: /);
  t.match(plain.stdout, /\n {2}API_URL: 11 checks: waf-blocks-attack, api-rate-limited, /);
  t.match(plain.stdout, /\n {2}READINESS_ALLOW_INTRUSIVE \(or --allow-intrusive\): 2 checks: waf-blocks-attack, api-rate-limited\n/);
  t.match(plain.stdout, /\nintrusive checks \(run only where the operator opts in: .*\):\n {2}waf-blocks-attack: marked intrusive in the checklist \(not opted in\)\n {2}api-rate-limited: sends a burst of requests .* \(not opted in\)/);

  const all = await validate(['--allow-intrusive'], env);
  t.equal(all.code, 0, all.stderr);
  t.notMatch(all.stdout, /READINESS_ALLOW_INTRUSIVE \(or/, '--allow-intrusive: nothing is missing the opt-in');
  t.match(all.stdout, /waf-blocks-attack: .*\(opted in\)\n {2}api-rate-limited: .*\(opted in\)/);

  const some = await validate([], { ...env, READINESS_ALLOW_INTRUSIVE: 'api-rate-limited,waf-block-attack' });
  t.match(some.stdout, /waf-blocks-attack: .*\(not opted in\)\n {2}api-rate-limited: .*\(opted in\)/);
  t.match(some.stdout, /warning: READINESS_ALLOW_INTRUSIVE names "waf-block-attack", which is not an intrusive check of this checklist/);
});
