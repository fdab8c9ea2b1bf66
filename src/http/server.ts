// The HTTP API: one fastify plugin per concern, all reading the Service. Nothing here runs a
// probe on the request path except POST /checks/:id/run, which is the point of that route.
import type { ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import compress from '@fastify/compress';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Bindings, ChildLoggerOptions, Logger } from 'pino';
import { displaySecret } from '../config/load.js';
import { redact } from '../harness.js';
import { ApiError } from '../errors.js';
import { createMetrics } from '../metrics.js';
import { recordsPlugin } from './records.js';
import { AnswerStatus, rolloutPlugin } from './rollout.js';
import { sendCheckNotFound, sendCheckPage, uiPlugin, wantsHtml } from '../ui/plugin.js';
import type { Service } from '../service.js';
import { describe, matches, parseFilters, type CheckView } from '../state.js';
import { ReadinessAnswers } from './answers.js';
import { VERSION } from '../version.js';

export interface ServerOptions {
  service: Service;
  log: Logger;
  /** READINESS_API_TOKEN: with none, every write is refused. */
  apiToken?: string;
}

/**
 * A request's logger, made a pino child (with its reqId) only when something is logged: a
 * gate poll or a scrape logs nothing, and building a child per request cost the /readiness
 * path more than the rest of fastify's per-request work (bench/readiness-throughput.ts).
 */
class LazyRequestLogger {
  #child: FastifyBaseLogger | undefined;
  constructor(
    readonly parent: FastifyBaseLogger,
    readonly bindings: Bindings,
    readonly options: ChildLoggerOptions,
  ) {}
  get #log(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings, this.options));
  }
  get level(): string {
    return this.#child?.level ?? this.options.level ?? this.parent.level;
  }
  set level(level: string) {
    this.#log.level = level;
  }
  fatal(...a: LogArgs): void {
    this.#log.fatal(...a);
  }
  error(...a: LogArgs): void {
    this.#log.error(...a);
  }
  warn(...a: LogArgs): void {
    this.#log.warn(...a);
  }
  info(...a: LogArgs): void {
    this.#log.info(...a);
  }
  debug(...a: LogArgs): void {
    this.#log.debug(...a);
  }
  trace(...a: LogArgs): void {
    this.#log.trace(...a);
  }
  silent(...a: LogArgs): void {
    this.#log.silent(...a);
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#log.child(bindings, options);
  }
}
type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]];

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time bearer check: compares digests so the token's length does not leak either. */
export function makeAuth(token: string | undefined) {
  const want = token ? digest(token) : undefined;
  return async (req: FastifyRequest): Promise<void> => {
    if (!want) throw new ApiError('RDY_WRITES_DISABLED');
    // Stryker disable next-line StringLiteral: any default that is not a Bearer header is the same 401 (no header at all)
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) throw new ApiError('RDY_UNAUTHORIZED');
    if (!timingSafeEqual(digest(m[1]!), want)) throw new ApiError('RDY_FORBIDDEN');
  };
}

/** A check as /checks shows it: secrets replaced by *** in params and messages. */
function checkDetail(v: CheckView) {
  const { def } = v;
  const params = Object.fromEntries(
    Object.entries(def.params).map(([k, x]) => [k, def.probe.secretParams?.includes(k) ? displaySecret(x) : typeof x === 'string' ? redact(x, def.secrets) : x]),
  );
  return {
    ...describe(v),
    probe: def.kind,
    gate: def.gate,
    interval: def.intervalMs / 1000,
    ...(def.schedule !== undefined && { schedule: def.schedule }),
    timeout: def.timeoutMs / 1000,
    warn: def.warn.map((c) => c.source),
    dependsOn: def.dependsOn,
    params,
    ...(v.lastPass !== undefined && { lastPass: new Date(v.lastPass).toISOString() }),
    ...(v.durationMs !== undefined && { durationMs: Math.round(v.durationMs * 10) / 10 }),
    ...(v.status && { conditions: v.status.last.conditions }),
    // HA: which replica ran the latest run (and under which lease epoch).
    ...(v.status?.last.ranBy && { ranBy: v.status.last.ranBy }),
  };
}

/** GET /checks/:id: the check as /checks shows it (secrets masked) and its recent results. */
export async function checkWithHistory(service: Service, id: string, limit: number) {
  const v = service.scheduler.view(id);
  if (!v) throw new ApiError('RDY_CHECK_NOT_FOUND', JSON.stringify(id));
  const history = (await service.opts.store.history(v.def.id, limit)).map((r) => ({
    state: r.state,
    ...(r.reason !== undefined && { reason: r.reason }),
    message: r.message,
    ...(r.value !== undefined && { value: r.value }),
    startedAt: new Date(r.startedAt).toISOString(),
    durationMs: Math.round(r.durationMs * 10) / 10,
    ...(r.ranBy && { ranBy: r.ranBy }),
  }));
  return { ...checkDetail(v), history };
}

