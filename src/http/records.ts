// Attestations and deployments: the writes people and deploy scripts make. Each is
// acknowledged (201) only after the store has it durably; with the store down the answer
// is 503 and nothing is claimed to be saved.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { formatDuration, parseDuration } from '../config/duration.js';
import type { CheckDef } from '../config/types.js';
import { ApiError } from '../errors.js';
import type { AttestationParams } from '../probes/attestation.js';
import type { Service } from '../service.js';
import { StoreUnavailableError, type Attestation, type Deployment } from '../store/types.js';

/** Clock skew tolerated between the caller and this service. */
const SKEW_MS = 60_000;

export interface AttestationBody {
  check: string;
  by: string;
  role: string;
  note?: string;
  evidenceUrl?: string;
  expiresAt?: string;
  release?: string;
}

/** Checks an attestation body against the check it signs; returns the record to store. */
export function buildAttestation(def: CheckDef | undefined, body: AttestationBody, now: number): Attestation {
  const bad = (msg: string) => new ApiError('RDY_BAD_ATTESTATION', msg);
  if (!def) throw bad(`unknown check ${JSON.stringify(body.check)}`);
  if (def.kind !== 'attestation') throw bad(`check ${def.id} is measured by the ${def.kind} probe, not by attestations`);
  const p = def.params as unknown as AttestationParams;
  if (!p.roles.includes(body.role)) throw bad(`role ${JSON.stringify(body.role)} cannot attest ${def.id}; allowed: ${p.roles.join(', ')}`);
  const maxAgeMs = parseDuration(p.maxAge)!;
  let expiresAt = now + maxAgeMs;
  if (body.expiresAt !== undefined) {
    const t = Date.parse(body.expiresAt);
    if (Number.isNaN(t)) throw bad(`expiresAt ${JSON.stringify(body.expiresAt)} is not an ISO 8601 time`);
    if (t <= now) throw bad(`expiresAt ${body.expiresAt} is in the past`);
    if (t > now + maxAgeMs + SKEW_MS) throw bad(`expiresAt ${body.expiresAt} is beyond the check's maxAge of ${formatDuration(maxAgeMs)} (latest allowed ${new Date(now + maxAgeMs).toISOString()})`);
    expiresAt = Math.min(t, now + maxAgeMs);
  }
  const release = body.release ?? p.release;
  if (p.release !== undefined && release !== p.release) throw bad(`check ${def.id} is signed per release: this is release ${JSON.stringify(p.release)}, not ${JSON.stringify(release)}`);
  if (body.evidenceUrl !== undefined && !/^https?:\/\/\S+$/.test(body.evidenceUrl)) throw bad(`evidenceUrl must be an http(s) URL`);
  const a: Attestation = { id: randomUUID(), check: def.id, by: body.by.trim(), role: body.role, createdAt: now, expiresAt };
  if (!a.by) throw bad('by must name a person');
  if (body.note !== undefined) a.note = body.note;
  if (body.evidenceUrl !== undefined) a.evidenceUrl = body.evidenceUrl;
  if (release !== undefined) a.release = release;
  return a;
}

function show(a: Attestation, now: number) {
  return {
    ...a,
    createdAt: new Date(a.createdAt).toISOString(),
    expiresAt: new Date(a.expiresAt).toISOString(),
    ...(a.revokedAt !== undefined && { revokedAt: new Date(a.revokedAt).toISOString() }),
    active: a.revokedAt === undefined && a.expiresAt > now,
  };
}

function showDeployment(d: Deployment) {
  return { ...d, at: new Date(d.at).toISOString(), createdAt: new Date(d.createdAt).toISOString() };
}

async function durably<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw new ApiError('RDY_STORE_UNAVAILABLE', err.message);
    throw err;
  }
}

