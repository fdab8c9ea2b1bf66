// A local stand-in for PagerDuty's Events API v2, for tests that point Alertmanager's
// `pagerduty_configs[].url` at it.
//
// It is shaped like the real endpoint, not a catch-all sink: only `POST /v2/enqueue` exists, the
// body must be an event the real API would accept (routing key of the integration, known
// event_action, dedup_key for acknowledge/resolve, a trigger's payload with summary, source and
// a valid severity), and the answer is the API's own: 202
// `{"status":"success","message":"Event processed","dedup_key":...}`, or 400
// `{"status":"invalid event","message":"Event object is invalid","errors":[...]}`.
// Accepted events are kept in `events`, refused ones in `rejected`, so a test can assert on
// exactly what a misconfigured receiver would have lost.
// Reference: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
import { randomBytes } from 'node:crypto';
import { listenHttp } from './listeners.js';
import { waitFor, type Teardown } from './service.js';

export const PAGERDUTY_SEVERITIES = ['critical', 'error', 'warning', 'info'] as const;
export const PAGERDUTY_ACTIONS = ['trigger', 'acknowledge', 'resolve'] as const;

/** An Events API v2 alert event (the fields Alertmanager sends). */
export interface PagerDutyEvent {
  routing_key: string;
  event_action: (typeof PAGERDUTY_ACTIONS)[number];
  dedup_key?: string;
  payload?: {
    summary: string;
    source: string;
    severity: (typeof PAGERDUTY_SEVERITIES)[number];
    timestamp?: string;
    component?: string;
    group?: string;
    class?: string;
    custom_details?: Record<string, unknown>;
  };
  images?: { src: string; href?: string; alt?: string }[];
  links?: { href: string; text?: string }[];
  client?: string;
  client_url?: string;
}

/** An accepted event, with when it arrived and the dedup_key the capture answered. */
export interface ReceivedEvent {
  at: number;
  dedupKey: string;
  event: PagerDutyEvent;
  userAgent: string;
}

export interface RejectedRequest {
  at: number;
  method: string;
  path: string;
  status: number;
  errors: string[];
  body: string;
}

export interface PagerDutyCapture {
  /** Base URL, e.g. http://127.0.0.1:41234. */
  readonly url: string;
  /** `${url}/v2/enqueue`: what `pagerduty_configs[].url` should be. */
  readonly enqueueUrl: string;
  /** The integration key the capture accepts (32 characters, like PagerDuty's). */
  readonly routingKey: string;
  /** Accepted events, in arrival order. */
  readonly events: ReceivedEvent[];
  /** Requests answered 4xx. */
  readonly rejected: RejectedRequest[];
  /** Resolves with the first accepted event `pred` accepts (polling); rejects after timeoutMs. */
  waitFor(pred: (e: ReceivedEvent) => boolean, timeoutMs?: number): Promise<ReceivedEvent>;
  close(): Promise<void>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';

/** What the Events API v2 would object to in `body` (empty: the event is valid). */
export function eventProblems(body: unknown, routingKey: string): string[] {
  if (!isObject(body)) return ['Event object must be a JSON object'];
  const errors: string[] = [];
  const rk = body.routing_key;
  if (!nonEmptyString(rk)) errors.push("'routing_key' is missing or blank");
  else if (rk.length !== 32) errors.push("Length of 'routing_key' is incorrect (should be 32 characters)");
  else if (rk !== routingKey) errors.push("'routing_key' is not the key of an Events API v2 integration");
  const action = body.event_action;
  if (!PAGERDUTY_ACTIONS.includes(action as PagerDutyEvent['event_action'])) errors.push(`'event_action' must be one of ${PAGERDUTY_ACTIONS.join(', ')}`);
  const dedup = body.dedup_key;
  if (dedup !== undefined && (typeof dedup !== 'string' || dedup.length > 255)) errors.push("'dedup_key' must be a string of at most 255 characters");
  if ((action === 'acknowledge' || action === 'resolve') && !nonEmptyString(dedup)) errors.push(`'dedup_key' is required to ${String(action)}`);
  if (action === 'trigger') {
    const p = body.payload;
    if (!isObject(p)) errors.push("'payload' is missing");
    else {
      if (!nonEmptyString(p.summary)) errors.push("'payload.summary' is missing or blank");
      else if (p.summary.length > 1024) errors.push("'payload.summary' is longer than 1024 characters");
      if (!nonEmptyString(p.source)) errors.push("'payload.source' is missing or blank");
      if (!PAGERDUTY_SEVERITIES.includes(p.severity as (typeof PAGERDUTY_SEVERITIES)[number])) {
        errors.push(`'payload.severity' must be one of ${PAGERDUTY_SEVERITIES.join(', ')} (got ${JSON.stringify(p.severity)})`);
      }
      if (p.timestamp !== undefined && (typeof p.timestamp !== 'string' || Number.isNaN(Date.parse(p.timestamp)))) errors.push("'payload.timestamp' must be an ISO 8601 time");
      for (const k of ['component', 'group', 'class'] as const) {
        if (p[k] !== undefined && typeof p[k] !== 'string') errors.push(`'payload.${k}' must be a string`);
      }
      if (p.custom_details !== undefined && !isObject(p.custom_details)) errors.push("'payload.custom_details' must be an object");
    }
  }
  for (const [k, field] of [['links', 'href'], ['images', 'src']] as const) {
    const list = body[k];
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every((x) => isObject(x) && nonEmptyString(x[field]))) errors.push(`'${k}' must be a list of objects with '${field}'`);
  }
  return errors;
}

