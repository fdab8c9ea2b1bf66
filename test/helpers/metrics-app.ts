// A stand-in for the application Prometheus scrapes: an HTTP server on 127.0.0.1 port 0
// whose /metrics exposes `http_requests_total{code,method}` and the
// `http_request_duration_seconds` histogram, with traffic the test controls: requests per
// second, the share answered 5xx, and how long each request takes. Counters advance with
// wall-clock time between scrapes, as a real app's would, so rate() and histogram_quantile()
// in Prometheus see exactly the error ratio and latency set here. `extra` appends any other
// exposition text (postgres_exporter, cAdvisor, kube-state-metrics series) the test wants.
import { listenHttp } from './listeners.js';
import type { Teardown } from './service.js';

export interface Traffic {
  /** Requests per second. */
  rps: number;
  /** Share of requests answered 500, 0..1. */
  errorRatio: number;
  /** Duration of every request, seconds. */
  latencySeconds: number;
}

export const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface MetricsApp {
  /** host:port, for scrape configs. */
  readonly address: string;
  readonly url: string;
  /** Changes the traffic from now on (counters keep what they counted). */
  set(traffic: Partial<Traffic>): void;
  /** Extra exposition text appended to every scrape (a function: evaluated per scrape). */
  extra: () => string;
  scrapes(): number;
}

export async function startMetricsApp(t: Teardown, initial: Traffic): Promise<MetricsApp> {
  let traffic = { ...initial };
  let last = Date.now();
  let scrapes = 0;
  const ok = { n: 0 };
  const failed = { n: 0 };
  const buckets = BUCKETS.map(() => 0);
  let inf = 0;
  let sum = 0;

  /** Counts the requests served since the last call at the current traffic settings. */
  const advance = () => {
    const now = Date.now();
    const n = (traffic.rps * (now - last)) / 1000;
    last = now;
    failed.n += n * traffic.errorRatio;
    ok.n += n * (1 - traffic.errorRatio);
    BUCKETS.forEach((le, i) => {
      if (traffic.latencySeconds <= le) buckets[i]! += n;
    });
    inf += n;
    sum += n * traffic.latencySeconds;
  };

  const app: MetricsApp = {
    address: '',
    url: '',
    set(change) {
      advance();
      traffic = { ...traffic, ...change };
    },
    extra: () => '',
    scrapes: () => scrapes,
  };

  const listener = await listenHttp((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404);
      return void res.end();
    }
    advance();
    scrapes++;
    const lines = [
      '# HELP http_requests_total Requests served.',
      '# TYPE http_requests_total counter',
      `http_requests_total{code="200",method="GET"} ${ok.n}`,
      `http_requests_total{code="500",method="GET"} ${failed.n}`,
      '# HELP http_request_duration_seconds Request duration.',
      '# TYPE http_request_duration_seconds histogram',
      ...BUCKETS.map((le, i) => `http_request_duration_seconds_bucket{method="GET",le="${le}"} ${buckets[i]}`),
      `http_request_duration_seconds_bucket{method="GET",le="+Inf"} ${inf}`,
      `http_request_duration_seconds_sum{method="GET"} ${sum}`,
      `http_request_duration_seconds_count{method="GET"} ${inf}`,
      app.extra(),
    ];
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(`${lines.join('\n').trimEnd()}\n`);
  });
  t.teardown(() => listener.close());
  Object.assign(app, { address: `127.0.0.1:${listener.port}`, url: listener.url });
  return app;
}
