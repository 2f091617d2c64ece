// Bounded load on loopback: autocannon (closed-loop with N connections, or a fixed overall rate) against an HTTP
// endpoint, and N concurrent async loops for clients that are libraries rather than raw HTTP (the channel SDKs).
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import autocannon from 'autocannon';
import { percentile } from './report.js';

export interface LoadWindow {
  ok: number;
  /** Answers that were not 2xx, plus connection errors and timeouts. */
  failed: number;
  durationS: number;
  /** Successful answers per second. */
  okPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** First failure seen, for the report (status codes or an error message). */
  failure?: string;
}

type SetupRequest = (req: { method?: string; path?: string; headers?: Record<string, string>; body?: string }) => unknown;

export interface AutocannonOptions {
  durationS: number;
  connections: number;
  /** Requests per second over all connections; omitted: as fast as the connections go. */
  overallRate?: number;
  setupRequest?: SetupRequest;
}

export async function autocannonWindow(url: string, opts: AutocannonOptions): Promise<LoadWindow> {
  const result = await autocannon({
    url,
    connections: opts.connections,
    duration: opts.durationS,
    ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
    timeout: 10,
    ...(opts.setupRequest ? { requests: [{ setupRequest: opts.setupRequest as never }] } : {}),
  });
  const ok = result['2xx'];
  const failed = result.non2xx + result.errors + result.timeouts;
  const statuses = (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {};
  const bad = Object.entries(statuses).filter(([code]) => !code.startsWith('2'));
  return {
    ok, failed, durationS: result.duration,
    okPerSec: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ...(failed > 0 ? { failure: `${bad.map(([code, s]) => `HTTP ${code} ×${s.count}`).join(', ')}${result.errors ? ` errors ×${result.errors}` : ''}${result.timeouts ? ` timeouts ×${result.timeouts}` : ''}` } : {}),
  };
}

/** The figures of a window from the latencies of its successful calls (sorted here) and its failures. */
function windowOf(latencies: number[], failed: number, failure: string | undefined, started: number): LoadWindow {
  const durationS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    ok: latencies.length, failed, durationS,
    okPerSec: latencies.length / durationS,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(failure ? { failure } : {}),
  };
}

/** `concurrency` loops each awaiting `call` back to back until durationS has passed. */
export async function closedLoops(call: () => Promise<void>, opts: { concurrency: number; durationS: number }): Promise<LoadWindow> {
  const latencies: number[] = [];
  let failed = 0;
  let failure: string | undefined;
  const started = performance.now();
  const deadline = started + opts.durationS * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await call();
        latencies.push(performance.now() - t0);
      } catch (err) {
        failed++;
        failure ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  return windowOf(latencies, failed, failure, started);
}

export interface PacedOptions {
  /** Calls per second, started at evenly spaced instants whether or not earlier ones have finished. */
  ratePerS: number;
  durationS: number;
}

/**
 * Open-loop load at a steady rate: call i is due at start + i/rate, and its latency runs from that instant, so a slow
 * answer cannot hold back the next call (no coordinated omission). This is what "p99 at 500 req/s" means.
 * autocannon's overallRate is not that: each connection sends its whole per-second quota back to back when its
 * one-second interval fires (lib/httpClient.js, rateInterval), so 500 req/s arrives as a burst at the top of every
 * second and the p99 it reports is the p99 of that burst.
 */
export async function pacedCalls(call: () => Promise<void>, opts: PacedOptions): Promise<LoadWindow> {
  const latencies: number[] = [];
  let failed = 0;
  let failure: string | undefined;
  const total = Math.round(opts.ratePerS * opts.durationS);
  const intervalMs = 1000 / opts.ratePerS;
  const started = performance.now();
  let sent = 0;
  let finished = 0;
  await new Promise<void>((resolve) => {
    const start = (dueAt: number) => {
      call().then(
        () => latencies.push(performance.now() - dueAt),
        (err: Error) => {
          failed++;
          failure ??= err.message;
        },
      ).finally(() => {
        if (++finished === total) resolve();
      });
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && started + sent * intervalMs <= now) start(started + sent++ * intervalMs);
      if (sent < total) setTimeout(tick, Math.max(0, started + sent * intervalMs - performance.now()));
    };
    tick();
  });
  return windowOf(latencies, failed, failure, started);
}

/** pacedCalls of one HTTP request each (built by setupRequest, as for autocannon); a non-2xx answer is a failure. */
export async function pacedWindow(url: string, opts: PacedOptions & { setupRequest: SetupRequest }): Promise<LoadWindow> {
  const target = new URL(url);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 512 });
  const send = () => new Promise<void>((resolve, reject) => {
    const shape = opts.setupRequest({}) as { method?: string; path?: string; headers?: Record<string, string>; body?: string };
    const body = shape.body ?? '';
    const req = httpRequest({ host: target.hostname, port: target.port, method: shape.method ?? 'GET', path: shape.path ?? target.pathname, agent, headers: { ...shape.headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.once('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else reject(new Error(`HTTP ${status}`));
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(body);
  });
  try {
    return await pacedCalls(send, opts);
  } finally {
    agent.destroy();
  }
}
