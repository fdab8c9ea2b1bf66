// Every error the HTTP API answers with, in one place: a stable code, an HTTP status and a
// message template. Codes are never reused; docs/api.md lists them (a test checks it).

export const API_ERRORS = {
  RDY_BAD_REQUEST: { status: 400, message: 'bad request: %s' },
  RDY_PAYLOAD_TOO_LARGE: { status: 413, message: 'request body too large: %s' },
  RDY_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'unsupported Content-Type: %s' },
  RDY_BAD_FILTER: { status: 400, message: 'bad filter: %s' },
  RDY_UNAUTHORIZED: { status: 401, message: 'missing or malformed Authorization: Bearer <token> header' },
  RDY_FORBIDDEN: { status: 403, message: 'the bearer token is not valid' },
  RDY_WRITES_DISABLED: { status: 403, message: 'writes are disabled: READINESS_API_TOKEN is not set' },
  RDY_CHECK_NOT_FOUND: { status: 404, message: 'no check with id %s' },
  RDY_NOT_FOUND: { status: 404, message: 'no route %s' },
  RDY_CHECK_UNCONFIGURED: { status: 409, message: 'check %s is unconfigured: %s' },
  RDY_BAD_ATTESTATION: { status: 400, message: 'attestation rejected: %s' },
  RDY_ATTESTATION_NOT_FOUND: { status: 404, message: 'no attestation with id %s' },
  RDY_BAD_DEPLOYMENT: { status: 400, message: 'deployment rejected: %s' },
  RDY_STORE_UNAVAILABLE: { status: 503, message: '%s' },
  RDY_SHUTTING_DOWN: { status: 503, message: 'the service is shutting down' },
  RDY_INTERNAL: { status: 500, message: 'internal error' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: ApiErrorCode,
    ...args: string[]
  ) {
    let i = 0;
    super(API_ERRORS[code].message.replace(/%s/g, () => args[i++] ?? ''));
    this.statusCode = API_ERRORS[code].status;
  }
}
