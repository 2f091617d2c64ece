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
  app.use(async (ctx, next) => {
    // Sign only the API surfaces; ops endpoints and channel acknowledgements are read by machines that expect them bare.
    if (ctx.path.startsWith('/v1/') || ctx.path.startsWith('/admin/')) return signResponse(s.signer)(ctx as unknown as CorbelContext, next);
    return next();
  });
  app.use(errorBoundary(s.logger));
  app.use(rawBody());
  app.use(v1.routes()).use(v1.allowedMethods({ throw: true }));
  app.use(admin.routes()).use(admin.allowedMethods({ throw: true }));
  app.use(channel.routes());
  return app;
}
