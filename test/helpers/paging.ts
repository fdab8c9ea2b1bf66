// The pieces of the paging end-to-end test (test/e2e.test.ts) that bench/page-latency.ts
// shares: the application whose faults are injected, and the shipped Alertmanager example
// pointed at local notification endpoints.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from './service.js';

export interface Route {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
  [k: string]: unknown;
}
export interface AlertmanagerConfig {
  global: Record<string, unknown>;
  route: Route;
  receivers: { name: string; pagerduty_configs?: Record<string, unknown>[]; [k: string]: unknown }[];
  inhibit_rules?: unknown[];
}

export interface LocalEndpoints {
  pagerdutyUrl: string;
  pagerdutyKeyFile: string;
  slackUrlFile: string;
  smtpSmarthost: string;
  smtpPasswordFile: string;
}

const LOCAL_GLOBAL_KEYS = ['slack_api_url_file', 'smtp_smarthost', 'smtp_auth_password_file', 'smtp_require_tls'] as const;
const LOCAL_PAGERDUTY_KEYS = ['url', 'routing_key_file'] as const;
const FAST_ROUTE_KEYS = ['group_wait', 'group_interval'] as const;

/**
 * The example routing pointed at local endpoints: the PagerDuty receiver's url and key file,
 * Slack's webhook URL file, the SMTP relay (plain: the capture speaks no STARTTLS) and password
 * file. With `fastGrouping` (the default), group_wait and group_interval become 1s wherever
 * the example sets them, so the first notification and the resolve go out within a second;
 * without it they stay as shipped (bench/page-latency.ts). Nothing else changes.
 */
export function localAlertmanagerConfig(example: AlertmanagerConfig, local: LocalEndpoints, { fastGrouping = true } = {}): AlertmanagerConfig {
  const c = structuredClone(example);
  Object.assign(c.global, {
    slack_api_url_file: local.slackUrlFile,
    smtp_smarthost: local.smtpSmarthost,
    smtp_auth_password_file: local.smtpPasswordFile,
    smtp_require_tls: false,
  });
  const fast = (r: Route) => {
    for (const k of FAST_ROUTE_KEYS) if (r[k] !== undefined) r[k] = '1s';
    r.routes?.forEach(fast);
  };
  if (fastGrouping) fast(c.route);
  for (const pd of c.receivers.flatMap((r) => r.pagerduty_configs ?? [])) Object.assign(pd, { url: local.pagerdutyUrl, routing_key_file: local.pagerdutyKeyFile });
  return c;
}

/** A config without the keys localAlertmanagerConfig may touch: must equal the example's. */
export function withoutLocalKeys(config: AlertmanagerConfig): AlertmanagerConfig {
  const c = structuredClone(config);
  for (const k of LOCAL_GLOBAL_KEYS) delete c.global[k];
  const strip = (r: Route) => {
    for (const k of FAST_ROUTE_KEYS) delete r[k];
    r.routes?.forEach(strip);
  };
  strip(c.route);
  for (const pd of c.receivers.flatMap((r) => r.pagerduty_configs ?? [])) for (const k of LOCAL_PAGERDUTY_KEYS) delete pd[k];
  return c;
}

export type AppMode = 'ok' | 'http500' | 'down';

/**
 * The app the verify and monitor checks watch. `http500`: every endpoint answers 500 and its
 * traffic is all 5xx; `down`: the process is gone (nothing listens on its port; a restart
 * starts its counters from zero, as a new process does).
 */
export class App {
  mode: AppMode = 'ok';
  #server?: Server;
  #ok = 0;
  #errors = 0;
  #traffic?: NodeJS.Timeout;
  private constructor(readonly port: number) {}

  static async start(): Promise<App> {
    const app = new App(await freePort());
    await app.#listen();
    // 40 requests a second of simulated traffic, counted by status as the app's middleware would.
    app.#traffic = setInterval(() => {
      if (app.mode === 'ok') app.#ok += 4;
      else if (app.mode === 'http500') app.#errors += 4;
    }, 100);
    return app;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async set(mode: AppMode): Promise<void> {
    if (mode === 'down' && this.mode !== 'down') await this.#close();
    if (mode !== 'down' && this.mode === 'down') {
      this.#ok = 0;
      this.#errors = 0;
      await this.#listen();
    }
    this.mode = mode;
  }

  async stop(): Promise<void> {
    clearInterval(this.#traffic);
    await this.#close();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const lines = ['# TYPE http_requests_total counter', `http_requests_total{method="GET",code="200"} ${this.#ok}`];
      // A status the app never answered has no series yet, as with most client libraries.
      if (this.#errors > 0) lines.push(`http_requests_total{method="GET",code="500"} ${this.#errors}`);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
      return;
    }
    if (this.mode === 'http500') {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal"}');
      return;
    }
    if (path === '/health/ready' || path === '/health/live') res.writeHead(200).end('ok');
    else if (path === '/api/login' && req.method === 'POST') res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t-123"}');
    else if (path === '/api/me' && req.headers.authorization === 'Bearer t-123') res.writeHead(200, { 'content-type': 'application/json' }).end('{"user":"smoke"}');
    else res.writeHead(404).end();
  }

  async #listen(): Promise<void> {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => this.#handle(req, res));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.#server = server;
  }

  async #close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

