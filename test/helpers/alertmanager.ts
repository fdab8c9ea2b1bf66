// Alertmanager for tests, plus the places it notifies:
//  - startAlertmanager(): a real Alertmanager (Debian's /usr/bin/prometheus-alertmanager) on a
//    free 127.0.0.1 port with its own temp data directory, clustering off
//    (--cluster.listen-address=), stopped and removed in t.teardown.
//  - captureHttp(): a webhook sink standing in for PagerDuty's Events API and Slack's incoming
//    webhooks: records every POSTed JSON body.
//  - captureSmtp(): a minimal SMTP server that accepts every message (no TLS, no auth) and
//    records envelope and data, standing in for the mail relay.
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';
import { freePort, logTail, removeDir, serviceDir, spawnService, waitFor, type ServiceProcess, type Teardown } from './service.js';

export const ALERTMANAGER_BIN = process.env.ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';
export const AMTOOL_BIN = process.env.AMTOOL_BIN ?? '/usr/bin/amtool';

export interface PostedAlert {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  endsAt?: string;
}

export interface AlertmanagerServer {
  readonly url: string;
  readonly port: number;
  readonly configFile: string;
  readonly logFile: string;
  /** POST /api/v2/alerts, as Prometheus's notifier does. */
  postAlerts(alerts: PostedAlert[]): Promise<void>;
  /** GET /api/v2/alerts. */
  alerts(): Promise<{ labels: Record<string, string>; status: { state: string } }[]>;
  /** Rewrites the configuration file and POSTs /-/reload. */
  reconfigure(config: Record<string, unknown> | string): Promise<void>;
  stop(): Promise<void>;
  running(): boolean;
}

function toYaml(config: Record<string, unknown> | string): string {
  return typeof config === 'string' ? config : YAML.stringify(config);
}

/** Starts Alertmanager for the test `t` with `config` (an object or YAML text). */
export async function startAlertmanager(t: Teardown, config: Record<string, unknown> | string): Promise<AlertmanagerServer> {
  const base = serviceDir('alertmanager');
  t.teardown(() => removeDir(base));
  const configFile = join(base, 'alertmanager.yml');
  const logFile = join(base, 'alertmanager.log');
  writeFileSync(configFile, toYaml(config));

  let proc: ServiceProcess | undefined;
  let port = 0;
  // The free port can be taken between freePort() and Alertmanager binding it: retry then.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const p = spawnService(
      ALERTMANAGER_BIN,
      [
        `--config.file=${configFile}`,
        `--storage.path=${join(base, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        // Clustering would bind 0.0.0.0:9094 and gossip: a test instance stands alone.
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { logFile },
    );
    t.teardown(() => p.stop());
    try {
      await waitFor(
        'alertmanager ready',
        async () => {
          try {
            return (await fetch(`http://127.0.0.1:${port}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok ? true : undefined;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 30_000, everyMs: 100, abortIf: () => (p.running() ? undefined : 'exited') },
      );
      proc = p;
      break;
    } catch (err) {
      await p.stop();
      if (attempt >= 3 || !/address already in use/.test(logTail(logFile, 50))) {
        throw new Error(`alertmanager did not start: ${(err as Error).message}\n${logTail(logFile)}`);
      }
    }
  }

  const url = `http://127.0.0.1:${port}`;
  const p = proc;
  return {
    url,
    port,
    configFile,
    logFile,
    async postAlerts(alerts) {
      const res = await fetch(`${url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`POST /api/v2/alerts: HTTP ${res.status}: ${await res.text()}`);
    },
    async alerts() {
      const res = await fetch(`${url}/api/v2/alerts`, { signal: AbortSignal.timeout(10_000) });
      return (await res.json()) as { labels: Record<string, string>; status: { state: string } }[];
    },
    async reconfigure(config) {
      writeFileSync(configFile, toYaml(config));
      const res = await fetch(`${url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`reload: HTTP ${res.status}: ${await res.text()}\n${logTail(logFile)}`);
    },
    stop: () => p.stop(),
    running: () => p.running(),
  };
}

// ---------------------------------------------------------------------------------------------
// Notification sinks
// ---------------------------------------------------------------------------------------------

export interface CapturedRequest {
  path: string;
  body: unknown;
}

export interface HttpCapture {
  readonly url: string;
  readonly requests: CapturedRequest[];
  /** Resolves with the first captured request `pred` accepts (polling). */
  waitFor(pred: (r: CapturedRequest) => boolean, timeoutMs?: number): Promise<CapturedRequest>;
  close(): Promise<void>;
}

/** Records every request's path and JSON body; answers 200 `{"status":"success"}` like PagerDuty's and `ok` like Slack's. */
export async function captureHttp(t: Teardown): Promise<HttpCapture> {
  const requests: CapturedRequest[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // keep the text
      }
      requests.push({ path: req.url ?? '/', body });
      if ((req.url ?? '').includes('enqueue')) {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: 'x' }));
      } else {
        res.end('ok');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  t.teardown(close);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    waitFor: (pred, timeoutMs = 15_000) => waitFor('captured notification', async () => requests.find(pred), { timeoutMs, everyMs: 50 }),
    close,
  };
}

export interface CapturedMail {
  from: string;
  to: string[];
  data: string;
}

export interface SmtpCapture {
  readonly host: string;
  readonly port: number;
  readonly messages: CapturedMail[];
  waitFor(pred: (m: CapturedMail) => boolean, timeoutMs?: number): Promise<CapturedMail>;
  close(): Promise<void>;
}

/** A minimal SMTP server (RFC 5321's happy path): EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. */
export async function captureSmtp(t: Teardown): Promise<SmtpCapture> {
  const messages: CapturedMail[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.setEncoding('utf8');
    let buf = '';
    let inData = false;
    let mail: CapturedMail = { from: '', to: [], data: '' };
    s.write('220 capture.test ESMTP\r\n');
    s.on('data', (chunk: string) => {
      buf += chunk;
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          mail.data = buf.slice(0, end).replace(/^\.\./gm, '.');
          buf = buf.slice(end + 5);
          inData = false;
          messages.push(mail);
          mail = { from: '', to: [], data: '' };
          s.write('250 2.0.0 queued\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') s.write('250-capture.test\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') s.write('250 capture.test\r\n');
        else if (verb === 'MAIL') {
          mail.from = /<([^>]*)>/.exec(line)?.[1] ?? '';
          s.write('250 2.1.0 ok\r\n');
        } else if (verb === 'RCPT') {
          mail.to.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          s.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          s.write('354 end with <CRLF>.<CRLF>\r\n');
        } else if (verb === 'QUIT') {
          s.end('221 2.0.0 bye\r\n');
        } else if (verb === 'RSET' || verb === 'NOOP') s.write('250 ok\r\n');
        else s.write('502 5.5.2 not implemented\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  t.teardown(close);
  return {
    host: '127.0.0.1',
    port,
    messages,
    waitFor: (pred, timeoutMs = 15_000) => waitFor('captured mail', async () => messages.find(pred), { timeoutMs, everyMs: 50 }),
    close,
  };
}
