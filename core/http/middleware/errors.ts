import type { Logger } from 'pino';
import { ApiError } from '../../errors.js';
import { ChannelError } from '../../contract/channel.js';
import type { CorbelMiddleware } from '../state.js';

/** The one error boundary: every failure leaves as {"error":{code,message,param}} with its status. */
export function errorBoundary(logger: Logger): CorbelMiddleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new ApiError('not_found', `no route ${ctx.method} ${ctx.path}`);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status >= 500) logger.error({ err, path: ctx.path }, 'request failed');
      ctx.status = apiError.status;
      ctx.body = apiError.toJSON();
    }
  };
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ChannelError) return new ApiError(err.code === 'timeout' ? 'channel_timeout' : 'channel_error', `channel call failed: ${err.message}`, undefined, { channel_code: err.channelCode ?? null, may_exist: err.mayExist });
  const e = err as { status?: number; type?: string; expose?: boolean; message?: string };
  if (e.type === 'entity.too.large') return new ApiError('body_too_large', 'request body is larger than the configured limit');
  if (e.type === 'request.aborted') return new ApiError('invalid_request', 'request body was aborted');
  if (e.status === 405 || e.status === 501) return new ApiError('method_not_allowed', e.message ?? 'method not allowed');
  if (e.status === 404) return new ApiError('not_found', e.message ?? 'not found');
  if (e.status && e.status < 500 && e.expose) return new ApiError('invalid_request', e.message ?? 'bad request');
  return new ApiError('internal_error', 'internal error');
}
