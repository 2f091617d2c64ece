import type { Logger } from 'pino';
import { newId } from '../../crypto/ids.js';
import { requestScope } from '../../ops/context.js';
import type { Metrics } from '../../ops/metrics.js';
import type { ConfigRuntime } from '../../kernel/runtime.js';
import type { CorbelMiddleware } from '../state.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Outermost middleware: request id (carried by async context into every log line and channel
 * call), the config snapshot the request runs on, latency metrics and one access log line.
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
      await requestScope.run({ requestId }, next);
    } finally {
      inFlight.count--;
      snapshot.release();
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      const seconds = (performance.now() - started) / 1000;
      metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.httpLatency.observe({ method: ctx.method, route }, seconds);
      if (logger.isLevelEnabled('info')) {
        requestScope.run({ requestId }, () => logger.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(seconds * 1000) }, 'request'));
      }
    }
  };
}