/** Starts the capture on 127.0.0.1 (a free port); closed in t.teardown. */
export async function startPagerDutyCapture(t: Teardown, opts: { routingKey?: string } = {}): Promise<PagerDutyCapture> {
  const routingKey = opts.routingKey ?? randomBytes(16).toString('hex');
  if (routingKey.length !== 32) throw new Error('a PagerDuty routing key has 32 characters');
  const events: ReceivedEvent[] = [];
  const rejected: RejectedRequest[] = [];

  const listener = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const reject = (status: number, errors: string[], message: string, extra: Record<string, unknown> = {}) => {
        rejected.push({ at: Date.now(), method: req.method ?? '', path, status, errors, body: text });
        answer(status, { status: status === 400 ? 'invalid event' : 'error', message, ...(errors.length && { errors }), ...extra });
      };
      if (path !== '/v2/enqueue') return reject(404, [], 'Not Found');
      if (req.method !== 'POST') return reject(405, [], 'Method Not Allowed');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return reject(400, ['Malformed JSON'], 'Event object is invalid');
      }
      const problems = eventProblems(body, routingKey);
      if (problems.length > 0) return reject(400, problems, 'Event object is invalid');
      const event = body as PagerDutyEvent;
      // PagerDuty makes up a dedup_key for a trigger without one; Alertmanager always sends its own.
      const dedupKey = event.dedup_key ?? randomBytes(16).toString('hex');
      events.push({ at: Date.now(), dedupKey, event, userAgent: String(req.headers['user-agent'] ?? '') });
      answer(202, { status: 'success', message: 'Event processed', dedup_key: dedupKey });
    });
  });
  t.teardown(() => listener.close());

  return {
    url: listener.url,
    enqueueUrl: `${listener.url}/v2/enqueue`,
    routingKey,
    events,
    rejected,
    waitFor: (pred, timeoutMs = 30_000) =>
      waitFor('PagerDuty event', async () => events.find(pred), {
        timeoutMs,
        everyMs: 50,
        // A refused event will not come back as an accepted one: fail at once with the reason.
        abortIf: () => (rejected.length > 0 ? `the capture refused ${JSON.stringify(rejected)}` : undefined),
      }),
    close: () => listener.close(),
  };
}