export function recordsPlugin(service: Service, auth: (req: FastifyRequest) => Promise<void>): FastifyPluginAsync {
  return async (f) => {
    const store = service.opts.store;
    f.post<{ Body: AttestationBody }>(
      '/attestations',
      {
        preHandler: auth,
        schema: {
          description: 'Signs an attestation for a check answered by attestations (bearer token). 201 once it is durable.',
          security: [{ bearer: [] }],
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['check', 'by', 'role'],
            properties: {
              check: { type: 'string', minLength: 1 },
              by: { type: 'string', minLength: 1, maxLength: 200 },
              role: { type: 'string', minLength: 1, maxLength: 100 },
              note: { type: 'string', maxLength: 4000 },
              evidenceUrl: { type: 'string', maxLength: 2000 },
              expiresAt: { type: 'string', description: 'ISO 8601; default and maximum: now + the check\'s maxAge' },
              release: { type: 'string', maxLength: 200 },
            },
          },
        },
      },
      async (req, reply) => {
        const now = Date.now();
        const a = buildAttestation(service.checklist().byId.get(req.body.check), req.body, now);
        await durably(() => store.addAttestation(a));
        req.log.info({ attestation: a.id, check: a.check, by: a.by, role: a.role }, 'attestation recorded');
        // Answer with the state computed from records that include this attestation.
        await service.recordsChanged({ attestations: new Set([a.check]), deployment: false }, true);
        return reply.code(201).send({ attestation: show(a, now), check: { id: a.check, state: service.scheduler.view(a.check)?.state } });
      },
    );

    f.get<{ Querystring: { check?: string; active?: boolean } }>(
      '/attestations',
      {
        schema: {
          description: 'Attestations, newest first; ?check= and ?active=true filter.',
          querystring: { type: 'object', properties: { check: { type: 'string' }, active: { type: 'boolean' } } },
        },
      },
      async (req) => {
        const now = Date.now();
        const list = store.attestations(req.query.check).map((a) => show(a, now));
        return { attestations: req.query.active === undefined ? list : list.filter((a) => a.active === req.query.active) };
      },
    );

    f.post<{ Params: { id: string }; Body: { by: string } }>(
      '/attestations/:id/revoke',
      {
        preHandler: auth,
        schema: {
          description: 'Revokes an attestation (bearer token); the check is re-evaluated at once.',
          security: [{ bearer: [] }],
          params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
          body: { type: 'object', additionalProperties: false, required: ['by'], properties: { by: { type: 'string', minLength: 1, maxLength: 200 } } },
        },
      },
      async (req) => {
        const a = await durably(() => store.revokeAttestation(req.params.id, req.body.by, Date.now()));
        if (!a) throw new ApiError('RDY_ATTESTATION_NOT_FOUND', JSON.stringify(req.params.id));
        req.log.info({ attestation: a.id, check: a.check, by: req.body.by }, 'attestation revoked');
        await service.recordsChanged({ attestations: new Set([a.check]), deployment: false }, true);
        return { attestation: show(a, Date.now()) };
      },
    );

    f.post<{ Body: { version: string; at?: string; by?: string } }>(
      '/deployments',
      {
        preHandler: auth,
        schema: {
          description: 'Records a deployment (bearer token): opens the post-deploy monitoring window. 201 once durable.',
          security: [{ bearer: [] }],
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['version'],
            properties: { version: { type: 'string', minLength: 1, maxLength: 200 }, at: { type: 'string' }, by: { type: 'string', maxLength: 200 } },
          },
        },
      },
      async (req, reply) => {
        const now = Date.now();
        let at = now;
        if (req.body.at !== undefined) {
          at = Date.parse(req.body.at);
          if (Number.isNaN(at)) throw new ApiError('RDY_BAD_DEPLOYMENT', `at ${JSON.stringify(req.body.at)} is not an ISO 8601 time`);
          if (at > now + SKEW_MS) throw new ApiError('RDY_BAD_DEPLOYMENT', `at ${req.body.at} is in the future`);
        }
        const d: Deployment = { id: randomUUID(), version: req.body.version, at, createdAt: now, source: 'api' };
        if (req.body.by) d.by = req.body.by;
        await durably(() => store.addDeployment(d));
        req.log.info({ deployment: d.id, version: d.version }, 'deployment recorded');
        // Monitor checks and post-deployment duties change meaning now: evaluate them at once.
        await service.recordsChanged({ attestations: new Set(), deployment: true }, true);
        const w = service.deploymentWindow();
        return reply.code(201).send({ deployment: showDeployment(d), window: { open: w.open, endsAt: w.endsAt && new Date(w.endsAt).toISOString() } });
      },
    );

    f.get('/deployments', { schema: { description: 'Deployments, newest first.' } }, async () => {
      const w = service.deploymentWindow();
      return { deployments: store.deployments(50).map(showDeployment), window: { open: w.open, ...(w.endsAt && { endsAt: new Date(w.endsAt).toISOString() }) } };
    });
  };
}
