// What deploy tools and Kubernetes ask of one replica, beside /readiness:
//   GET /readyz     can this replica answer? (the Pod's readinessProbe; says nothing about checks)
//   GET /rollback   should the latest deployment be rolled back? (Argo Rollouts, Flagger, CI)
// /rollback reads the one rollback verdict, Service.rollbackCauses, so it always agrees with
// /readiness's `rollback` block and readiness_rollback_recommended.
//
// The answer's HTTP status is what these tools act on, and they read it differently: a shell
// gate (`curl -f`) and Flagger's pre-rollout/rollout hooks treat non-2xx as "bad"; Flagger's
// rollback hook rolls back on 2xx (200-202); Argo Rollouts' web metric turns any non-2xx into a
// measurement *error* and reads the verdict from the JSON body. So the status for each outcome
// can be chosen per request (as Vault's /sys/health does), while the body always carries the
// verdict: ?rollbackStatus=200&okStatus=409 for Flagger's rollback hook, ?rollbackStatus=200
// for Argo. docs/api.md and docs/deploy.md have the worked examples.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Service } from '../service.js';
import { describe } from '../state.js';

/** An HTTP status a caller may ask for: 2xx, 4xx or 5xx (never a redirect or 1xx). */
export const AnswerStatus = (description: string, dflt: number) =>
  ({ type: 'integer', minimum: 200, maximum: 599, not: { minimum: 300, maximum: 399 }, default: dflt, description }) as const;

export function rolloutPlugin(service: Service): FastifyPluginAsync {
  return async (f) => {
    f.get(
      '/readyz',
      {
        schema: {
          description:
            'This replica can answer (Kubernetes readinessProbe): 200 once the checklist is loaded, the store restored and scheduling started; 503 while starting or draining after SIGTERM. ' +
            'Independent of the checked systems (that is /readiness) and of the store being up (a replica with PostgreSQL down still serves from memory).',
        },
      },
      async (_req, reply) => {
        const state = service.lifecycle;
        const body = { status: state === 'running' ? 'ready' : state, checklist: service.checklist().name, checks: service.checklist().checks.length };
        return reply.code(state === 'running' ? 200 : 503).send(body);
      },
    );

    const handler = async (req: FastifyRequest<{ Querystring: { rollbackStatus: number; okStatus: number } }>, reply: FastifyReply) => {
      const now = Date.now();
      const views = service.views(now);
      const causes = service.rollbackCauses(views);
      const w = service.deploymentWindow(now);
      const recommended = causes.length > 0;
      const body: Record<string, unknown> = {
        recommended,
        checklist: service.checklist().name,
        evaluatedAt: new Date(now).toISOString(),
        message: verdictMessage(recommended, causes.map((v) => `${v.def.id} (${v.state}${v.reason ? `: ${v.reason}` : ''})`), w),
        causes: causes.map(describe),
      };
      if (w.deployment) {
        body.deployment = { version: w.deployment.version, at: new Date(w.deployment.at).toISOString(), windowOpen: w.open, windowEndsAt: new Date(w.endsAt!).toISOString() };
      }
      const store = service.storeHealth();
      if (!store.ok) body.store = store;
      return reply.code(recommended ? req.query.rollbackStatus : req.query.okStatus).send(body);
    };
    const schema = {
      description:
        'Rollback verdict for the latest deployment: recommended when a gating monitor-phase check cannot show it is healthy inside the post-deploy window. ' +
        'Answers rollbackStatus (default 503) when recommended, okStatus (default 200) when not; the body names the causes either way. ' +
        'POST is accepted with any body and changes nothing, for webhook callers (Flagger) that always POST.',
      querystring: {
        type: 'object',
        // A mistyped parameter must be a 400, not a silently different status mapping.
        additionalProperties: false,
        properties: {
          rollbackStatus: AnswerStatus('HTTP status when a rollback is recommended (Flagger rollback hook, Argo web metric: 200)', 503),
          okStatus: AnswerStatus('HTTP status when no rollback is recommended (Flagger rollback hook: 409)', 200),
        },
      },
    } as const;
    f.get('/rollback', { schema }, handler);
    f.post('/rollback', { schema: { ...schema, description: 'Same as GET /rollback, for webhook callers that POST (Flagger); the body is ignored.' } }, handler);
  };
}

function verdictMessage(recommended: boolean, causes: string[], w: ReturnType<Service['deploymentWindow']>): string {
  if (!w.deployment) return 'no deployment recorded yet: nothing to roll back';
  const v = w.deployment.version;
  if (recommended) return `roll back ${v}: ${causes.length} monitor check${causes.length === 1 ? '' : 's'} not healthy inside the post-deploy window: ${causes.join(', ')}`;
  return w.open ? `no rollback recommended for ${v}: no gating monitor check is a rollback cause` : `no rollback recommended: the post-deploy window of ${v} is closed`;
}
