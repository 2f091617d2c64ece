import { Router } from '@koa/router';
import type { CorbelState } from '../state.js';
import type { HttpServices } from '../services.js';

/** Asynchronous notifications from the channels, answered exactly as each channel requires. */
export function channelRouter(s: HttpServices): Router<CorbelState> {
  const router = new Router<CorbelState>({ prefix: '/notify' });
  router.post('/:account', async (ctx) => {
    const ack = await s.payments.handleNotification(ctx.state.snapshot, ctx.params.account!, {
      headers: ctx.headers,
      rawBody: ctx.state.rawBody,
      query: Object.fromEntries(Object.entries(ctx.query).map(([k, v]) => [k, Array.isArray(v) ? v[0] ?? '' : v ?? ''])),
    });
    ctx.status = ack.status;
    ctx.body = ack.body ?? '';
    if (ack.contentType) ctx.type = ack.contentType;
  });
  return router;
}
