// Bounded load on loopback: autocannon (closed-loop with N connections, or a fixed overall rate) against an HTTP
// endpoint, and N concurrent async loops for clients that are libraries rather than raw HTTP (the channel SDKs).
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
