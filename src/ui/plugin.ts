// The status page's routes: `GET /` for browsers (JSON clients keep the index), the page's
// own assets under /ui/assets/, and /ui/state, which the page polls to stay live. Compression
// is registered inside this plugin only, so /readiness and /metrics are untouched by it.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import compress from '@fastify/compress';
import accepts from 'accepts';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Checklist } from '../config/types.js';
import { ApiError } from '../errors.js';
import { packagePath } from '../paths.js';
import type { Service } from '../service.js';
import { VERSION } from '../version.js';
import type { Html } from './html.js';
import { pageModel } from './model.js';
import { checkPage, notFoundPage, overviewPage, panels, type AssetUrls, type CheckDetailJson, type Panels } from './render.js';

/** The page's files: served from memory, named by content hash so browsers may keep them. */
const ASSET_FILES = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
} as const;
type AssetName = keyof typeof ASSET_FILES;

interface Asset {
  body: Buffer;
  type: string;
  hash: string;
}

let assetsLoading: Promise<Map<string, Asset>> | undefined;

/** Loads ui/* once per process (from the package root: src/paths.ts). */
export function loadAssets(): Promise<Map<string, Asset>> {
  assetsLoading ??= (async () => {
    const out = new Map<string, Asset>();
    for (const [name, type] of Object.entries(ASSET_FILES)) {
      const body = await readFile(packagePath('ui', name));
      out.set(name, { body, type, hash: createHash('sha256').update(body).digest('hex').slice(0, 16) });
    }
    return out;
  })();
  return assetsLoading;
}

function assetUrls(assets: Map<string, Asset>): AssetUrls {
  const url = (n: AssetName) => `/ui/assets/${n}?v=${assets.get(n)!.hash}`;
  return { css: url('app.css'), js: url('app.js'), icon: url('icon.svg') };
}

/**
 * Only this service's own files run or style the page; nothing inline, no other origin, no
 * form posts (the page writes through fetch with the bearer header), and no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store');
}

/**
 * Whether to answer with the page: `?format=html|json` decides when given; otherwise the
 * Accept header, with JSON first so `*\/*`, no header and API clients keep getting JSON.
 */
export function wantsHtml(req: FastifyRequest): boolean {
  const format = (req.query as { format?: unknown } | undefined)?.format;
  if (format === 'html') return true;
  if (format === 'json') return false;
  return accepts(req.raw).type(['json', 'html']) === 'html';
}

// A checklist reload makes a new Checklist object; the page reloads its structure when the
// generation changes. The boot id makes a restarted service a new generation too.
const BOOT = randomBytes(4).toString('hex');
const generations = new WeakMap<Checklist, string>();
let nextGeneration = 1;
function generation(c: Checklist): string {
  let g = generations.get(c);
  if (!g) generations.set(c, (g = `${BOOT}-${nextGeneration++}`));
  return g;
}

const fingerprint = (h: Html) => createHash('sha256').update(h.value).digest('base64url').slice(0, 12);

function renderPanels(p: Panels): Record<keyof Panels, { fp: string; html: string }> {
  const out = {} as Record<keyof Panels, { fp: string; html: string }>;
  for (const k of Object.keys(p) as (keyof Panels)[]) out[k] = { fp: fingerprint(p[k]), html: p[k].value };
  return out;
}

/** Sends the HTML page of one check, built from exactly what GET /checks/:id answers. */
export async function sendCheckPage(reply: FastifyReply, service: Service, detail: CheckDetailJson): Promise<FastifyReply> {
  const assets = await loadAssets();
  const html = checkPage(detail, {
    assets: assetUrls(assets),
    checklist: service.checklist().name,
    version: VERSION,
    gating: service.views().find((v) => v.def.id === detail.id)?.gating ?? detail.gate,
    now: Date.now(),
  });
  return securityHeaders(reply).type('text/html; charset=utf-8').send(html);
}

/** How long open pages share one /ui/state snapshot. */
const SNAPSHOT_TTL_MS = 1000;

interface Snapshot {
  body: {
    gen: string;
    now: number;
    title: string;
    checks: { id: string; state: string; reason?: string; message: string; value?: number; lastRun?: number; gating: boolean }[];
    sections: Record<string, { pass: number; total: number; passing: boolean }>;
  };
  panels: Record<keyof Panels, { fp: string; html: string }>;
}

function buildSnapshot(service: Service, now: number): Snapshot {
  const m = pageModel(service, now);
  const all = m.phases.find((p) => p.phase === 'all')!;
  return {
    body: {
      gen: generation(m.checklist),
      now: m.now,
      title: `${m.rollback.recommended ? 'ROLL BACK · ' : ''}${all.ready ? 'Ready' : 'Not ready'} · ${m.checklist.name}`,
      checks: m.sections.flatMap((s) =>
        s.checks.map((v) => ({
          id: v.def.id,
          state: v.state,
          ...(v.reason !== undefined && { reason: v.reason }),
          message: v.message,
          ...(v.value !== undefined && { value: v.value }),
          ...(v.lastRun !== undefined && { lastRun: v.lastRun }),
          gating: v.gating,
        })),
      ),
      sections: Object.fromEntries(m.sections.map((s) => [s.name, { pass: s.pass, total: s.total, passing: s.passing }])),
    },
    panels: renderPanels(panels(m)),
  };
}