/** Bytes of a body handed to the socket between two turns of the event loop (sendParts). */
export const SEND_SLICE = 1 << 20;

/**
 * Writes the kept pieces of a body to the socket with their total length, in slices of at most
 * SEND_SLICE bytes: each slice corked (one writev, no turn of the event loop per piece, no copy
 * into one 10 MB buffer), then a turn of the event loop (or the socket's drain) before the next,
 * so a request that came in meanwhile (a /readiness) waits for one slice, not for the kernel to
 * take 10 MB. Streaming the pieces through a Readable instead made each piece wait for a turn of
 * a busy event loop (a 10,000-check scrape 5x slower); copying them into one buffer per scrape
 * cost more CPU than the scrape's own work and fed the garbage collector 10 MB a scrape.
 * Resolves when the last slice is handed over, or when the client has gone.
 */
export async function sendParts(reply: FastifyReply, contentType: string, parts: readonly Buffer[]): Promise<void> {
  let length = 0;
  for (const p of parts) length += p.length;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': contentType, 'content-length': length });
  let i = 0;
  let at = 0;
  for (;;) {
    res.cork();
    let room = SEND_SLICE;
    let flowing = true;
    while (i < parts.length && room > 0) {
      const p = parts[i]!;
      const n = Math.min(p.length - at, room);
      if (n > 0) flowing = res.write(at === 0 && n === p.length ? p : p.subarray(at, at + n));
      room -= n;
      at += n;
      if (at === p.length) {
        i++;
        at = 0;
      }
    }
    if (i === parts.length) {
      res.end();
      res.uncork();
      return;
    }
    res.uncork();
    // A turn even when the socket took the slice at once (its drain would come in a process.nextTick
    // of this same turn), then, if the socket still holds more than it wants, its drain.
    await nextTurn();
    if (!flowing && res.writableNeedDrain && !res.destroyed) await drained(res);
    if (res.destroyed) return;
  }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The socket took what was written (or the response is over: the client went away). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

// Each filter may be repeated (?check=a&check=b) or comma-separated (?check=a,b).
const List = (description: string) => ({ type: 'array', items: { type: 'string' }, description });
const FilterQuery = {
  type: 'object',
  properties: {
    severity: List('critical, high, medium, low'),
    phase: List('pre-deploy, deploy, verify, monitor, post-deploy'),
    section: List('checklist sections'),
    check: List('check ids'),
    verbose: { type: 'string', enum: ['0', '1', 'true', 'false'] },
  },
} as const;

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { service } = opts;
  const app = Fastify({
    loggerInstance: opts.log.child({ component: 'http' }) as FastifyBaseLogger,
    // Scrapes and gate polls every few seconds would drown the log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (logger, bindings, options) => new LazyRequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger,
    // Repeated query keys (?check=a&check=b) arrive as arrays.
    routerOptions: { ignoreTrailingSlash: true },
    // Unknown keys in a body are rejected, not silently dropped: a typo must not lose data.
    ajv: { customOptions: { removeAdditional: false } },
  });
  const auth = makeAuth(opts.apiToken);

  await app.register(swagger, {
    openapi: {
      info: { title: 'readiness-exporter', version: VERSION, description: 'Deployment checklist as live signals: /readiness gate, checks, metrics.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send({ error: err.code, message: err.message });
    if (err.validation) return reply.code(400).send({ error: 'RDY_BAD_REQUEST', message: `bad request: ${err.message}` });
    // fastify's own refusals (body parser, content type): 413 and 415 have their own codes, every
    // other 4xx (bad JSON, empty JSON body, bad Content-Length) is a 400 RDY_BAD_REQUEST.
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ error: 'RDY_PAYLOAD_TOO_LARGE', message: new ApiError('RDY_PAYLOAD_TOO_LARGE', err.message).message });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(415).send({ error: 'RDY_UNSUPPORTED_MEDIA_TYPE', message: new ApiError('RDY_UNSUPPORTED_MEDIA_TYPE', err.message).message });
    if (err.statusCode && err.statusCode < 500) return reply.code(400).send({ error: 'RDY_BAD_REQUEST', message: `bad request: ${err.message}` });
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'RDY_INTERNAL', message: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError('RDY_NOT_FOUND', `${req.method} ${req.url.split('?')[0]}`);
    return reply.code(404).send({ error: e.code, message: e.message });
  });

  const health: FastifyPluginAsync = async (f) => {
    f.get('/healthz', { schema: { description: 'Process is alive (does not reflect check states); in HA, which checks this replica runs.' } }, async () => {
      const ha = service.opts.ownership;
      return {
        status: 'ok',
        version: VERSION,
        store: service.storeHealth(),
        ...(ha && { replica: { id: ha.replicaId, runs: ha.owned(), ...ha.describe?.() } }),
      };
    });
  };

  const metrics: FastifyPluginAsync = async (f) => {
    const metrics = createMetrics(service);
    f.get('/metrics', { schema: { description: 'Prometheus text exposition of every check.' } }, async (_req, reply) => {
      const parts = await metrics.scrapeParts();
      await sendParts(reply, metrics.contentType, parts);
    });
  };

  const ready: FastifyPluginAsync = async (f) => {
    const answers = new ReadinessAnswers(service);
    const querystring = {
      ...FilterQuery,
      properties: {
        ...FilterQuery.properties,
        // Argo Rollouts' web metric makes any non-2xx an error, not a verdict: it asks for 200 and reads `ready`.
        notReadyStatus: AnswerStatus('HTTP status when not ready (Argo Rollouts web metric: 200, then read $.ready)', 503),
      },
    } as const;
    const description = 'Readiness verdict: 200 when every gating check that matches the filters passes, notReadyStatus (default 503) otherwise.';
    f.route({
      method: ['GET', 'POST'],
      url: '/readiness',
      schema: { description: `${description} POST is accepted with any body and changes nothing, for webhook callers (Flagger) that always POST.`, querystring },
      handler: async (req: FastifyRequest<{ Querystring: Record<string, unknown> }>, reply: FastifyReply) => {
        const q = req.url.indexOf('?');
        const { code, body } = answers.answer(q < 0 ? '' : req.url.slice(q), req.query);
        return reply.code(code).type('application/json; charset=utf-8').send(body);
      },
    });
  };

  const checks: FastifyPluginAsync = async (f) => {
    f.get('/checks', { schema: { description: 'Every check with its state.', querystring: FilterQuery } }, async (req: FastifyRequest<{ Querystring: Record<string, unknown> }>) => {
      const parsed = parseFilters(req.query, service.checklist());
      if (!parsed.ok) throw new ApiError('RDY_BAD_FILTER', parsed.error);
      return { checklist: service.checklist().name, checks: service.views().filter((v) => matches(v.def, parsed.filters)).map(checkDetail) };
    });
    // Only this route compresses (the check's page and its JSON); /checks and the writes do not.
    await f.register(compress, { global: false });
    f.get(
      '/checks/:id',
      {
        compress: {},
        schema: {
          description: 'One check with its recent history (newest first). Browsers (Accept: text/html) get its page; `?format=html|json` forces one.',
          params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
          querystring: {
            type: 'object',
            properties: {
              limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'results of history (default 20; 60 on the page)' },
              format: { type: 'string', enum: ['html', 'json'] },
            },
          },
        },
      },
      async (req: FastifyRequest<{ Params: { id: string }; Querystring: { limit?: number } }>, reply) => {
        const html = wantsHtml(req);
        reply.header('vary', 'Accept');
        if (html && !service.scheduler.view(req.params.id)) return sendCheckNotFound(reply, service, req.params.id);
        const detail = await checkWithHistory(service, req.params.id, req.query.limit ?? (html ? 60 : 20));
        return html ? sendCheckPage(reply, service, detail) : detail;
      },
    );
    f.post<{ Params: { id: string } }>(
      '/checks/:id/run',
      {
        preHandler: auth,
        schema: {
          description: 'Runs the check now and answers with its new state (bearer token).',
          security: [{ bearer: [] }],
          params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        },
      },
      async (req) => {
        const v = service.scheduler.view(req.params.id);
        if (!v) throw new ApiError('RDY_CHECK_NOT_FOUND', JSON.stringify(req.params.id));
        if (v.def.unconfigured) throw new ApiError('RDY_CHECK_UNCONFIGURED', v.def.id, v.def.unconfigured);
        // In HA a check that probes a target runs on its owner: another replica asks it and waits.
        await service.runNow(v.def.id).catch(() => {
          throw new ApiError('RDY_SHUTTING_DOWN');
        });
        return checkDetail(service.scheduler.view(v.def.id)!);
      },
    );
  };

  await app.register(health);
  await app.register(metrics);
  await app.register(ready);
  await app.register(checks);
  await app.register(recordsPlugin(service, auth));
  await app.register(rolloutPlugin(service));
  // The status page: `/` for browsers (JSON clients keep this index), /ui/assets/*, /ui/state.
  await app.register(
    uiPlugin(service, () => ({
      name: 'readiness-exporter',
      version: VERSION,
      checklist: service.checklist().name,
      endpoints: ['/readiness', '/rollback', '/metrics', '/checks', '/checks/:id', '/attestations', '/deployments', '/healthz', '/readyz', '/docs'],
    })),
  );
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
