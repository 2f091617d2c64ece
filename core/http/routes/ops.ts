import { Router } from '@koa/router';
import type { CorbelState } from '../state.js';
import type { HttpServices } from '../services.js';

/** Liveness, readiness and Prometheus metrics: unauthenticated, unsigned. */
export function opsRouter(s: HttpServices): Router<CorbelState> {
  const router = new Router<CorbelState>();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const problems: string[] = [];
    if (s.isDraining()) problems.push('shutting down');
    try {
      await s.store.reads.get('SELECT 1');
    } catch (err) {
      problems.push(`store: ${(err as Error).message}`);
    }
    const snap = ctx.state.snapshot;
    const serving = [...snap.accounts.values()].filter((a) => a.instance).length;
    ctx.status = problems.length ? 503 : 200;
    ctx.body = { status: problems.length ? 'unavailable' : 'ready', config_version: snap.version, channels_serving: serving, plugin_problems: snap.problems, problems };
  });
  router.get('/metrics', async (ctx) => {
    s.metrics.webhookBacklog.set(await s.store.webhooks.backlog(s.store.reads));
    const now = Date.now();
    // Only the current accounts and causes: an account removed by a reload, or a cause that has passed, drops out.
    s.metrics.breakerState.reset();
    s.metrics.breakerCause.reset();
    for (const a of ctx.state.snapshot.routing.accounts) {
      const state = a.state.breaker.stateAt(now);
      s.metrics.breakerState.set({ account: a.name }, state === 'closed' ? 0 : state === 'half_open' ? 1 : 2);
      s.metrics.breakerCause.set({ account: a.name, cause: a.state.breaker.cause }, 1);
    }
    ctx.type = s.metrics.registry.contentType;
    ctx.body = await s.metrics.registry.metrics();
  });
  return router;
}
