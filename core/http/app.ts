import Koa from 'koa';
import type { CorbelContext, CorbelState } from './state.js';
import type { HttpServices } from './services.js';
import { requestContext } from './middleware/request-context.js';
import { errorBoundary } from './middleware/errors.js';
import { signResponse } from './middleware/sign-response.js';
import { rawBody } from './middleware/body.js';
import { v1Router } from './routes/v1.js';
import { adminRouter } from './routes/admin.js';
import { channelRouter } from './routes/channel.js';
import { opsRouter } from './routes/ops.js';

/**
 * The gateway's HTTP app. Order matters: context → signing (signs whatever the error boundary
 * produced) → error boundary → body → routers.
 */
export function buildApp(s: HttpServices): Koa<CorbelState> {
  const app = new Koa<CorbelState>({ proxy: false });
  app.silent = true;
  const ops = opsRouter(s);
  const v1 = v1Router(s);
  const admin = adminRouter(s);
  const channel = channelRouter(s);
  app.use(requestContext(s.runtime, s.metrics, s.logger, s.inFlight));
  app.use(ops.routes());
  const sign = signResponse(s.signer);
  app.use(async (ctx, next) => {
    // Everything the gateway answers is signed, except channel acknowledgements (the channel expects its exact bytes)
    // and the ops endpoints (read by probes and Prometheus, which expect them bare; they are answered above).
    if (ctx.path.startsWith('/notify/')) return next();
    return sign(ctx as unknown as CorbelContext, next);
  });
  app.use(errorBoundary(s.logger));
  app.use(rawBody());
  app.use(v1.routes()).use(v1.allowedMethods({ throw: true }));
  app.use(admin.routes()).use(admin.allowedMethods({ throw: true }));
  app.use(channel.routes());
  return app;
}