/** A browser's 404 for a check id that is not in the checklist. */
export async function sendCheckNotFound(reply: FastifyReply, service: Service, id: string): Promise<FastifyReply> {
  const assets = await loadAssets();
  const html = notFoundPage(id, { assets: assetUrls(assets), checklist: service.checklist().name, version: VERSION });
  return securityHeaders(reply).code(404).type('text/html; charset=utf-8').send(html);
}

const StateQuery = {
  type: 'object',
  properties: {
    verdict: { type: 'string', maxLength: 64 },
    deployment: { type: 'string', maxLength: 64 },
    signoffs: { type: 'string', maxLength: 64 },
  },
} as const;

/**
 * @param index the JSON answer of `GET /` for API clients: server.ts keeps it beside the
 * routes it lists.
 */
export function uiPlugin(service: Service, index: () => object): FastifyPluginAsync {
  return async (f) => {
    const assets = await loadAssets();
    const urls = assetUrls(assets);

    // Every open page polls every 2 s: within a second they share one snapshot, so the cost
    // does not grow with the number of pages. A sign-off or a deployment (what a person just
    // did and waits to see) makes a new one at once.
    let cached: { at: number; key: string; checklist: Checklist; value: Snapshot } | undefined;
    const recordsKey = () => {
      const atts = service.opts.store.attestations();
      return `${atts.length}:${atts.filter((a) => a.revokedAt !== undefined).length}:${service.opts.store.deployments(1)[0]?.id ?? ''}`;
    };
    const snapshot = (): Snapshot => {
      const now = Date.now();
      const key = recordsKey();
      if (cached && now - cached.at < SNAPSHOT_TTL_MS && cached.key === key && cached.checklist === service.checklist()) return cached.value;
      const value = buildSnapshot(service, now);
      cached = { at: now, key, checklist: service.checklist(), value };
      return value;
    };
    // Everything this plugin answers is text that compresses well; /readiness is outside it.
    await f.register(compress, { threshold: 1024 });

    f.get(
      '/',
      {
        schema: {
          description: 'Browsers (Accept: text/html) get the status page; JSON clients get the index of endpoints. `?format=html|json` forces one.',
          querystring: { type: 'object', properties: { format: { type: 'string', enum: ['html', 'json'] } } },
        },
      },
      async (req, reply) => {
        reply.header('vary', 'Accept');
        if (!wantsHtml(req)) return index();
        const m = pageModel(service);
        const fps = renderPanels(panels(m));
        const body = overviewPage(m, {
          assets: urls,
          gen: generation(m.checklist),
          fingerprints: { verdict: fps.verdict.fp, deployment: fps.deployment.fp, signoffs: fps.signoffs.fp },
        });
        return securityHeaders(reply).type('text/html; charset=utf-8').send(body);
      },
    );

    f.get(
      '/ui/state',
      {
        schema: {
          description:
            "What the status page polls to stay live: every check's state, the section counts, and the panels (verdict, deployment, sign-offs) whose fingerprint differs from the one the page sent.",
          querystring: StateQuery,
        },
      },
      async (req: FastifyRequest<{ Querystring: Partial<Record<keyof Panels, string>> }>, reply) => {
        const s = snapshot();
        const changed: Partial<Record<keyof Panels, { fp: string; html: string }>> = {};
        for (const k of Object.keys(s.panels) as (keyof Panels)[]) if (req.query[k] !== s.panels[k].fp) changed[k] = s.panels[k];
        reply.header('cache-control', 'no-store');
        return { ...s.body, panels: changed };
      },
    );

    f.get<{ Params: { name: string }; Querystring: { v?: string } }>(
      '/ui/assets/:name',
      {
        schema: {
          description: "The status page's script, style sheet and icon. With `?v=` equal to the file's hash the answer may be cached for a year.",
          params: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
          querystring: { type: 'object', properties: { v: { type: 'string' } } },
        },
      },
      async (req, reply) => {
        const a = assets.get(req.params.name);
        if (!a) throw new ApiError('RDY_NOT_FOUND', `GET /ui/assets/${req.params.name}`);
        const etag = `"${a.hash}"`;
        reply
          .header('etag', etag)
          .header('x-content-type-options', 'nosniff')
          .header('cache-control', req.query.v === a.hash ? 'public, max-age=31536000, immutable' : 'no-cache');
        if (req.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.type(a.type).send(a.body);
      },
    );
  };
}
