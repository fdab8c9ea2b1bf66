// The command the package ships runs from one esbuild bundle (src/build/bundle.ts), probe
// clients included: undici, the AWS SDK (S3, STS), pg and @kubernetes/client-node are
// bundled into chunks loaded on first use. Unit tests import the packages from
// node_modules; this one runs `readiness check` (the bundle) against real or fake servers
// for every client, so a client that bundling broke fails here (a CommonJS package whose
// named exports were lost, an optional dependency, a file read beside a module).
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { runCli } from './helpers/cli.js';
import { fakeS3, fakeSts, S3RVER_KEY } from './helpers/fake-apis.js';
import { FakeKubeApi, node } from './helpers/kube-api.js';
import { startPostgres } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-bundle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('every probe client works from the bundle', async (t) => {
  const web = createServer((_q, r) => r.end('ok'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => web.close());
  const webPort = (web.address() as { port: number }).port;

  const kube = await FakeKubeApi.start();
  t.teardown(() => kube.close());
  kube.put('nodes', node('n1'));
  const kubeconfig = kube.writeKubeconfig(dir);

  const [KEY, SECRET] = ['AKIABUNDLETEST000001', 'bUnDlEsEcReT/000000000000000000000000000'];
  const s3 = await fakeS3(['backups'], { [KEY]: SECRET }, mkdtempSync(join(dir, 's3-')));
  t.teardown(() => s3.close());
  const seeder = new S3Client({ region: 'us-east-1', endpoint: s3.direct, forcePathStyle: true, credentials: S3RVER_KEY });
  await seeder.send(new PutObjectCommand({ Bucket: 'backups', Key: 'db/latest.sql.gz', Body: Buffer.alloc(64, 'x') }));
  seeder.destroy();
  const sts = await fakeSts({ [KEY]: { secretAccessKey: SECRET, account: '123456789012', arn: 'arn:aws:iam::123456789012:user/bundle', userId: 'AIDABUNDLE' } });
  t.teardown(() => sts.close());

  const pg = await startPostgres(t);

  const check = (id: string, probe: string, withs: string, expect: string) => `  - id: ${id}
    title: ${id}
    section: testing
    severity: critical
    phase: pre-deploy
    probe: ${probe}
    with: ${withs}
    expect: [${JSON.stringify(expect)}]
    timeout: 20s
    interval: 1m
`;
  const file = join(dir, 'clients.yaml');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: bundle-test
checks:
${check('http', 'http', `{ url: "http://127.0.0.1:${webPort}/" }`, 'status == 200')}${check('kubernetes', 'kubernetes', `{ measure: nodes, kubeconfig: "${kubeconfig}" }`, 'nodes_ready == 1')}${check('s3', 's3', `{ bucket: backups, prefix: db/, endpoint: "${s3.url}", forcePathStyle: true }`, 'objects == 1')}${check('sts', 'credential', `{ provider: aws, baseUrl: "${sts.url}" }`, 'valid == true')}${check('postgres', 'postgres', `{ url: "${pg.url}", measure: ready }`, 'status == "accepting"')}`,
  );
  const r = await runCli(['check', '-c', file, '--format', 'json'], { env: { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET }, timeoutMs: 120_000 });
  const body = JSON.parse(r.stdout || '{}') as { ready?: boolean; checks?: { id: string; state: string; message: string }[] };
  const states = Object.fromEntries((body.checks ?? []).map((c) => [c.id, `${c.state}: ${c.message}`]));
  for (const id of ['http', 'kubernetes', 's3', 'sts', 'postgres']) t.match(states[id], /^pass: /, `${id} ran from the bundle (${states[id] ?? r.stderr})`);
  t.equal(r.code, 0, r.stderr);
});
