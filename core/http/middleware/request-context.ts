import type { Logger } from 'pino';
import { newId } from '../../crypto/ids.js';
import type { Metrics } from '../../ops/metrics.js';
import type { ConfigRuntime } from '../../kernel/runtime.js';
import type { CorbelMiddleware } from '../state.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Outermost middleware: the request id, the config snapshot the request runs on, latency metrics and one access
 * log line. The request id is handed down explicitly (Caller.requestId, then ChannelCallScope.requestId) rather than
 * through AsyncLocalStorage, whose promise hooks cost about 5 % of a payment's CPU on Node 20.
 */
export function requestContext(runtime: ConfigRuntime, metrics: Metrics, logger: Logger, inFlight: { count: number }): CorbelMiddleware {
  return async (ctx, next) => {
    inFlight.count++;
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : newId('req');
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    const snapshot = runtime.current.acquire();
    ctx.state.snapshot = snapshot;
    const started = performance.now();
    try {
      await next();
    } finally {
      inFlight.count--;
      snapshot.release();
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      const seconds = (performance.now() - started) / 1000;
      metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.httpLatency.observe({ method: ctx.method, route }, seconds);
      if (logger.isLevelEnabled('info')) {
        logger.info({ request_id: requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(seconds * 1000) }, 'request');
      }
    }
  };
}
