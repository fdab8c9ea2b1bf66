// One JSON request from a command to a running service (gate, attest, revoke, deploy-mark),
// over node:http or node:https. Not fetch: Node 20 compiles its bundled undici on the first
// fetch() call, which cost gate 2-4x a whole `node -e 0` (bench/startup.ts); node:http is
// already part of Node's start-up snapshot.
import type { IncomingMessage, RequestOptions } from 'node:http';

export interface JsonAnswer {
  status: number;
  statusText: string;
  contentType: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/** Bodies larger than this are not read: no service answer comes near it. */
const MAX_BODY = 16 * 1024 * 1024;
const MAX_REDIRECTS = 5;

/**
 * Sends one request and reads its JSON answer. GET requests follow redirects (as fetch did).
 * Fails with Node's own error (its `code`: ECONNREFUSED, ENOTFOUND, ...) or ETIMEDOUT when the
 * whole exchange takes longer than `timeoutMs`.
 */
export async function requestJson(
  url: URL,
  opts: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; timeoutMs: number; maxBody?: number },
): Promise<JsonAnswer> {
  const deadline = Date.now() + opts.timeoutMs;
  for (let hops = 0; ; hops++) {
    const res = await once(url, opts, Math.max(1, deadline - Date.now()));
    const location = res.headers.location;
    if ((opts.method ?? 'GET') === 'GET' && res.status >= 300 && res.status < 400 && location && hops < MAX_REDIRECTS) {
      url = new URL(location, url);
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(res.body);
    } catch {
      json = undefined;
    }
    return { status: res.status, statusText: res.statusText, contentType: res.headers['content-type'] ?? '', json };
  }
}

async function once(
  url: URL,
  opts: { method?: string; headers?: Record<string, string>; body?: string; maxBody?: number },
  timeoutMs: number,
): Promise<{ status: number; statusText: string; headers: IncomingMessage['headers']; body: string }> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw Object.assign(new Error(`unsupported protocol ${url.protocol}`), { code: 'ERR_INVALID_PROTOCOL' });
  const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const options: RequestOptions = { method: opts.method ?? 'GET', headers, agent: false };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      const max = opts.maxBody ?? MAX_BODY;
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) req.destroy(Object.assign(new Error(`answer larger than ${max} bytes`), { code: 'ERR_BODY_TOO_LARGE' }));
        else chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(opts.body);
  });
}
